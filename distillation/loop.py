"""The training step both stages share: data order, optimizer and schedule, the step, validation.

Distillation (`trainer.run_distillation`) and teacher adaptation (`adaptation.adapt_teacher`)
walk their train split with a `Cursor` over the seeded epoch order (`take_batch`), build AdamW
with a warm-up then cosine (or constant) schedule, and take each optimizer step with
`train_step`: micro-batches with one gradient all-reduce, a NaN/inf check before anything
reaches the weights (`TrainingDiverged`), clipping, then the optimizer and schedule. `evaluate`
is the validation both report: hard-label loss and exact match of greedy answers. Only the loss
each stage computes on a micro-batch differs.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distillation.checkpoints import last_good
from distillation.config import DistillationConfig
from distillation.data import IGNORE_INDEX, answer_logits, batch_to, collate, epoch_batches

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

# Validation decodes at most this many tokens past the reference answer's length: exact match
# ignores only articles, punctuation and spacing, so a longer answer cannot match.
EM_MARGIN_TOKENS = 8


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the last good checkpoint is left as it was."""


@dataclass
class Cursor:
    """Where the loop is in the data: epoch number and index into that epoch's batch order."""

    epoch: int = 0
    pos: int = 0


# --------------------------------------------------------------------------------------------
# Data order, optimizer, schedule
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------------


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


def train_step(
    model: torch.nn.Module,
    loss_of: Callable[[Mapping[str, Any], Sequence[int]], Mapping[str, torch.Tensor]],
    examples: Sequence[Mapping],
    lengths: Sequence[int],
    cursor: Cursor,
    optimizer,
    scheduler,
    accelerator: Accelerator,
    *,
    batch_size: int,
    seed: int,
    pad_id: int,
    accum_steps: int,
    max_grad_norm: float | None,
    check: Callable[..., None],
    loss_name: str = "loss",
    check_grad_norm: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One optimizer step over ``accum_steps`` micro-batches; distillation and adaptation share it.

    Each process takes its own batch of the seeded epoch order (`take_batch`), gradients are
    all-reduced once, on the last micro-batch, then clipped; the optimizer and the schedule step
    once and the gradients are dropped.

    Args:
        model: the model being trained (as `Accelerator.prepare` returned it).
        loss_of: ``(batch, example indices) -> {"loss", "ce", "kd"}``, scalar tensors for one
            micro-batch (`trainer.kd_parts`, `adaptation.hard_label_parts`).
        examples: the encoded train examples.
        lengths: token count of each example (batches group similar lengths).
        cursor: where the loop is in the data; advanced past the batches taken.
        optimizer: stepped once.
        scheduler: stepped once.
        accelerator: the run's `Accelerator`.
        batch_size: examples per micro-batch and process.
        seed: seed of the epoch order.
        pad_id: the padding token id.
        accum_steps: micro-batches per optimizer step.
        max_grad_norm: clip the gradient norm to this; None does not clip.
        check: ``check(value, what=...)`` raises `TrainingDiverged` on a NaN/inf value, before
            it reaches the weights (`check_finite` with the step and run bound).
        loss_name: what ``check`` calls the loss in its message.
        check_grad_norm: also ``check`` the gradient norm when clipping.

    Returns:
        ``(sums, grad_norm)``: loss, ce, kd and answer tokens summed over the micro-batches
        (float64, on the CPU, this process only), and the gradient norm before clipping (None
        without clipping).
    """
    import torch

    world, rank = accelerator.num_processes, accelerator.process_index
    sums = torch.zeros(4, dtype=torch.float64)  # loss, ce, kd, tokens over micro-batches
    for micro in range(accum_steps):
        idx = take_batch(cursor, lengths, batch_size, seed, world)[rank]
        batch = batch_to(collate([examples[i] for i in idx], pad_id), accelerator.device)
        sync = contextlib.nullcontext()
        if micro < accum_steps - 1:
            sync = accelerator.no_sync(model)  # all-reduce once per optimizer step
        with sync:
            parts = loss_of(batch, idx)
            check(parts["loss"], what=loss_name)
            accelerator.backward(parts["loss"] / accum_steps)
        sums += torch.tensor([parts["loss"].item(), parts["ce"].item(), parts["kd"].item(),
                              batch["n_tokens"]], dtype=torch.float64)
        del parts, batch
    grad_norm = None
    if max_grad_norm is not None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        grad_norm = accelerator.clip_grad_norm_(trainable, max_grad_norm)
        if check_grad_norm:
            check(grad_norm, what="gradient norm")
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return sums, grad_norm


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
        f"{last_good(out)} Lower learning_rate (now {config.learning_rate}) or raise "
        f"warmup_steps, then resume with --resume"
    )


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


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
