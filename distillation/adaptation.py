"""Teacher adaptation, the recipe's optional first stage: fine-tune the teacher on the train split.

`adapt_teacher` trains the teacher with hard labels (full weights, only its top layers, or LoRA
adapters merged afterwards) through the same optimizer step as distillation
(`loop.train_step`), validates it like the student, and stops at a target exact match. It
owns ``<output_dir>/teacher_adapted``: the adapted teacher saved as a plain model directory whose
``training_metadata.json`` fingerprints the base teacher, the data and the settings, so a later
run with the same fingerprint loads it instead of training again.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distillation import loop
from distillation.config import DistillationConfig
from distillation.data import answer_logits, encode_records

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

ADAPTED_TEACHER = "teacher_adapted"
"""Where a run keeps its adapted teacher: ``<output_dir>/teacher_adapted``."""


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
    val_idx = loop.eval_subset(len(val), ad.eval_samples or config.eval_samples, config.seed)
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
    if ad.gradient_checkpointing:
        set_checkpointing(model, True)
    model.train()
    micro = ad.micro_batch_size or ad.batch_size
    optimizer = loop.make_optimizer(model, ad.learning_rate, 0.0)
    scheduler = loop.make_scheduler(optimizer, ad.warmup_steps, ad.max_steps, "cosine", 0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    out = Path(config.output_dir)
    cursor = loop.Cursor()
    loss_of = partial(hard_label_parts, model=model, n_vocab=n_vocab)
    eval_cfg = config.model_copy(update={"batch_size": ad.batch_size})
    metrics: dict[str, Any] = {"mode": ad.mode, "steps": 0, "evals": []}
    bar = loop.make_bar(ad.max_steps, 0, disable=not (progress and accelerator.is_main_process),
                        main=accelerator.is_main_process)
    bar.set_description("adapt teacher")
    start, eval_seconds = time.perf_counter(), 0.0
    for step in range(1, ad.max_steps + 1):
        sums, _ = loop.train_step(
            model, loss_of, train_ex, lengths, cursor, optimizer, scheduler, accelerator,
            batch_size=micro, seed=config.seed + 1, pad_id=pad_id,
            accum_steps=ad.batch_size // micro,
            max_grad_norm=1.0,
            check=partial(loop.check_finite, step=step - 1, out=out, config=config,
                          accelerator=accelerator,
                          advice="lower teacher_adaptation.learning_rate and run again"),
            loss_name="teacher adaptation loss",
            check_grad_norm=False,  # adaptation has only ever checked its loss
        )
        bar.update(1)
        bar.set_postfix(ce=f"{float(sums[1]):.3f}")
        metrics["steps"] = step
        if (ad.eval_every and step % ad.eval_every == 0) or step == ad.max_steps:
            t_eval = time.perf_counter()
            m = loop.evaluate(model, tokenizer, val_pairs, val_ex, accelerator, n_vocab, pad_id,
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
    if ad.gradient_checkpointing:
        set_checkpointing(model, False)
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


def set_checkpointing(model: PreTrainedModel, on: bool) -> None:
    """Turn activation (gradient) checkpointing on or off, by transformers 5's name or 4's."""
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def hard_label_parts(
    batch: Mapping[str, Any], idx: Sequence[int], *, model: torch.nn.Module, n_vocab: int
) -> dict[str, torch.Tensor]:
    """The teacher's loss on one micro-batch: hard-label CE on the answer tokens, no KD term."""
    from distillation.losses import ce_loss

    ce = ce_loss(answer_logits(model, batch, n_vocab), batch["targets"])
    return {"loss": ce, "ce": ce, "kd": ce.new_zeros(())}
