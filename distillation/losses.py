"""Distillation losses: KL / reverse KL / generalized JSD, cross-entropy, and their blend.

This module owns every loss the distillation recipe optimises. All functions are pure functions
of tensors: student logits `(B, T, V)`, teacher logits `(B, T, V)` (or the teacher's top-k
log-probs and ids `(B, T, k)`) and labels `(B, T)`. Labels are already aligned with the logits
(`logits[:, t]` predicts `labels[:, t]`; the caller shifts) and positions whose label equals
`ignore_index` are left out (the caller sets prompt tokens to `ignore_index`, so the loss is on
answer tokens only). Softmax is computed in float32 (float64 inputs stay float64), losses are
averaged over the non-ignored tokens, and a batch with no such token gives exactly 0 with a zero
(not NaN) gradient.

Every divergence is multiplied by `temperature ** 2` so that its gradient keeps the same scale
as the hard-label loss when the temperature changes (Hinton et al., 2015, "Distilling the
Knowledge in a Neural Network", sec. 2).

`chunk_size` switches to a chunked evaluation that bounds peak memory: the non-ignored positions
are gathered `chunk_size` at a time, and the gradient with respect to the student logits is
computed chunk by chunk during the forward pass (as Liger-Kernel's fused losses do), so
full-vocabulary float32 probabilities never exist for more than one chunk. It gives the same
value and gradient as the plain path (up to float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "DistillationLoss",
    "Kind",
    "blend",
    "ce_loss",
    "forward_kl",
    "generalized_jsd",
    "kd_divergence",
    "reverse_kl",
    "sparse_kd_divergence",
]

Kind = Literal["forward_kl", "reverse_kl", "jsd"]
_KINDS = ("forward_kl", "reverse_kl", "jsd")

# A row loss maps float rows of student logits (N, V) plus matching rows of the other inputs to
# a per-token loss (N,). The plain and chunked paths run the very same row loss, which is what
# makes them agree.
RowLoss = Callable[..., torch.Tensor]


# --------------------------------------------------------------------------------------------
# Per-token divergences on log-probabilities (rows of shape (N, V) or (N, k + 1)).
# --------------------------------------------------------------------------------------------


def _kl_rows(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) per row, sum_v P_v (log P_v - log Q_v), with 0 log 0 = 0.

    The inner `where` keeps `-inf - -inf` (a bucket both distributions give zero mass) from
    turning into NaN in the value or the gradient.
    """
    p = p_log.exp()
    diff = torch.where(p > 0, p_log - q_log, torch.zeros((), dtype=p.dtype, device=p.device))
    return (p * diff).sum(-1)


def _divergence_rows(
    s_log: torch.Tensor, t_log: torch.Tensor, kind: Kind, beta: float
) -> torch.Tensor:
    """Per-row divergence between student log-probs `s_log` and teacher log-probs `t_log`."""
    if kind == "forward_kl" or (kind == "jsd" and beta == 0.0):
        return _kl_rows(t_log, s_log)
    if kind == "reverse_kl" or (kind == "jsd" and beta == 1.0):
        return _kl_rows(s_log, t_log)
    # log M = log(beta * P_T + (1 - beta) * P_S), elementwise to avoid stacking two (N, V) copies.
    m_log = torch.logaddexp(t_log + math.log(beta), s_log + math.log1p(-beta))
    return beta * _kl_rows(t_log, m_log) + (1.0 - beta) * _kl_rows(s_log, m_log)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Float32 for half/bfloat16/float32 inputs, float64 kept as is (tests use it)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _dense_row_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    *,
    kind: Kind,
    beta: float,
    temperature: float,
) -> torch.Tensor:
    """T² · D(teacher, student) per row; student (N, V) float, teacher (N, V) any float dtype."""
    s_log = F.log_softmax(student / temperature, dim=-1)  # (N, V)
    t_log = F.log_softmax(teacher.to(student.dtype) / temperature, dim=-1)  # (N, V)
    return _divergence_rows(s_log, t_log, kind, beta) * temperature**2


def _sparse_row_loss(
    student: torch.Tensor,
    topk_logprobs: torch.Tensor,
    topk_ids: torch.Tensor,
    *,
    kind: Kind,
    beta: float,
    temperature: float,
) -> torch.Tensor:
    """T² · D over k + 1 buckets per row; student (N, V), top-k log-probs and ids (N, k)."""
    vocab, k = student.shape[-1], topk_ids.shape[-1]
    u = student / temperature  # (N, V)
    lse = torch.logsumexp(u, dim=-1, keepdim=True)  # (N, 1)
    s_log = u.gather(-1, topk_ids) - lse  # (N, k)
    t_log = topk_logprobs.to(student.dtype)  # (N, k)
    if k < vocab:
        # The tail bucket holds every token outside the top k. The student's tail is a logsumexp
        # over the other logits (at least one is finite, so value and gradient are finite);
        # the teacher's is the left-over mass, summed in float64 because it is 1 minus almost 1.
        rest = u.scatter(-1, topk_ids, float("-inf"))  # (N, V)
        s_tail = torch.logsumexp(rest, dim=-1, keepdim=True) - lse  # (N, 1)
        t_mass = 1.0 - topk_logprobs.double().exp().sum(-1, keepdim=True)
        t_tail = t_mass.clamp_min(0.0).log().to(student.dtype)  # (N, 1); -inf when empty
        s_log = torch.cat([s_log, s_tail], dim=-1)  # (N, k + 1)
        t_log = torch.cat([t_log, t_tail], dim=-1)
    # With k == V there is no tail: a rounding residue in 1 - sum(exp(top-k)) must not become a
    # bucket that the student cannot match.
    return _divergence_rows(s_log, t_log, kind, beta) * temperature**2


def _ce_row_loss(student: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per row; student (N, V) float, labels (N,)."""
    return F.cross_entropy(student, labels, reduction="none")


# --------------------------------------------------------------------------------------------
# Chunk kernels: loss sum and gradient w.r.t. the raw student logits of one chunk of rows.
# Each takes `rows` (C, V), a private float copy it may overwrite, and the matching rows of the
# other inputs (also private copies), and works in place so that only 3-4 (C, V) float buffers
# exist at once. The formulas are the analytic gradients of the row losses above; the tests
# check them against autograd on the plain path.
# --------------------------------------------------------------------------------------------

ChunkFn = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of a * b over all elements without materialising the product."""
    return torch.dot(a.reshape(-1), b.reshape(-1))


def _dense_chunk(
    rows: torch.Tensor,
    teacher: torch.Tensor,
    *,
    kind: Kind,
    beta: float,
    temperature: float,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Loss sum and d(loss sum)/d(student logits) of `_dense_row_loss` for one chunk."""
    tau = temperature
    s = rows.div_(tau)
    s.sub_(torch.logsumexp(s, dim=-1, keepdim=True))  # (C, V) log P_S
    t = teacher.to(s.dtype).div_(tau)
    t.sub_(torch.logsumexp(t, dim=-1, keepdim=True))  # (C, V) log P_T
    if kind == "forward_kl" or (kind == "jsd" and beta == 0.0):
        p = t.exp()  # (C, V) P_T
        d = t.sub_(s).masked_fill_(p == 0, 0.0)  # log P_T - log P_S, 0 where P_T = 0
        loss = _dot(p, d)
        # d/du with u = z / tau: P_S * sum_v P_T - P_T.
        grad = s.exp_().mul_(p.sum(-1, keepdim=True)).sub_(p) if need_grad else None
    elif kind == "reverse_kl" or (kind == "jsd" and beta == 1.0):
        p = s.exp()  # (C, V) P_S
        d = t.neg_().add_(s).masked_fill_(p == 0, 0.0)  # log P_S - log P_T
        kl = torch.bmm(p.unsqueeze(1), d.unsqueeze(2)).view(-1, 1)  # (C, 1) per-row KL
        loss = kl.sum()
        # g = P_S (d + 1) w.r.t. log P_S; d/du = g - P_S sum_v g = P_S (d - KL - (sum P_S - 1)).
        grad = d.sub_(kl + (p.sum(-1, keepdim=True) - 1.0)).mul_(p) if need_grad else None
    else:
        m = s + math.log1p(-beta)
        torch.logaddexp(m, t + math.log(beta), out=m)  # (C, V) log M
        p = t.exp()  # (C, V) P_T
        loss_t = _dot(p, t.sub_(m).masked_fill_(p == 0, 0.0))
        torch.exp(s, out=p)  # (C, V) P_S, reusing the buffer
        d = s.sub_(m).masked_fill_(p == 0, 0.0)  # log P_S - log M
        loss = beta * loss_t + (1.0 - beta) * _dot(p, d)
        # g = (1 - beta) P_S (log P_S - log M) w.r.t. log P_S (the P_T and M terms cancel);
        # d/du = g - P_S sum_v g.
        if need_grad:
            grad = d.mul_(p).mul_(1.0 - beta)
            grad.addcmul_(p, grad.sum(-1, keepdim=True), value=-1.0)
        else:
            grad = None
    # The loss is scaled by tau^2 and du/dz = 1 / tau.
    return loss * tau**2, (grad.mul_(tau) if grad is not None else None)


def _ce_chunk(
    rows: torch.Tensor, labels: torch.Tensor, *, need_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Loss sum and gradient (softmax - one-hot) of `_ce_row_loss` for one chunk."""
    lse = torch.logsumexp(rows, dim=-1, keepdim=True)  # (C, 1)
    loss = (lse.squeeze(-1) - rows.gather(-1, labels.unsqueeze(-1)).squeeze(-1)).sum()
    if not need_grad:
        return loss, None
    grad = rows.sub_(lse).exp_()  # (C, V) softmax
    grad[torch.arange(grad.shape[0], device=grad.device), labels] -= 1.0
    return loss, grad


def _autograd_chunk(row_loss: RowLoss) -> ChunkFn:
    """Chunk kernel for any row loss, by running autograd on the chunk alone."""

    def chunk(
        rows: torch.Tensor, *others: torch.Tensor, need_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not need_grad:
            return row_loss(rows, *others).sum(), None
        with torch.enable_grad():
            rows.requires_grad_(True)
            loss = row_loss(rows, *others).sum()
            (grad,) = torch.autograd.grad(loss, rows)
        return loss.detach(), grad

    return chunk


def _blend_chunk(
    rows: torch.Tensor,
    *others: torch.Tensor,
    kd_chunk: ChunkFn,
    kd_ratio: float,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sums (blend, CE, KD) and the blend's gradient; `others` are the KD inputs, then labels.

    One pass and one gradient buffer for both terms, instead of two chunked losses whose
    full-size gradients autograd would then add into a third.
    """
    *kd_others, labels = others
    ce_sum, ce_grad = _ce_chunk(rows.clone(), labels, need_grad=need_grad and kd_ratio < 1)
    kd_sum, grad = kd_chunk(rows, *kd_others, need_grad=need_grad and kd_ratio > 0)
    if grad is None:
        grad = ce_grad  # kd_ratio == 0 (or no gradient wanted)
    elif ce_grad is not None:
        grad.mul_(kd_ratio).add_(ce_grad, alpha=1.0 - kd_ratio)
    ce_sum = ce_sum.to(kd_sum.dtype)
    return torch.stack([blend(ce_sum, kd_sum, kd_ratio), ce_sum, kd_sum]), grad


# --------------------------------------------------------------------------------------------
# Plain and chunked reductions over the non-ignored positions.
# --------------------------------------------------------------------------------------------


def _plain_mean(
    row_loss: RowLoss,
    student_logits: torch.Tensor,
    mask: torch.Tensor,
    row_inputs: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """Mean of `row_loss` over the positions where `mask` (B, T) is true; 0 if there are none."""
    student = student_logits[mask]  # (N, V), only answer tokens
    student = student.to(_compute_dtype(student))
    per_token = row_loss(student, *(x[mask] for x in row_inputs))  # (N,)
    # Dividing by max(N, 1) makes the all-masked case an exact 0 with a zero gradient.
    return per_token.sum() / max(student.shape[0], 1)


class _ChunkedMean(torch.autograd.Function):
    """Mean of a loss over selected rows, its gradient computed chunk by chunk in forward.

    Only one chunk of float32 rows (and the kernel's few buffers) is alive at a time; the
    gradient w.r.t. the student logits is written into a `(B, T, V)` buffer of the student's
    dtype, which backward hands over (scaled by the incoming gradient).

    A kernel may return a vector of loss sums instead of a scalar: the first entry is the one
    its gradient belongs to, the others are returned as non-differentiable extra outputs (used
    to log CE and KD beside their blend).
    """

    @staticmethod
    def forward(
        ctx,
        student_logits: torch.Tensor,
        positions: torch.Tensor,
        chunk_size: int,
        chunk_fn: ChunkFn,
        *row_inputs: torch.Tensor,
    ) -> torch.Tensor:
        """Return the mean loss; store the (B, T, V) gradient on ctx."""
        n = positions.shape[0]  # positions: (N, 2) (batch, time) of the non-ignored tokens
        need_grad = ctx.needs_input_grad[0]
        cdtype = _compute_dtype(student_logits)
        grad = torch.zeros_like(student_logits) if need_grad else None  # (B, T, V)
        total: torch.Tensor | float = 0.0
        scale = 1.0 / max(n, 1)
        for start in range(0, n, chunk_size):
            b, t = positions[start : start + chunk_size].unbind(1)
            # Advanced indexing copies, so the kernel owns `rows` and `others` (one chunk each).
            rows = student_logits[b, t].to(cdtype)  # (C, V)
            others = [x[b, t] for x in row_inputs]
            chunk_loss, chunk_grad = chunk_fn(rows, *others, need_grad=need_grad)
            if grad is not None and chunk_grad is not None:
                grad[b, t] = chunk_grad.mul_(scale).to(grad.dtype)
            total += chunk_loss
            del rows, others, chunk_grad  # free this chunk before the next one is gathered
        # Kept as a plain attribute, not save_for_backward, so backward can drop the reference
        # and autograd may take the buffer over instead of copying it.
        ctx.grad = grad
        ctx.n_inputs = len(row_inputs)
        if isinstance(total, float):  # no kept token: every slot is an exact 0
            # Run the kernel on zero rows (owned empty copies) only to learn how many slots.
            probe, _ = chunk_fn(
                student_logits[:0, 0].to(cdtype, copy=True),
                *(x[:0, 0].clone() for x in row_inputs),
                need_grad=False,
            )
            total = torch.zeros_like(probe)
        out = total * scale
        if out.dim() == 0:
            return out
        parts = out.unbind()
        ctx.mark_non_differentiable(*parts[1:])
        return parts

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor, *_: torch.Tensor):
        """Hand over the stored gradient, scaled by `grad_output`."""
        grad = ctx.grad
        if grad is None:
            raise RuntimeError(
                "backward through a chunked distillation loss can run only once "
                "(retain_graph=True is not supported with chunk_size)"
            )
        ctx.grad = None
        if grad_output.item() != 1.0:
            grad.mul_(grad_output.to(grad.dtype))
        return (grad, None, None, None, *([None] * ctx.n_inputs))


def _mean_over_tokens(
    row_loss: RowLoss,
    chunk_fn: ChunkFn,
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int,
    chunk_size: int | None,
    row_inputs: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """Plain (`row_loss`) or chunked (`chunk_fn`) mean over the non-ignored tokens."""
    mask = labels != ignore_index  # (B, T)
    if chunk_size is None:
        return _plain_mean(row_loss, student_logits, mask, row_inputs)
    positions = mask.nonzero()  # (N, 2), row-major like boolean indexing
    return _ChunkedMean.apply(student_logits, positions, chunk_size, chunk_fn, *row_inputs)


# --------------------------------------------------------------------------------------------
# Argument checks (ValueError naming the argument).
# --------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")


def _check_unit(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}")


def _check_temperature(temperature: float) -> None:
    if not (
        isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0
    ):
        raise ValueError(f"temperature must be a finite number > 0; got {temperature!r}")


def _check_chunk_size(chunk_size: int | None) -> None:
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be None or an int >= 1; got {chunk_size!r}")


def _check_student_and_labels(
    student_logits: torch.Tensor, labels: torch.Tensor, ignore_index: int
) -> None:
    if student_logits.dim() != 3 or not student_logits.is_floating_point():
        raise ValueError(
            "student_logits must be a floating tensor of shape (B, T, V); got "
            f"{student_logits.dtype} {tuple(student_logits.shape)}"
        )
    if labels.shape != student_logits.shape[:2]:
        raise ValueError(
            f"labels must have shape (B, T) = {tuple(student_logits.shape[:2])} to match "
            f"student_logits; got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor; got {labels.dtype}")
    kept = labels[labels != ignore_index]
    if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= student_logits.shape[-1]):
        raise ValueError(
            f"labels must be token ids in [0, {student_logits.shape[-1]}) or ignore_index "
            f"({ignore_index}); got values in [{int(kept.min())}, {int(kept.max())}]"
        )


def _check_teacher_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if teacher_logits.dim() != 3 or not teacher_logits.is_floating_point():
        raise ValueError(
            "teacher_logits must be a floating tensor of shape (B, T, V); got "
            f"{teacher_logits.dtype} {tuple(teacher_logits.shape)}"
        )
    if teacher_logits.shape[:2] != student_logits.shape[:2]:
        raise ValueError(
            f"teacher_logits must have (B, T) = {tuple(student_logits.shape[:2])} like "
            f"student_logits; got {tuple(teacher_logits.shape[:2])}"
        )
    if teacher_logits.shape[-1] != student_logits.shape[-1]:
        raise ValueError(
            f"teacher_logits vocabulary size {teacher_logits.shape[-1]} differs from "
            f"student_logits vocabulary size {student_logits.shape[-1]}; if one model pads its "
            "vocabulary, slice both to the shared vocabulary before calling (logits[..., :V])"
        )


def _check_topk(
    student_logits: torch.Tensor, topk_logprobs: torch.Tensor, topk_ids: torch.Tensor
) -> None:
    if topk_logprobs.dim() != 3 or not topk_logprobs.is_floating_point():
        raise ValueError(
            "teacher_topk_logprobs must be a floating tensor of shape (B, T, k); got "
            f"{topk_logprobs.dtype} {tuple(topk_logprobs.shape)}"
        )
    if topk_logprobs.shape[:2] != student_logits.shape[:2]:
        raise ValueError(
            f"teacher_topk_logprobs must have (B, T) = {tuple(student_logits.shape[:2])} like "
            f"student_logits; got {tuple(topk_logprobs.shape[:2])}"
        )
    if topk_ids.shape != topk_logprobs.shape:
        raise ValueError(
            f"teacher_topk_ids must have the shape of teacher_topk_logprobs "
            f"{tuple(topk_logprobs.shape)}; got {tuple(topk_ids.shape)}"
        )
    if topk_ids.dtype != torch.int64:
        raise ValueError(f"teacher_topk_ids must be int64; got {topk_ids.dtype}")
    vocab, k = student_logits.shape[-1], topk_ids.shape[-1]
    if not 1 <= k <= vocab:
        raise ValueError(f"teacher_topk_ids: k must be in [1, V={vocab}]; got k={k}")
    if topk_ids.numel() and (int(topk_ids.min()) < 0 or int(topk_ids.max()) >= vocab):
        raise ValueError(
            f"teacher_topk_ids must be token ids in [0, {vocab}) (the student's vocabulary); "
            f"got values in [{int(topk_ids.min())}, {int(topk_ids.max())}]"
        )


def _kd_parts(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    topk_logprobs: torch.Tensor | None,
    topk_ids: torch.Tensor | None,
    kind: Kind,
    beta: float,
    temperature: float,
) -> tuple[RowLoss, ChunkFn, tuple[torch.Tensor, ...]]:
    """Check the KD arguments; return the row loss, chunk kernel and per-row inputs."""
    _check_kind(kind)
    _check_unit("beta", beta)
    _check_temperature(temperature)
    params = {"kind": kind, "beta": float(beta), "temperature": float(temperature)}
    if teacher_logits is not None:
        _check_teacher_logits(student_logits, teacher_logits)
        return (
            partial(_dense_row_loss, **params),
            partial(_dense_chunk, **params),
            (teacher_logits.detach(),),
        )
    assert topk_logprobs is not None and topk_ids is not None
    _check_topk(student_logits, topk_logprobs, topk_ids)
    row_loss = partial(_sparse_row_loss, **params)
    return row_loss, _autograd_chunk(row_loss), (topk_logprobs.detach(), topk_ids)


# --------------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------------


def kd_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    kind: Kind = "forward_kl",
    beta: float = 0.5,
    temperature: float = 1.0,
    ignore_index: int = -100,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Token-averaged, T²-scaled divergence between teacher and student next-token distributions.

    With ``P_S = softmax(z_S / τ)`` and ``P_T = softmax(z_T / τ)`` per position and ``τ`` the
    temperature, the loss is ``τ² · mean_{t: labels_t != ignore_index} D(P_T, P_S)`` where ``D``
    is chosen by ``kind``:

    * ``"forward_kl"``: ``KL(P_T || P_S) = Σ_v P_T(v) log(P_T(v) / P_S(v))`` (Hinton et al.,
      2015, "Distilling the Knowledge in a Neural Network"; the τ² factor is from sec. 2).
    * ``"reverse_kl"``: ``KL(P_S || P_T)``.
    * ``"jsd"``: generalized JSD (Agarwal et al., 2024, "On-Policy Distillation of Language
      Models: Learning from Self-Generated Mistakes" (GKD), eq. 1), in the convention of TRL's
      ``GKDTrainer.generalized_jsd_loss``: ``β·KL(P_T || M) + (1 − β)·KL(P_S || M)`` with
      ``M = β·P_T + (1 − β)·P_S``. The endpoints are defined as the two KLs and special-cased
      so they are exact: β = 0 gives forward ``KL(P_T || P_S)``, β = 1 gives reverse
      ``KL(P_S || P_T)``. The mixture formula itself vanishes at both ends (it behaves like
      ``β·KL(P_T || P_S)`` near β = 0 and ``(1 − β)·KL(P_S || P_T)`` near β = 1), so the loss
      jumps at the endpoints by design; β = 0.5 is the ordinary Jensen–Shannon divergence.

    The teacher is a fixed target: no gradient flows into ``teacher_logits``.

    Args:
        student_logits: ``(B, T, V)`` student logits, any float dtype (upcast to float32).
        teacher_logits: ``(B, T, V)`` teacher logits with the same vocabulary. If one model pads
            its vocabulary, slice both to the shared size first; a mismatch raises ValueError.
        labels: ``(B, T)`` token ids aligned with the logits (``logits[:, t]`` predicts
            ``labels[:, t]``); positions equal to ``ignore_index`` (prompt, padding) are skipped.
        kind: ``"forward_kl"``, ``"reverse_kl"`` or ``"jsd"``.
        beta: JSD interpolation in [0, 1]; used only when ``kind == "jsd"``.
        temperature: Softmax temperature τ > 0 for both models.
        ignore_index: Label value marking positions to leave out.
        chunk_size: None for the plain computation; an int to process that many non-ignored
            tokens at a time with the gradient computed during forward (same value and
            gradient, bounded memory; backward may then run only once).

    Returns:
        A scalar tensor; exactly 0 (with a zero gradient) when every position is ignored.

    Raises:
        ValueError: On a bad argument, shape or vocabulary mismatch (the message names it).
    """
    _check_chunk_size(chunk_size)
    _check_student_and_labels(student_logits, labels, ignore_index)
    row_loss, chunk_fn, inputs = _kd_parts(
        student_logits, teacher_logits, None, None, kind, beta, temperature
    )
    return _mean_over_tokens(
        row_loss, chunk_fn, student_logits, labels, ignore_index, chunk_size, inputs
    )


def forward_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Forward KL ``τ² · mean_t KL(P_T || P_S)`` over non-ignored tokens (Hinton et al., 2015).

    Args:
        student_logits: ``(B, T, V)`` student logits.
        teacher_logits: ``(B, T, V)`` teacher logits (same V; slice padded vocabularies first).
        labels: ``(B, T)`` aligned labels; ``ignore_index`` positions are skipped.
        temperature: Softmax temperature τ > 0.
        ignore_index: Label value marking positions to leave out.

    Returns:
        A scalar tensor, 0 when every position is ignored. See `kd_divergence`.
    """
    return kd_divergence(
        student_logits,
        teacher_logits,
        labels,
        kind="forward_kl",
        temperature=temperature,
        ignore_index=ignore_index,
    )


def reverse_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Reverse KL ``τ² · mean_t KL(P_S || P_T)`` over non-ignored tokens (Agarwal et al., 2024).

    Args:
        student_logits: ``(B, T, V)`` student logits.
        teacher_logits: ``(B, T, V)`` teacher logits (same V; slice padded vocabularies first).
        labels: ``(B, T)`` aligned labels; ``ignore_index`` positions are skipped.
        temperature: Softmax temperature τ > 0.
        ignore_index: Label value marking positions to leave out.

    Returns:
        A scalar tensor, 0 when every position is ignored. See `kd_divergence`.
    """
    return kd_divergence(
        student_logits,
        teacher_logits,
        labels,
        kind="reverse_kl",
        temperature=temperature,
        ignore_index=ignore_index,
    )


def generalized_jsd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float = 0.5,
    temperature: float = 1.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Generalized JSD ``τ² · mean_t [β·KL(P_T||M) + (1−β)·KL(P_S||M)]``, ``M = β·P_T + (1−β)·P_S``.

    Agarwal et al., 2024 (GKD), eq. 1, in TRL's ``generalized_jsd_loss`` convention: β = 0 is
    exactly forward ``KL(P_T || P_S)`` and β = 1 exactly reverse ``KL(P_S || P_T)`` (both
    special-cased; see `kd_divergence` for why the endpoints are a jump, not a limit).

    Args:
        student_logits: ``(B, T, V)`` student logits.
        teacher_logits: ``(B, T, V)`` teacher logits (same V; slice padded vocabularies first).
        labels: ``(B, T)`` aligned labels; ``ignore_index`` positions are skipped.
        beta: Weight of the teacher in the mixture, in [0, 1].
        temperature: Softmax temperature τ > 0.
        ignore_index: Label value marking positions to leave out.

    Returns:
        A scalar tensor, 0 when every position is ignored.
    """
    return kd_divergence(
        student_logits,
        teacher_logits,
        labels,
        kind="jsd",
        beta=beta,
        temperature=temperature,
        ignore_index=ignore_index,
    )


def sparse_kd_divergence(
    student_logits: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    labels: torch.Tensor,
    *,
    kind: Kind = "forward_kl",
    beta: float = 0.5,
    temperature: float = 1.0,
    ignore_index: int = -100,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """`kd_divergence` against a teacher stored as its top-k log-probs plus one tail bucket.

    The teacher distribution is given by ``teacher_topk_logprobs = log_softmax(z_T / τ).topk(k)``
    (already at temperature τ) and the matching ``teacher_topk_ids``. It is completed with one
    extra bucket holding the tail mass ``1 − Σ exp(topk)`` (clamped at 0). The student's
    distribution ``softmax(z_S / τ)`` is collapsed onto the same k + 1 buckets: its log-probs at
    the k ids plus the logsumexp of all other tokens. The chosen divergence (same ``kind`` /
    ``beta`` conventions as `kd_divergence`) is taken between these two (k + 1)-point
    distributions, scaled by τ² and averaged over non-ignored tokens. With k = V there is no
    tail bucket and the result equals the dense loss.

    Args:
        student_logits: ``(B, T, V)`` student logits.
        teacher_topk_logprobs: ``(B, T, k)`` teacher log-probs at temperature τ.
        teacher_topk_ids: ``(B, T, k)`` int64 token ids of those log-probs, distinct per
            position (as returned by ``topk``), in the student's vocabulary.
        labels: ``(B, T)`` aligned labels; ``ignore_index`` positions are skipped.
        kind: ``"forward_kl"``, ``"reverse_kl"`` or ``"jsd"``.
        beta: JSD interpolation in [0, 1]; used only when ``kind == "jsd"``.
        temperature: Softmax temperature τ > 0 applied to the student (the teacher's is baked
            into its log-probs) and in the τ² factor.
        ignore_index: Label value marking positions to leave out.
        chunk_size: None for the plain computation, an int for the chunked one.

    Returns:
        A scalar tensor; exactly 0 (with a zero gradient) when every position is ignored.

    Raises:
        ValueError: On a bad argument or shape (the message names it).
    """
    _check_chunk_size(chunk_size)
    _check_student_and_labels(student_logits, labels, ignore_index)
    row_loss, chunk_fn, inputs = _kd_parts(
        student_logits, None, teacher_topk_logprobs, teacher_topk_ids, kind, beta, temperature
    )
    return _mean_over_tokens(
        row_loss, chunk_fn, student_logits, labels, ignore_index, chunk_size, inputs
    )


def ce_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Cross-entropy ``mean_t −log softmax(z_S)[labels_t]`` over non-ignored tokens (float32).

    Args:
        student_logits: ``(B, T, V)`` student logits.
        labels: ``(B, T)`` aligned target ids; ``ignore_index`` positions are skipped.
        ignore_index: Label value marking positions to leave out.
        chunk_size: None for the plain computation, an int for the chunked one (same value and
            gradient, bounded memory).

    Returns:
        A scalar tensor; exactly 0 (with a zero gradient) when every position is ignored.
    """
    _check_chunk_size(chunk_size)
    _check_student_and_labels(student_logits, labels, ignore_index)
    return _mean_over_tokens(
        _ce_row_loss, _ce_chunk, student_logits, labels, ignore_index, chunk_size, (labels.long(),)
    )


def blend(ce: torch.Tensor, kd: torch.Tensor, kd_ratio: float) -> torch.Tensor:
    """``(1 − kd_ratio)·ce + kd_ratio·kd`` (Hinton et al., 2015, sec. 2).

    At ``kd_ratio`` 0 or 1 the unused term is dropped rather than multiplied by 0, so an
    infinite term that is not used cannot turn the loss into NaN.

    Args:
        ce: Scalar hard-label cross-entropy.
        kd: Scalar T²-scaled distillation divergence.
        kd_ratio: Weight of the distillation term, in [0, 1].

    Returns:
        The blended scalar loss.
    """
    _check_unit("kd_ratio", kd_ratio)
    if kd_ratio == 0:
        return ce
    if kd_ratio == 1:
        return kd
    return (1.0 - kd_ratio) * ce + kd_ratio * kd


class DistillationLoss(torch.nn.Module):
    """``(1 − kd_ratio)·CE(labels) + kd_ratio·τ²·D(teacher, student)`` over answer tokens.

    The teacher is given either as dense logits or as top-k log-probs + ids (see
    `sparse_kd_divergence`). A term whose weight is 0 is still computed for logging, but without
    a gradient. With ``chunk_size`` set and a teacher given, CE and KD are computed in one
    chunked, memory-bounded pass that keeps a single gradient buffer; then only ``loss`` carries
    a gradient and ``ce`` / ``kd`` are detached values for logging (call backward on ``loss``).

    Args:
        kd_ratio: Weight of the distillation term, in [0, 1].
        temperature: Softmax temperature τ > 0 of the distillation term (not the sampling
            temperature); the CE term is always at τ = 1.
        kind: ``"forward_kl"``, ``"reverse_kl"`` or ``"jsd"``.
        beta: JSD interpolation in [0, 1] (``kind == "jsd"`` only).
        chunk_size: Tokens per chunk, or None for the plain computation.
        ignore_index: Label value marking positions to leave out.
    """

    def __init__(
        self,
        kd_ratio: float = 0.5,
        temperature: float = 2.0,
        kind: Kind = "forward_kl",
        beta: float = 0.5,
        chunk_size: int | None = 1024,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        _check_unit("kd_ratio", kd_ratio)
        _check_temperature(temperature)
        _check_kind(kind)
        _check_unit("beta", beta)
        _check_chunk_size(chunk_size)
        self.kd_ratio = float(kd_ratio)
        self.temperature = float(temperature)
        self.kind: Kind = kind
        self.beta = float(beta)
        self.chunk_size = chunk_size
        self.ignore_index = ignore_index

    def extra_repr(self) -> str:
        """Settings shown by ``print(module)``."""
        return (
            f"kd_ratio={self.kd_ratio}, temperature={self.temperature}, kind={self.kind!r}, "
            f"beta={self.beta}, chunk_size={self.chunk_size}, ignore_index={self.ignore_index}"
        )

    def forward(
        self,
        student_logits: torch.Tensor,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        teacher_topk_logprobs: torch.Tensor | None = None,
        teacher_topk_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the blended loss and its two parts.

        Args:
            student_logits: ``(B, T, V)`` student logits.
            labels: ``(B, T)`` aligned labels, ``ignore_index`` on prompt/padding positions.
            teacher_logits: ``(B, T, V)`` dense teacher logits, or None.
            teacher_topk_logprobs: ``(B, T, k)`` teacher top-k log-probs at the temperature.
            teacher_topk_ids: ``(B, T, k)`` int64 ids of those log-probs.

        Returns:
            ``{"loss", "ce", "kd"}`` scalars; ``kd`` is 0 when no teacher input is given.
            Backpropagate ``loss``; ``ce`` and ``kd`` are for logging.

        Raises:
            ValueError: If the teacher inputs are inconsistent, or missing while kd_ratio > 0.
        """
        sparse = teacher_topk_logprobs is not None or teacher_topk_ids is not None
        if teacher_logits is not None and sparse:
            raise ValueError(
                "give either teacher_logits or teacher_topk_logprobs + teacher_topk_ids, not both"
            )
        if sparse and (teacher_topk_logprobs is None or teacher_topk_ids is None):
            missing = "teacher_topk_ids" if teacher_topk_ids is None else "teacher_topk_logprobs"
            raise ValueError(f"{missing} is required together with the other top-k input")
        if teacher_logits is None and not sparse and self.kd_ratio > 0:
            raise ValueError(
                f"kd_ratio={self.kd_ratio} > 0 needs a teacher: pass teacher_logits or "
                "teacher_topk_logprobs + teacher_topk_ids"
            )

        mask = labels != self.ignore_index
        if teacher_logits is None and not sparse:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.kd_ratio < 1):
                ce = ce_loss(
                    student_logits,
                    labels,
                    ignore_index=self.ignore_index,
                    chunk_size=self.chunk_size,
                )
            return {"loss": ce, "ce": ce, "kd": torch.zeros_like(ce)}

        _check_student_and_labels(student_logits, labels, self.ignore_index)
        row_loss, chunk_fn, kd_inputs = _kd_parts(
            student_logits,
            teacher_logits,
            teacher_topk_logprobs,
            teacher_topk_ids,
            self.kind,
            self.beta,
            self.temperature,
        )
        if self.chunk_size is not None:
            # One chunked pass for both terms: one (B, T, V) gradient buffer, not three.
            fused = partial(_blend_chunk, kd_chunk=chunk_fn, kd_ratio=self.kd_ratio)
            loss, ce, kd = _ChunkedMean.apply(
                student_logits,
                mask.nonzero(),
                self.chunk_size,
                fused,
                *kd_inputs,
                labels.long(),
            )
            return {"loss": loss, "ce": ce, "kd": kd}
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.kd_ratio < 1):
            ce = _plain_mean(_ce_row_loss, student_logits, mask, (labels.long(),))
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.kd_ratio > 0):
            kd = _plain_mean(row_loss, student_logits, mask, kd_inputs)
        return {"loss": blend(ce, kd, self.kd_ratio), "ce": ce, "kd": kd}
