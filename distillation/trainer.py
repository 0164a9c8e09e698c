"""The distillation recipe: one function, `run_distillation`, that reads top to bottom.

    setup → (teacher adaptation) → student → soft-target cache → training loop → export

Setup reads the dataset, loads the teacher and its tokenizer and seeds everything. The optional
first stage fine-tunes the teacher on the train split with hard labels
(`distillation.adaptation`), through the same optimizer step as the student. The
student is a named model, or a copy of some of the (adapted) teacher's layers (evenly spaced, or
the one-block-removed choice with the lowest calibration loss, `distillation.pruning`) whose
vocabulary is trimmed to the token ids the data needs (`distillation.vocab`; the teacher is then
seen through those ids). With ``soft_targets: cached`` the teacher runs once over the train
split and its top-k log-probs (``sampled``: unbiased draws) are read from disk afterwards
(`distillation.cache`); with ``online`` it runs at every step. The loop
uses `accelerate` (``accelerate launch`` gives multi-GPU DDP/FSDP without code changes), logs
every optimizer step to ``training_history.jsonl`` (and to the ``report_to`` trackers,
`distillation.tracking`), validates every ``eval_every`` steps (loss and exact match of greedy
answers), keeps the best checkpoint, stops early on a patience, and writes an atomic, exactly
resumable checkpoint every ``save_every`` steps. The best (else the final)
student is exported as a plain Hugging Face directory ``<output_dir>/student``.

This module owns the recipe with its setup and export helpers and what is particular to
distilling (soft targets, the KD loss of a micro-batch, choosing the best checkpoint). The step
both stages share is `distillation.loop`, checkpoint I/O `distillation.checkpoints`, the history
file `distillation.history`. Helpers are module-level functions; there are no trainer classes.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_loaders.errors import InputError
from data_loaders.io import atomic_dir
from distillation.adaptation import ADAPTED_TEACHER, adapt_teacher
from distillation.checkpoints import (
    BEST,
    CHECKPOINTS,
    LAST,
    best_matches,
    last_good,
    load_checkpoint,
    load_weights,
    save_best,
    save_checkpoint,
)
from distillation.config import DistillationConfig
from distillation.data import (
    answer_logits,
    as_records,
    encode_records,
    load_dataset_dir,
    program_records,
    routing_records,
)
from distillation.history import HISTORY_FILE, append_history, last_eval, truncate_history
from distillation.loop import (
    Cursor,
    TrainingDiverged,
    check_finite,
    eval_subset,
    evaluate,
    make_bar,
    make_optimizer,
    make_scheduler,
    train_step,
)
from distillation.tracking import (
    TRACKING_DIR,
    accelerator_kwargs,
    end_tracking,
    log_row,
    start_tracking,
)

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

STUDENT_DIR = "student"
TINY_TEACHER = "tiny"
"""Teacher spec that builds a tiny random model under ``<output_dir>/tiny_teacher`` (tests)."""

# Config fields a resumed run may change: they do not alter what the steps compute.
_RESUMABLE_CHANGES = {
    "output_dir", "max_steps", "eval_every", "eval_samples", "eval_max_new_tokens",
    "early_stopping_patience", "save_every", "cache", "device", "report_to",
}


@dataclass
class RunResult:
    """What a finished run produced."""

    output_dir: Path
    student_dir: Path
    steps: int
    best: dict | None
    final_eval: dict | None
    stopped_early: bool
    history_path: Path
    teacher: str
    exported: str  # "best" or "final"
    extra: dict = field(default_factory=dict)


# ============================================================================================
# The recipe
# ============================================================================================


def run_distillation(
    config: DistillationConfig,
    *,
    resume: bool = False,
    train_records: Sequence[Any] | None = None,
    val_records: Sequence[Any] | None = None,
    progress: bool = True,
) -> RunResult:
    """Distill a student from a teacher on a QA dataset; see the module docstring.

    Args:
        config: the run's settings.
        resume: continue from ``<output_dir>/checkpoints/last`` (exactly: same data order, RNG,
            optimizer and schedule as an uninterrupted run).
        train_records: train pairs (QAPair or dicts) instead of ``config.data_dir``.
        val_records: validation pairs; required with ``train_records``.
        progress: show tqdm bars.

    Returns:
        A `RunResult`; the student is in ``<output_dir>/student``.

    Raises:
        InputError: bad data, models or config (one-line message).
        TrainingDiverged: NaN/inf loss; the last checkpoint is intact.
    """
    from accelerate.utils import set_seed

    from distillation.cache import (
        cache_fingerprint,
        fingerprint_model,
        fingerprint_records,
        load_or_build_cache,
    )
    from distillation.losses import DistillationLoss
    from distillation.models import check_quantization, shared_vocab_size
    from distillation.vocab import TeacherOnKeptIds, dropped_mass

    # ---------------------------------------------------------------- 1. setup
    out = Path(config.output_dir)
    accelerator = make_accelerator(config)
    device = accelerator.device
    # A student that cannot be loaded quantized here fails now, not after the teacher's work.
    check_quantization(config.student_quantization, device, "student_quantization")
    train, val = read_records(config, train_records, val_records)
    ckpt_state = prepare_output_dir(config, out, resume, accelerator)
    start_tracking(accelerator, config, None if ckpt_state is None else ckpt_state["step"])
    set_seed(config.seed)

    teacher_spec = resolve_teacher_spec(config, out, train, accelerator)
    need_teacher = config.kd_ratio > 0 or config.student_model_name is None or config.adapt_teacher
    teacher, tokenizer = None, None
    if need_teacher:
        teacher, tokenizer = load_teacher(config, teacher_spec)

    # ---------------------------------------------------------------- 2. teacher adaptation
    teacher_note = teacher_spec
    if config.adapt_teacher:
        teacher, adapted_metrics = adapt_teacher(
            teacher, tokenizer, train, val, config, accelerator, progress=progress
        )
        teacher_note = f"{teacher_spec} (adapted: {out / ADAPTED_TEACHER})"
    else:
        adapted_metrics = None

    # ---------------------------------------------------------------- 3. student
    student, tokenizer, kept = build_student(config, teacher, tokenizer, train + val)
    if kept is not None and teacher is not None:
        # the teacher reads student ids and answers over the kept ids only (renormalised)
        teacher = TeacherOnKeptIds(teacher, kept)
    n_vocab = shared_vocab_size(tokenizer, *(m for m in (teacher, student) if m is not None))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_ex = encode_records(tokenizer, train, config.max_seq_len)
    val_idx = eval_subset(len(val), config.eval_samples, config.seed)
    val_pairs = [val[i] for i in val_idx]
    val_ex = encode_records(tokenizer, val_pairs, config.max_seq_len)
    lengths = [len(e["input_ids"]) for e in train_ex]
    vocab_note = None
    if kept is not None:
        vocab_note = {"kept_tokens": len(kept)}
        if teacher is not None:
            vocab_note["teacher_tokens"] = teacher.teacher_vocab
        if teacher is not None and config.kd_ratio > 0:  # the mass only matters for KD
            mass = dropped_mass(teacher.teacher, kept, train_ex[:32], n_vocab=teacher.teacher_vocab,
                                temperature=config.temperature, pad_id=pad_id)
            vocab_note["teacher_mass_dropped"] = mass
            log.info("student vocabulary: %d of %d tokens; the teacher's probability on dropped "
                     "ids (T=%g, answer tokens of 32 train pairs): %.2e", len(kept),
                     teacher.teacher_vocab, config.temperature, mass)

    # ---------------------------------------------------------------- 4. soft targets
    cache = None
    if config.kd_ratio > 0 and config.soft_targets in ("cached", "sampled"):
        sampled = config.soft_targets == "sampled"
        fp = cache_fingerprint(
            teacher, tokenizer, train, temperature=config.temperature, top_k=config.top_k,
            max_seq_len=config.max_seq_len, sampled=sampled, seed=config.seed,
        )
        # A teacher adapted in this very run makes any earlier cache stale by construction.
        rebuild_cache = config.cache.rebuild or bool(
            adapted_metrics and not adapted_metrics.get("reused")
        )
        if accelerator.is_main_process:
            cache, built = load_or_build_cache(
                teacher, train_ex, config.cache_dir, fp, rebuild=rebuild_cache,
                temperature=config.temperature, top_k=config.top_k, n_vocab=n_vocab,
                pad_id=pad_id, batch_size=config.cache.batch_size, progress=progress,
                sampled=sampled, seed=config.seed,
            )
            log.info("teacher cache %s: %s", "built" if built else "reused", config.cache_dir)
        accelerator.wait_for_everyone()
        if cache is None:  # other processes read what the main process wrote
            cache, _ = load_or_build_cache(teacher, train_ex, config.cache_dir, fp)
    if teacher is not None and (config.kd_ratio == 0 or cache is not None):
        del teacher  # not needed any more: free its memory before training
        teacher = None
        gc.collect()
    elif teacher is not None:
        teacher.eval().requires_grad_(False)
        teacher.to(device)

    # ---------------------------------------------------------------- 5. optimizer and state
    loss_fn = DistillationLoss(
        kd_ratio=config.kd_ratio, temperature=config.temperature, kind=config.divergence,
        beta=config.beta, chunk_size=config.loss_chunk_size,
    )
    optimizer = make_optimizer(student, config.learning_rate, config.weight_decay)
    scheduler = make_scheduler(optimizer, config.warmup_steps, config.max_steps,
                               config.lr_schedule, config.min_lr_ratio)
    student, optimizer = accelerator.prepare(student, optimizer)
    raw_student = accelerator.unwrap_model(student)

    state = {"step": 0, "epoch": 0, "pos": 0, "best": None, "bad_evals": 0,
             "tokens_total": 0, "elapsed": 0.0}
    if ckpt_state is not None:
        state = load_checkpoint(out / CHECKPOINTS / LAST, raw_student, optimizer, scheduler)
        log.info("resumed from step %d (epoch %d, batch %d)", state["step"], state["epoch"],
                 state["pos"])
    history = out / HISTORY_FILE
    cursor = Cursor(state["epoch"], state["pos"])
    step = state["step"]
    stopped_early = False
    world = accelerator.num_processes
    loss_of = partial(kd_parts, student=student, teacher=teacher, cache=cache, loss_fn=loss_fn,
                      n_vocab=n_vocab)

    # ---------------------------------------------------------------- 6. the loop
    bar = make_bar(config.max_steps, step, disable=not (progress and accelerator.is_main_process),
                   main=accelerator.is_main_process)
    run_start = time.perf_counter() - state["elapsed"]
    student.train()
    while step < config.max_steps:
        t0 = time.perf_counter()
        sums, grad_norm = train_step(
            student, loss_of, train_ex, lengths, cursor, optimizer, scheduler, accelerator,
            batch_size=config.batch_size, seed=config.seed, pad_id=pad_id,
            accum_steps=config.grad_accum_steps, max_grad_norm=config.max_grad_norm,
            check=partial(check_finite, step=step, out=out, config=config,
                          accelerator=accelerator),
        )
        step += 1

        # metrics: mean over micro-batches and processes; tokens summed
        sums = accelerator.reduce(sums.to(device), reduction="sum").cpu()
        n_micro = config.grad_accum_steps * world
        dt = time.perf_counter() - t0
        state["tokens_total"] += int(sums[3])
        row = {
            "event": "train", "step": step, "epoch": cursor.epoch,
            "loss": float(sums[0]) / n_micro, "ce": float(sums[1]) / n_micro,
            "kd": float(sums[2]) / n_micro, "lr": scheduler.get_last_lr()[0],
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "tokens": int(sums[3]), "tokens_per_s": float(sums[3]) / max(dt, 1e-9),
            "elapsed": time.perf_counter() - run_start,
        }
        if accelerator.is_main_process:
            append_history(history, row)
        log_row(accelerator, config, row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}", ce=f"{row['ce']:.3f}", kd=f"{row['kd']:.3f}",
                        tok_s=f"{row['tokens_per_s']:.0f}")

        # validation, best checkpoint, early stopping
        final_step = step == config.max_steps
        if (config.eval_every and step % config.eval_every == 0) or final_step:
            metrics = evaluate(student, tokenizer, val_pairs, val_ex, accelerator, n_vocab,
                               pad_id, config)
            improved = is_better(metrics, state["best"])
            if improved:
                state["best"] = {"step": step, **metrics}
                state["bad_evals"] = 0
                save_best(out / CHECKPOINTS / BEST, raw_student, state["best"], accelerator)
            else:
                state["bad_evals"] += 1
            eval_row = {"event": "eval", "step": step, **metrics, "best": improved,
                        "elapsed": time.perf_counter() - run_start}
            if accelerator.is_main_process:
                append_history(history, eval_row)
            log_row(accelerator, config, eval_row)
            bar.write(f"step {step}: val_loss {metrics['val_loss']:.4f}, val exact match "
                      f"{metrics['val_exact_match']:.1%} ({metrics['eval_samples']} pairs)")
            patience = config.early_stopping_patience
            if patience is not None and state["bad_evals"] >= patience:
                stopped_early = True
                bar.write(f"early stop: {patience} validations without improvement")

        if step % config.save_every == 0 or final_step or stopped_early:
            state.update(step=step, epoch=cursor.epoch, pos=cursor.pos,
                         elapsed=time.perf_counter() - run_start)
            check_weights_finite(raw_student, step, out, config)
            save_checkpoint(out / CHECKPOINTS / LAST, raw_student, optimizer, scheduler, state,
                            config, accelerator)
        if stopped_early:
            break
    bar.close()
    end_tracking(accelerator, config)

    # ---------------------------------------------------------------- 7. export
    final_eval = last_eval(history)
    exported = "final"
    best_dir = out / CHECKPOINTS / BEST
    if state["best"] is not None and best_matches(best_dir, state["best"]):
        load_weights(raw_student, best_dir / "model.pt")
        exported = "best"
    student_dir = out / STUDENT_DIR
    if accelerator.is_main_process:
        export_student(raw_student, tokenizer, student_dir, config, teacher_note, train, val,
                       state, exported, adapted_metrics, fingerprint_records(train),
                       fingerprint_model(raw_student), vocab=vocab_note)
    accelerator.wait_for_everyone()
    return RunResult(
        output_dir=out, student_dir=student_dir, steps=step, best=state["best"],
        final_eval=final_eval, stopped_early=stopped_early, history_path=history,
        teacher=teacher_note, exported=exported,
        extra={"teacher_adaptation": adapted_metrics},
    )


# ============================================================================================
# Setup helpers
# ============================================================================================


def make_accelerator(config: DistillationConfig) -> Accelerator:
    """An `Accelerator` for the configured device (bf16 autocast on GPUs that have it).

    With ``report_to`` it also carries the trackers (`tracking.accelerator_kwargs`).

    Raises:
        InputError: a tracker in ``report_to`` is not installed.
    """
    import torch
    from accelerate import Accelerator

    from distillation.models import resolve_device

    dev = resolve_device(config.device)
    cpu = dev.type == "cpu"
    mixed = "no"
    if not cpu and config.dtype in ("auto", "bfloat16", "bf16") and torch.cuda.is_bf16_supported():
        mixed = "bf16"
    return Accelerator(cpu=cpu, mixed_precision=mixed, **accelerator_kwargs(config))


AUTO_PROGRAM_SHARE = 0.9  # target auto: programs when this share of train pairs carries one


def read_records(
    config: DistillationConfig,
    train_records: Sequence[Any] | None,
    val_records: Sequence[Any] | None,
) -> tuple[list[dict], list[dict]]:
    """Train and val pairs from the arguments or from ``config.data_dir``.

    With ``target: program`` every pair becomes a program example (`data.program_records`),
    and each train summary pair adds a prose example (facts → wording); val pairs stay program
    examples only, so the val exact match is the programs'.
    With ``target: answer`` the train pairs are followed by ``routing_share`` of them again as
    routing examples (`data.routing_records`). The teacher adaptation and the student both
    learn what this returns.
    """
    if train_records is not None:
        if val_records is None:
            raise InputError("val_records: give validation pairs together with train_records")
        train = as_records(train_records, "train_records")
        val = as_records(val_records, "val_records")
    else:
        if config.data_dir is None:
            raise InputError(
                "data_dir: no dataset given; set data_dir=<dir made by `distillgraph prepare`>"
            )
        splits = load_dataset_dir(config.data_dir, ("train", "val"))
        train, val = splits["train"], splits["val"]
    with_program = sum(bool(r.get("program_text")) for r in train)
    if config.target == "program" or (
        config.target == "auto" and with_program >= AUTO_PROGRAM_SHARE * len(train)
    ):
        return program_records(train, prose=True), program_records(val)
    return train + routing_records(train, config.routing_share, config.seed), val


def prepare_output_dir(
    config: DistillationConfig, out: Path, resume: bool, accelerator: Accelerator
) -> dict | None:
    """Check a resume is possible, or clear a previous run's checkpoints, history and tracking.

    The teacher cache and the adapted teacher are kept: they are reused when they match.

    Returns:
        The checkpoint's state when resuming, else None.

    Raises:
        InputError: resuming with settings that change what the steps compute.
    """
    last = out / CHECKPOINTS / LAST
    if resume and (last / "state.json").is_file():
        state = json.loads((last / "state.json").read_text(encoding="utf-8"))
        saved = state.get("config", {})
        now = config.model_dump(mode="json")
        changed = sorted(k for k in now if k not in _RESUMABLE_CHANGES and saved.get(k) != now[k])
        if changed:
            raise InputError(
                f"--resume: {', '.join(changed)} differ from the checkpoint in {last}; restore "
                "them or start a fresh run in another output_dir"
            )
        if state.get("world_size", 1) != accelerator.num_processes:
            raise InputError(
                f"--resume: the checkpoint was written by {state.get('world_size')} processes, "
                f"this run has {accelerator.num_processes}; resume with the same launch"
            )
        if accelerator.is_main_process:
            truncate_history(out / HISTORY_FILE, state["step"])
        return state
    if resume:
        log.warning("--resume: no checkpoint in %s; starting from step 0", last)
    if accelerator.is_main_process:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        (out / HISTORY_FILE).unlink(missing_ok=True)
        shutil.rmtree(out / TRACKING_DIR, ignore_errors=True)  # the history's mirror goes with it
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    return None


def resolve_teacher_spec(
    config: DistillationConfig, out: Path, train: Sequence[Mapping], accelerator: Accelerator
) -> str:
    """The teacher's model spec; ``"tiny"`` builds a tiny random model under the output dir."""
    if config.teacher_model_name != TINY_TEACHER:
        return config.teacher_model_name
    from distillation.tiny import build_tiny_model_dir

    target = out / "tiny_teacher"
    if accelerator.is_main_process and not (target / "config.json").is_file():
        texts = [f"{r['context']}\n{r['question']}\n{r['answer']}" for r in train]
        build_tiny_model_dir(target, n_layers=4, hidden_size=64, texts=texts, seed=config.seed)
    accelerator.wait_for_everyone()
    return str(target)


def load_teacher(
    config: DistillationConfig, spec: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the teacher in eval mode; float32 when it is to be fine-tuned first."""
    from distillation.models import load_model_and_tokenizer

    if config.adapt_teacher and config.quantization is not None:
        raise InputError(
            "teacher_adaptation: a quantized teacher cannot be fine-tuned here; set "
            "quantization=null or teacher_adaptation.enabled=false"
        )
    dtype = "float32" if config.adapt_teacher else config.dtype
    return load_model_and_tokenizer(
        spec, dtype=dtype, device=config.device, trust_remote_code=config.trust_remote_code,
        quantization=config.quantization,
    )


def build_student(
    config: DistillationConfig,
    teacher: PreTrainedModel | None,
    teacher_tok: PreTrainedTokenizerBase | None,
    records: Sequence[Mapping] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[int] | None]:
    """The student (float32, train mode), the tokenizer it reads, and its kept token ids.

    A named student must share the teacher's token ids for logit distillation. Without a name
    the student keeps ``student_layers`` of the teacher's layers and, with trimming on
    (``config.trims_vocab``), only the token ids that ``records`` (the train and val pairs as
    `read_records` returns them) need (`distillation.vocab`); the kept ids are then returned
    (the student's id ``i`` is the teacher's ``kept[i]``), else None.

    Raises:
        InputError: trimming without records, or a tokenizer that cannot be trimmed.
    """
    import torch

    from distillation.models import (
        apply_lora,
        check_tokenizers_compatible,
        load_model_and_tokenizer,
    )
    from distillation.pruning import prune_layers

    kept = None
    if config.student_model_name is not None:
        # QLoRA: the frozen quantized base keeps config.dtype for its unquantized parts.
        student, tokenizer = load_model_and_tokenizer(
            config.student_model_name,
            dtype=config.dtype if config.student_quantization else "float32",
            device=config.device, trust_remote_code=config.trust_remote_code,
            quantization=config.student_quantization, quantization_key="student_quantization",
        )
        if config.kd_ratio > 0 and teacher_tok is not None:
            check_tokenizers_compatible(
                teacher_tok, tokenizer, teacher_name=config.teacher_model_name,
                student_name=config.student_model_name,
            )
    else:
        keep = config.student_layers
        if config.layer_selection == "block" and isinstance(keep, int):
            keep = calibrated_layers(config, teacher, teacher_tok, records)
        student, tokenizer = prune_layers(teacher, keep), teacher_tok
        student = student.to(torch.float32)
        if config.trims_vocab:
            student, tokenizer, kept = trim_student(config, student, tokenizer, records)
    if config.student_lora is not None:
        lora = config.student_lora
        student = apply_lora(student, r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                             target_modules=lora.target_modules)
    student.train()
    return student, tokenizer, kept


CALIBRATION_PAIRS = 16  # train pairs scoring each layer choice (layer_selection: block)


def calibrated_layers(
    config: DistillationConfig,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping] | None,
) -> list[int]:
    """The teacher layers to keep, by answer-token CE on a calibration batch (`choose_layers`).

    Raises:
        InputError: no records to calibrate on.
    """
    import torch

    from distillation.data import batch_to, collate
    from distillation.losses import ce_loss
    from distillation.pruning import choose_layers

    if not records:
        raise InputError(
            "layer_selection: block scores layer choices on training pairs; give the data or "
            "set layer_selection=even"
        )
    examples = encode_records(tokenizer, records[:CALIBRATION_PAIRS], config.max_seq_len)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = batch_to(collate(examples, pad_id), next(teacher.parameters()).device)
    n_vocab = len(tokenizer)

    def loss(model) -> float:
        with torch.no_grad():
            return float(ce_loss(answer_logits(model, batch, n_vocab).float(), batch["targets"]))

    was_training = teacher.training
    teacher.eval()
    try:
        idx, scores = choose_layers(teacher, config.student_layers, loss)
    finally:
        teacher.train(was_training)
    log.info("layer selection (answer CE on %d train pairs): kept %s (%.2f); evenly spaced "
             "%.2f", len(examples), idx, scores[",".join(map(str, idx))],
             next(iter(scores.values())))
    return idx


def trim_student(
    config: DistillationConfig,
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping] | None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[int]]:
    """Trim a pruned student's vocabulary to what ``records`` need (`distillation.vocab`).

    Raises:
        InputError: no records, a tokenizer that is not fast BPE, or (a bug guard) a trimmed
            tokenizer that encodes some pair differently from the full one.
    """
    from distillation.vocab import kept_token_ids, trim_embeddings, trim_tokenizer

    if not records:
        raise InputError(
            "trim_vocab: the kept token ids come from the training pairs; give the data "
            "(data_dir or train records) or set trim_vocab=false"
        )
    full = encode_records(tokenizer, records, 10**9)
    kept = kept_token_ids(tokenizer, [e["input_ids"] for e in full],
                          keep_common=config.trim_vocab_keep_common)
    trimmed = trim_tokenizer(tokenizer, kept)
    for e, t in zip(full, encode_records(trimmed, records, 10**9), strict=True):
        if [kept[i] for i in t["input_ids"]] != e["input_ids"]:
            raise InputError(
                "trim_vocab: the trimmed tokenizer encodes a training pair differently from "
                "the full one; set trim_vocab=false and report this"
            )
    log.info("student vocabulary trimmed to %d of %d tokens", len(kept), len(tokenizer))
    return trim_embeddings(student, kept), trimmed, kept


# ============================================================================================
# Loop helpers
# ============================================================================================


def soft_targets(
    batch: Mapping[str, Any],
    example_idx: Sequence[int],
    teacher: torch.nn.Module | None,
    cache: Any,
    n_vocab: int,
) -> dict[str, torch.Tensor]:
    """The teacher's side of the KD loss for one batch: cached top-k, online logits, or none."""
    import torch

    if cache is not None:
        lp, ids = cache.batch_targets(example_idx, batch["targets"])  # (B, K, k) each
        return {"teacher_topk_logprobs": lp, "teacher_topk_ids": ids}
    if teacher is not None:
        with torch.no_grad():
            return {"teacher_logits": answer_logits(teacher, batch, n_vocab)}  # (B, K, V)
    return {}


def kd_parts(
    batch: Mapping[str, Any],
    idx: Sequence[int],
    *,
    student: torch.nn.Module,
    teacher: torch.nn.Module | None,
    cache: Any,
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    n_vocab: int,
) -> dict[str, torch.Tensor]:
    """The student's loss on one micro-batch: ``{"loss", "ce", "kd"}`` from `DistillationLoss`."""
    teacher_kw = soft_targets(batch, idx, teacher, cache, n_vocab)
    logits = answer_logits(student, batch, n_vocab)  # (B, n_keep, V)
    return loss_fn(logits, batch["targets"], **teacher_kw)


def check_weights_finite(model: torch.nn.Module, step: int, out: Path, config) -> None:
    """Refuse to checkpoint NaN/inf weights (keeps the last good checkpoint).

    Raises:
        TrainingDiverged: some weight is not finite.
    """
    import torch

    for name, p in model.named_parameters():
        if p.requires_grad and not torch.isfinite(p.detach()).all():
            raise TrainingDiverged(
                f"weights became non-finite ({name}) at step {step}; not saved. "
                f"{last_good(out)} Lower learning_rate (now {config.learning_rate}) or raise "
                "warmup_steps, then resume with --resume"
            )


def is_better(metrics: Mapping[str, float], best: Mapping[str, float] | None) -> bool:
    """Better = clearly higher val exact match, else lower val loss.

    "Clearly" means by more than two standard errors of the difference (binomial, pooled over
    both checkpoints' ``eval_samples``): on 64 pairs, 5 vs 7 right answers is noise, and
    exporting an early checkpoint on such a difference would throw away a much lower loss.
    """
    if best is None:
        return True
    n1, n2 = metrics.get("eval_samples", 0), best.get("eval_samples", 0)
    em1, em2 = metrics["val_exact_match"], best["val_exact_match"]
    if n1 and n2:
        p = (em1 * n1 + em2 * n2) / (n1 + n2)
        noise = 2 * math.sqrt(max(p * (1 - p), 1e-12) * (1 / n1 + 1 / n2))
    else:
        noise = 0.0
    if abs(em1 - em2) > noise:
        return em1 > em2
    return metrics["val_loss"] < best["val_loss"]


# ============================================================================================
# Export
# ============================================================================================


def export_student(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    student_dir: Path,
    config: DistillationConfig,
    teacher_note: str,
    train: Sequence[Mapping],
    val: Sequence[Mapping],
    state: Mapping[str, Any],
    exported: str,
    adapted: Mapping | None,
    dataset_hash: str,
    student_hash: str,
    vocab: Mapping | None = None,
) -> None:
    """Write the student as a Hugging Face dir with a model card and training metadata.

    ``vocab``: the trimmed vocabulary's figures (kept tokens, the teacher's, probability
    mass dropped), or None for the teacher's whole vocabulary.
    """
    from distillation.export import export_model

    n_params = sum(p.numel() for p in model.parameters())
    best = state.get("best")
    headline = []
    if best:
        headline.append({"metric": "val exact match", "value": round(best["val_exact_match"], 4),
                         "step": best["step"], "pairs": best["eval_samples"]})
        headline.append({"metric": "val loss (CE/token)", "value": round(best["val_loss"], 4),
                         "step": best["step"], "pairs": best["eval_samples"]})
    card = {
        "title": "Distilled student model",
        "teacher": teacher_note,
        "base_model": config.student_model_name
        or f"{config.teacher_model_name} (layers kept: {config.student_layers})",
        "data": {
            "dataset": str(config.data_dir) if config.data_dir else "pairs given in Python",
            "train pairs": len(train),
            "val pairs": len(val),
            "train hash": dataset_hash,
        },
        "headline": headline,
        "config": config.model_dump(mode="json"),
        "notes": f"Exported the {exported} checkpoint after {state['step']} optimizer steps "
        f"({state['tokens_total']} training tokens); {n_params} parameters.",
    }
    metadata = {
        "teacher": teacher_note,
        "student_parameters": n_params,
        "steps": state["step"],
        "tokens": state["tokens_total"],
        "exported_checkpoint": exported,
        "best": best,
        "teacher_adaptation": dict(adapted) if adapted else None,
        "vocabulary": dict(vocab) if vocab else None,
        "dataset_hash": dataset_hash,
        "weights_hash": student_hash,
        "config": config.model_dump(mode="json"),
    }
    if config.student_quantization is not None:  # QLoRA: merge into the unquantized student
        from distillation.models import merge_lora_full_precision

        model = merge_lora_full_precision(
            model, config.student_model_name, dtype=config.dtype, device=config.device,
            trust_remote_code=config.trust_remote_code,
        )
    export_model(model, tokenizer, student_dir, merge_lora=True, card=card, metadata=metadata)


def export_initial_student(config: DistillationConfig, teacher_spec: str, out: Path) -> Path:
    """Save the student exactly as this recipe initialises it, before any training.

    Evaluation compares it with the teacher and the distilled student ("gap closed").
    """
    import torch

    from distillation.models import load_model_and_tokenizer

    teacher, tok = load_model_and_tokenizer(teacher_spec, dtype="float32", device="cpu")
    torch.manual_seed(config.seed)
    records = None
    if config.trims_vocab:
        train, val = read_records(config, None, None)
        records = train + val
    student, tok, _ = build_student(config, teacher, tok, records)
    if hasattr(student, "merge_and_unload"):  # LoRA student: untrained adapters are a no-op
        student = student.merge_and_unload()
    with atomic_dir(out) as tmp:
        student.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return Path(out)


def trained_teacher_spec(config: DistillationConfig) -> str:
    """The teacher a finished run distilled from: adapted copy, tiny test model, or as named."""
    out = Path(config.output_dir)
    if (out / ADAPTED_TEACHER / "config.json").is_file():
        return str(out / ADAPTED_TEACHER)
    if config.teacher_model_name == TINY_TEACHER:
        return str(out / "tiny_teacher")
    return config.teacher_model_name
