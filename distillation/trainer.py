"""The distillation recipe: one function, `run_distillation`, that reads top to bottom.

    setup → (teacher adaptation) → student → soft-target cache → training loop → export

Setup reads the dataset, loads the teacher and its tokenizer and seeds everything. The optional
first stage fine-tunes the teacher on the train split with hard labels (`adapt_teacher`). The
student is a named model, or a copy of some of the (adapted) teacher's layers. With
``soft_targets: cached`` the teacher runs once over the train split and its top-k log-probs are
read from disk afterwards (`distillation.cache`); with ``online`` it runs at every step. The loop
uses `accelerate` (``accelerate launch`` gives multi-GPU DDP/FSDP without code changes), logs
every optimizer step to ``training_history.jsonl``, validates every ``eval_every`` steps (loss and
exact match of greedy answers), keeps the best checkpoint, stops early on a patience, and writes
an atomic, exactly resumable checkpoint every ``save_every`` steps. The best (else the final)
student is exported as a plain Hugging Face directory ``<output_dir>/student``.

Helpers are module-level functions; there are no trainer classes to subclass.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import pickle
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_loaders.errors import InputError
from data_loaders.io import atomic_dir, atomic_write_json, atomic_write_text
from distillation.config import DistillationConfig
from distillation.data import (
    IGNORE_INDEX,
    answer_logits,
    as_records,
    batch_to,
    collate,
    encode_records,
    epoch_batches,
    load_dataset_dir,
    routing_records,
)

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

HISTORY_FILE = "training_history.jsonl"
CHECKPOINTS = "checkpoints"
LAST, BEST = "last", "best"
ADAPTED_TEACHER = "teacher_adapted"
STUDENT_DIR = "student"
# Validation decodes at most this many tokens past the reference answer's length: exact match
# ignores only articles, punctuation and spacing, so a longer answer cannot match.
EM_MARGIN_TOKENS = 8
TINY_TEACHER = "tiny"
"""Teacher spec that builds a tiny random model under ``<output_dir>/tiny_teacher`` (tests)."""

# Config fields a resumed run may change: they do not alter what the steps compute.
_RESUMABLE_CHANGES = {
    "output_dir", "max_steps", "eval_every", "eval_samples", "eval_max_new_tokens",
    "early_stopping_patience", "save_every", "cache", "device",
}


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the last good checkpoint is left as it was."""


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


@dataclass
class Cursor:
    """Where the loop is in the data: epoch number and index into that epoch's batch order."""

    epoch: int = 0
    pos: int = 0


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
    import torch
    from accelerate.utils import set_seed

    from distillation.cache import (
        cache_fingerprint,
        fingerprint_model,
        fingerprint_records,
        load_or_build_cache,
    )
    from distillation.losses import DistillationLoss
    from distillation.models import check_quantization, shared_vocab_size

    # ---------------------------------------------------------------- 1. setup
    out = Path(config.output_dir)
    accelerator = make_accelerator(config)
    device = accelerator.device
    # A student that cannot be loaded quantized here fails now, not after the teacher's work.
    check_quantization(config.student_quantization, device, "student_quantization")
    train, val = read_records(config, train_records, val_records)
    ckpt_state = prepare_output_dir(config, out, resume, accelerator)
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
    student, tokenizer = build_student(config, teacher, tokenizer)
    n_vocab = shared_vocab_size(tokenizer, *(m for m in (teacher, student) if m is not None))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_ex = encode_records(tokenizer, train, config.max_seq_len)
    val_idx = eval_subset(len(val), config.eval_samples, config.seed)
    val_pairs = [val[i] for i in val_idx]
    val_ex = encode_records(tokenizer, val_pairs, config.max_seq_len)
    lengths = [len(e["input_ids"]) for e in train_ex]

    # ---------------------------------------------------------------- 4. soft targets
    cache = None
    if config.kd_ratio > 0 and config.soft_targets == "cached":
        fp = cache_fingerprint(
            teacher, tokenizer, train, temperature=config.temperature, top_k=config.top_k,
            max_seq_len=config.max_seq_len,
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
    world, rank = accelerator.num_processes, accelerator.process_index
    trainable = [p for p in student.parameters() if p.requires_grad]

    # ---------------------------------------------------------------- 6. the loop
    bar = make_bar(config.max_steps, step, disable=not (progress and accelerator.is_main_process),
                   main=accelerator.is_main_process)
    run_start = time.perf_counter() - state["elapsed"]
    student.train()
    while step < config.max_steps:
        t0 = time.perf_counter()
        sums = torch.zeros(4, dtype=torch.float64)  # loss, ce, kd, tokens over micro-batches
        for micro in range(config.grad_accum_steps):
            idx = take_batch(cursor, lengths, config.batch_size, config.seed, world)[rank]
            batch = batch_to(collate([train_ex[i] for i in idx], pad_id), device)
            teacher_kw = soft_targets(batch, idx, teacher, cache, n_vocab)
            sync = contextlib.nullcontext()
            if micro < config.grad_accum_steps - 1:
                sync = accelerator.no_sync(student)  # all-reduce once per optimizer step
            with sync:
                logits = answer_logits(student, batch, n_vocab)  # (B, n_keep, V)
                parts = loss_fn(logits, batch["targets"], **teacher_kw)
                del logits, teacher_kw
                check_finite(parts["loss"], step, out, config, accelerator, what="loss")
                accelerator.backward(parts["loss"] / config.grad_accum_steps)
            sums += torch.tensor([parts["loss"].item(), parts["ce"].item(), parts["kd"].item(),
                                  batch["n_tokens"]], dtype=torch.float64)
            del parts, batch
        grad_norm = None
        if config.max_grad_norm is not None:
            grad_norm = accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
            check_finite(grad_norm, step, out, config, accelerator, what="gradient norm")
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
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
                       fingerprint_model(raw_student))
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
    """An `Accelerator` for the configured device: bf16 autocast on GPUs that have it."""
    import torch
    from accelerate import Accelerator

    from distillation.models import resolve_device

    dev = resolve_device(config.device)
    cpu = dev.type == "cpu"
    mixed = "no"
    if not cpu and config.dtype in ("auto", "bfloat16", "bf16") and torch.cuda.is_bf16_supported():
        mixed = "bf16"
    return Accelerator(cpu=cpu, mixed_precision=mixed)


def read_records(
    config: DistillationConfig,
    train_records: Sequence[Any] | None,
    val_records: Sequence[Any] | None,
) -> tuple[list[dict], list[dict]]:
    """Train and val pairs from the arguments or from ``config.data_dir``.

    The train pairs are followed by ``routing_share`` of them again as routing examples
    (`data.routing_records`), which the teacher adaptation and the student both learn.
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
    return train + routing_records(train, config.routing_share, config.seed), val


def prepare_output_dir(
    config: DistillationConfig, out: Path, resume: bool, accelerator: Accelerator
) -> dict | None:
    """Check a resume is possible, or clear a previous run's checkpoints and history.

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
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The student (float32, train mode) and the tokenizer both models read.

    A named student must share the teacher's token ids for logit distillation. Without a name
    the student keeps ``student_layers`` of the teacher's layers.
    """
    import torch

    from distillation.models import (
        apply_lora,
        check_tokenizers_compatible,
        load_model_and_tokenizer,
    )
    from distillation.pruning import prune_layers

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
        student, tokenizer = prune_layers(teacher, config.student_layers), teacher_tok
        student = student.to(torch.float32)
    if config.student_lora is not None:
        lora = config.student_lora
        student = apply_lora(student, r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                             target_modules=lora.target_modules)
    student.train()
    return student, tokenizer


def eval_subset(n_val: int, eval_samples: int, seed: int) -> list[int]:
    """A fixed, seeded choice of validation pairs (the same at every validation and resume)."""
    if n_val <= eval_samples:
        return list(range(n_val))
    return sorted(random.Random(f"eval:{seed}").sample(range(n_val), eval_samples))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float):
    """AdamW over trainable parameters; no decay on biases and norms (1-D tensors)."""
    import torch

    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Learning-rate multiplier after ``step`` optimizer steps: linear warm-up, then decay."""
    if warmup and step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer, warmup: int, total: int, schedule: str, min_ratio: float):
    """A ``LambdaLR`` with `lr_factor` (stepped once per optimizer step, never by accelerate)."""
    import torch

    def factor(s: int) -> float:
        return lr_factor(s, warmup, total, schedule, min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_bar(total: int, initial: int, *, disable: bool, main: bool = True):
    """The training progress bar (steps, ETA); its ``write`` prints on the main process only."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, desc="distill", unit="step", disable=disable,
               dynamic_ncols=True)
    if not main:
        bar.write = lambda *args, **kw: None  # one line per validation, not one per process
    return bar


# ============================================================================================
# Loop helpers
# ============================================================================================


_EPOCH_ORDER: dict[tuple, list[list[int]]] = {}


def take_batch(
    cursor: Cursor, lengths: Sequence[int], batch_size: int, seed: int, world: int
) -> list[list[int]]:
    """The next ``world`` batches (one per process) from the seeded epoch order; advances it."""
    key = (id(lengths), len(lengths), batch_size, seed, cursor.epoch)
    batches = _EPOCH_ORDER.get(key)
    if batches is None:
        _EPOCH_ORDER.clear()
        batches = epoch_batches(lengths, batch_size, seed, cursor.epoch)
        _EPOCH_ORDER[key] = batches
    if cursor.pos + world > len(batches):
        cursor.epoch, cursor.pos = cursor.epoch + 1, 0
        return take_batch(cursor, lengths, batch_size, seed, world)
    out = batches[cursor.pos : cursor.pos + world]
    cursor.pos += world
    return out


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


def check_finite(
    value: torch.Tensor,
    step: int,
    out: Path,
    config: DistillationConfig,
    accelerator: Accelerator,
    *,
    what: str,
    advice: str | None = None,
) -> None:
    """Stop the run (on every process) before a NaN/inf loss or gradient reaches the weights.

    Raises:
        TrainingDiverged: naming the step, the last good checkpoint and what to change.
    """
    import torch

    bad = torch.tensor([0.0 if torch.isfinite(value.detach()).all() else 1.0],
                       device=accelerator.device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    if float(bad) == 0:
        return
    if advice is not None:
        raise TrainingDiverged(f"{what} is {float(value.detach())} at step {step + 1}; {advice}")
    raise TrainingDiverged(
        f"{what} is {float(value.detach())} at step {step + 1}; stopped before updating the "
        "weights. "
        f"{_last_good(out)} Lower learning_rate (now {config.learning_rate}) or raise "
        f"warmup_steps, then resume with --resume"
    )


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
                f"{_last_good(out)} Lower learning_rate (now {config.learning_rate}) or raise "
                "warmup_steps, then resume with --resume"
            )


def _last_good(out: Path) -> str:
    state = out / CHECKPOINTS / LAST / "state.json"
    if state.is_file():
        step = json.loads(state.read_text(encoding="utf-8"))["step"]
        return f"The last good checkpoint is {state.parent} (step {step})."
    return "No checkpoint was written yet."


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


def evaluate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Mapping],
    examples: Sequence[Mapping],
    accelerator: Accelerator,
    n_vocab: int,
    pad_id: int,
    config: DistillationConfig,
) -> dict[str, float]:
    """Validation loss (hard-label CE per answer token) and exact match of greedy answers.

    Greedy answers are cut at the reference's length plus ``EM_MARGIN_TOKENS`` tokens (at most
    ``eval_max_new_tokens``): an answer that runs longer cannot match.

    Each process takes a slice of the pairs; sums are reduced over processes. The model's
    train/eval mode is restored.

    Returns:
        ``{"val_loss", "val_exact_match", "eval_samples"}``.
    """
    import torch
    import torch.nn.functional as F

    from distillation.generation import generate_answers
    from distillation.metrics import exact_match

    rank, world = accelerator.process_index, accelerator.num_processes
    mine = list(range(rank, len(pairs), world))
    was_training = model.training
    model.eval()
    loss_sum, n_tok, hits = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(mine), config.batch_size):
            chunk = mine[start : start + config.batch_size]
            batch = batch_to(collate([examples[i] for i in chunk], pad_id), accelerator.device)
            logits = answer_logits(model, batch, n_vocab).float()  # (B, K, V)
            targets = batch["targets"]
            loss_sum += float(F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                              ignore_index=IGNORE_INDEX, reduction="sum"))
            n_tok += int((targets != IGNORE_INDEX).sum())
            del logits
        # An answer longer than the reference plus a margin cannot be an exact match, so
        # decoding stops there: a weak model does not run every answer to eval_max_new_tokens.
        # The labelled tokens of an encoded example are its answer plus the end-of-turn token.
        limits = [
            min(config.eval_max_new_tokens,
                sum(t != IGNORE_INDEX for t in examples[i]["labels"]) - 1 + EM_MARGIN_TOKENS)
            for i in mine
        ]
        answers = generate_answers(
            accelerator.unwrap_model(model), tokenizer, [pairs[i] for i in mine],
            max_new_tokens=limits, batch_size=config.batch_size,
        )
        hits = sum(exact_match(a, pairs[i]["answer"]) for a, i in zip(answers, mine, strict=True))
    model.train(was_training)
    totals = torch.tensor([loss_sum, n_tok, hits, len(mine)], dtype=torch.float64,
                          device=accelerator.device)
    totals = accelerator.reduce(totals, reduction="sum").cpu()
    return {
        "val_loss": float(totals[0] / max(totals[1], 1)),
        "val_exact_match": float(totals[2] / max(totals[3], 1)),
        "eval_samples": int(totals[3]),
    }


def append_history(path: Path, row: Mapping[str, Any]) -> None:
    """Append one JSON row to the history file (flushed, so a crash loses at most this row)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()


def read_history(path: str | Path) -> list[dict]:
    """Rows of a history file; a torn last line (a crash mid-write) is skipped."""
    rows = []
    path = Path(path)
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    return rows


def truncate_history(path: Path, step: int) -> None:
    """Drop rows written after the checkpoint a run resumes from (they will be redone)."""
    rows = [r for r in read_history(path) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def last_eval(path: Path) -> dict | None:
    """The last validation row of a history file."""
    rows = [r for r in read_history(path) if r.get("event") == "eval"]
    return rows[-1] if rows else None


# ============================================================================================
# Checkpoints
# ============================================================================================


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Frozen weights (a LoRA base) are rebuilt identically at start-up; only trained ones vary.
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load trainable weights saved by `save_checkpoint`/`save_best` into ``model``."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = set(state) - {n for n, _ in model.named_parameters()}
    if missing:
        raise InputError(f"{path}: checkpoint has weights the model lacks ({sorted(missing)[:3]})")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    state: Mapping[str, Any],
    config: DistillationConfig,
    accelerator: Accelerator,
) -> None:
    """Write weights, optimizer, scheduler, RNG states and counters to ``path`` atomically."""
    import numpy as np
    import torch

    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    with atomic_dir(path) as tmp:
        torch.save(_trainable_state(model), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        with open(tmp / "rng.pkl", "wb") as fh:
            pickle.dump(rng, fh)
        atomic_write_json(tmp / "state.json", {
            **state, "world_size": accelerator.num_processes,
            "config": config.model_dump(mode="json"),
        })
    accelerator.wait_for_everyone()


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler) -> dict:
    """Restore what `save_checkpoint` wrote; returns the counters (step, epoch, pos, ...)."""
    import numpy as np
    import torch

    load_weights(model, path / "model.pt")
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu",
                                         weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    with open(path / "rng.pkl", "rb") as fh:
        rng = pickle.load(fh)  # written by this program into its own run dir
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    state.pop("config", None)
    state.pop("world_size", None)
    return state


def best_matches(path: Path, best: Mapping) -> bool:
    """Whether ``path`` holds the weights of the best validation recorded in the run state."""
    try:
        saved = json.loads((path / "best.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (path / "model.pt").is_file() and saved.get("step") == best.get("step")


def save_best(path: Path, model: torch.nn.Module, best: Mapping, accelerator: Accelerator) -> None:
    """Keep the best student's weights (by val exact match, then val loss)."""
    import torch

    if accelerator.is_main_process:
        with atomic_dir(path) as tmp:
            torch.save(_trainable_state(model), tmp / "model.pt")
            atomic_write_json(tmp / "best.json", dict(best))
    accelerator.wait_for_everyone()


# ============================================================================================
# Teacher adaptation (optional first stage)
# ============================================================================================


def adapt_teacher(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Sequence[Mapping],
    val: Sequence[Mapping],
    config: DistillationConfig,
    accelerator: Accelerator,
    *,
    progress: bool = True,
) -> tuple[PreTrainedModel, dict]:
    """Fine-tune the teacher on the train split with hard labels; reuse a matching earlier one.

    Trains full weights or LoRA adapters (merged afterwards) for at most
    ``teacher_adaptation.max_steps`` steps, validating every ``eval_every`` steps and stopping
    once val exact match reaches ``target_exact_match``. The result is saved as a plain model
    directory ``<output_dir>/teacher_adapted``; its ``training_metadata.json`` records a
    fingerprint of the base teacher, data and settings, and a later run with the same
    fingerprint loads it instead of training again.

    Returns:
        ``(adapted teacher in eval mode, metrics dict)``.
    """
    from distillation.cache import fingerprint_model, fingerprint_records, fingerprint_tokenizer
    from distillation.export import export_model
    from distillation.losses import ce_loss
    from distillation.models import apply_lora, load_model, resolve_dtype, shared_vocab_size
    from distillation.pruning import train_top_layers

    ad = config.teacher_adaptation
    target = Path(config.output_dir) / ADAPTED_TEACHER
    fingerprint = {
        "base_teacher": fingerprint_model(teacher),
        "tokenizer": fingerprint_tokenizer(tokenizer),
        "dataset": fingerprint_records(train),
        "settings": ad.model_dump(mode="json"),
        "seed": config.seed,
        "max_seq_len": config.max_seq_len,
    }
    meta_file = target / "training_metadata.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("adaptation_fingerprint") == fingerprint:
            log.info("teacher adaptation: reusing %s", target)
            model = load_model(str(target), dtype=config.dtype, device=config.device)
            return model, {**meta.get("adaptation", {}), "reused": True}
        log.info("teacher adaptation: %s is for other inputs; adapting again", target)

    device = accelerator.device
    n_vocab = shared_vocab_size(tokenizer, teacher)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_ex = encode_records(tokenizer, train, config.max_seq_len)
    lengths = [len(e["input_ids"]) for e in train_ex]
    val_idx = eval_subset(len(val), ad.eval_samples or config.eval_samples, config.seed)
    val_pairs = [val[i] for i in val_idx]
    val_ex = encode_records(tokenizer, val_pairs, config.max_seq_len)

    model = teacher.to(device)
    if ad.mode == "lora":
        model = apply_lora(model, r=ad.lora.r, alpha=ad.lora.alpha, dropout=ad.lora.dropout,
                           target_modules=ad.lora.target_modules)
    elif ad.train_top_layers is not None:
        n_train = train_top_layers(model, ad.train_top_layers)
        log.info("teacher adaptation: training the top %d layers (%.1fM parameters)",
                 ad.train_top_layers, n_train / 1e6)
    model.train()
    optimizer = make_optimizer(model, ad.learning_rate, 0.0)
    scheduler = make_scheduler(optimizer, ad.warmup_steps, ad.max_steps, "cosine", 0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    world, rank = accelerator.num_processes, accelerator.process_index
    cursor = Cursor()
    eval_cfg = config.model_copy(update={"batch_size": ad.batch_size})
    metrics: dict[str, Any] = {"mode": ad.mode, "steps": 0, "evals": []}
    bar = make_bar(ad.max_steps, 0, disable=not (progress and accelerator.is_main_process),
                   main=accelerator.is_main_process)
    bar.set_description("adapt teacher")
    start, eval_seconds = time.perf_counter(), 0.0
    for step in range(1, ad.max_steps + 1):
        idx = take_batch(cursor, lengths, ad.batch_size, config.seed + 1, world)[rank]
        batch = batch_to(collate([train_ex[i] for i in idx], pad_id), device)
        loss = ce_loss(answer_logits(model, batch, n_vocab), batch["targets"])
        check_finite(loss, step - 1, Path(config.output_dir), config, accelerator,
                     what="teacher adaptation loss",
                     advice="lower teacher_adaptation.learning_rate and run again")
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        bar.update(1)
        bar.set_postfix(ce=f"{loss.item():.3f}")
        metrics["steps"] = step
        if (ad.eval_every and step % ad.eval_every == 0) or step == ad.max_steps:
            t_eval = time.perf_counter()
            m = evaluate(model, tokenizer, val_pairs, val_ex, accelerator, n_vocab, pad_id,
                         eval_cfg)
            eval_seconds += time.perf_counter() - t_eval
            # train_seconds: wall time spent training (validation excluded), to compare modes
            m.update(step=step, elapsed=time.perf_counter() - start,
                     train_seconds=time.perf_counter() - start - eval_seconds)
            metrics["evals"].append(m)
            bar.write(f"teacher step {step}: val exact match {m['val_exact_match']:.1%}")
            if ad.target_exact_match is not None and m["val_exact_match"] >= ad.target_exact_match:
                break
    bar.close()
    metrics["seconds"] = time.perf_counter() - start
    metrics["val_exact_match"] = metrics["evals"][-1]["val_exact_match"]

    model = accelerator.unwrap_model(model)
    if ad.mode == "lora":
        model = model.merge_and_unload()
    model.eval()
    if accelerator.is_main_process:
        export_model(
            model, tokenizer, target,
            card={"title": "Adapted teacher", "teacher": config.teacher_model_name,
                  "summary": "The teacher fine-tuned on the train split (hard labels) before "
                  "distillation.", "metrics": metrics["evals"]},
            metadata={"adaptation_fingerprint": fingerprint, "adaptation": metrics},
        )
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    model = model.to(resolve_dtype(config.dtype, device))  # inference dtype from now on
    del optimizer, scheduler
    gc.collect()
    return model, metrics


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
) -> None:
    """Write the student as a Hugging Face dir with a model card and training metadata."""
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
    student, tok = build_student(config, teacher, tok)
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
