"""Property tests for distillation/losses.py: exactness, masking, chunking, sparse top-k."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from distillation.losses import (
    DistillationLoss,
    blend,
    ce_loss,
    forward_kl,
    generalized_jsd,
    kd_divergence,
    reverse_kl,
    sparse_kd_divergence,
)

KINDS = ["forward_kl", "reverse_kl", "jsd"]
IGNORE = -100


def make_batch(b=2, t=7, v=13, *, seed=0, dtype=torch.float32, masked=(0, 1, 2)):
    """Random student/teacher logits and labels with the first `masked` steps of row 0 ignored."""
    g = torch.Generator().manual_seed(seed)
    student = (torch.randn(b, t, v, generator=g) * 2).to(dtype)
    teacher = (torch.randn(b, t, v, generator=g) * 2).to(dtype)
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[0, list(masked)] = IGNORE
    return student, teacher, labels


# ---------------------------------------------------------------------------------------------
# Naive reference: plain Python loops in float64, one token at a time.
# ---------------------------------------------------------------------------------------------


def _log_softmax(row: list[float], temperature: float) -> list[float]:
    scaled = [x / temperature for x in row]
    top = max(scaled)
    lse = top + math.log(sum(math.exp(x - top) for x in scaled))
    return [x - lse for x in scaled]


def _kl(p_log: list[float], q_log: list[float]) -> float:
    return sum(math.exp(p) * (p - q) for p, q in zip(p_log, q_log, strict=True) if p > -math.inf)


def _divergence(s_log: list[float], t_log: list[float], kind: str, beta: float) -> float:
    if kind == "forward_kl" or (kind == "jsd" and beta == 0):
        return _kl(t_log, s_log)
    if kind == "reverse_kl" or (kind == "jsd" and beta == 1):
        return _kl(s_log, t_log)
    m_log = [
        math.log(beta * math.exp(t) + (1 - beta) * math.exp(s))
        for s, t in zip(s_log, t_log, strict=True)
    ]
    return beta * _kl(t_log, m_log) + (1 - beta) * _kl(s_log, m_log)


def naive_kd(student, teacher, labels, kind, beta=0.5, temperature=1.0):
    s_all, t_all, l_all = student.double().tolist(), teacher.double().tolist(), labels.tolist()
    total, count = 0.0, 0
    for s_seq, t_seq, l_seq in zip(s_all, t_all, l_all, strict=True):
        for s_row, t_row, label in zip(s_seq, t_seq, l_seq, strict=True):
            if label == IGNORE:
                continue
            s_log = _log_softmax(s_row, temperature)
            t_log = _log_softmax(t_row, temperature)
            total += _divergence(s_log, t_log, kind, beta) * temperature**2
            count += 1
    return total / count if count else 0.0


def naive_sparse_kd(student, teacher, labels, k, kind, beta=0.5, temperature=1.0):
    s_all, t_all, l_all = student.double().tolist(), teacher.double().tolist(), labels.tolist()
    total, count = 0.0, 0
    for s_seq, t_seq, l_seq in zip(s_all, t_all, l_all, strict=True):
        for s_row, t_row, label in zip(s_seq, t_seq, l_seq, strict=True):
            if label == IGNORE:
                continue
            s_log = _log_softmax(s_row, temperature)
            t_log = _log_softmax(t_row, temperature)
            ids = sorted(range(len(t_log)), key=lambda i: -t_log[i])[:k]
            rest = [i for i in range(len(t_log)) if i not in ids]
            s_b = [s_log[i] for i in ids] + [math.log(sum(math.exp(s_log[i]) for i in rest))]
            t_b = [t_log[i] for i in ids] + [math.log(sum(math.exp(t_log[i]) for i in rest))]
            total += _divergence(s_b, t_b, kind, beta) * temperature**2
            count += 1
    return total / count if count else 0.0


def naive_ce(student, labels):
    losses = [
        -_log_softmax(row, 1.0)[label]
        for seq, lseq in zip(student.double().tolist(), labels.tolist(), strict=True)
        for row, label in zip(seq, lseq, strict=True)
        if label != IGNORE
    ]
    return sum(losses) / len(losses) if losses else 0.0


def value_and_grad(fn, student, *args, **kwargs):
    student = student.detach().clone().requires_grad_(True)
    loss = fn(student, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss, student)
    return loss.detach(), grad


def topk(teacher, k, temperature):
    out = torch.log_softmax(teacher.float() / temperature, dim=-1).topk(k, dim=-1)
    return out.values, out.indices


# ---------------------------------------------------------------------------------------------
# Exact values.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_identical_logits_give_zero(kind, chunk_size):
    student, _, labels = make_batch()
    loss = kd_divergence(
        student, student.clone(), labels, kind=kind, temperature=2.0, chunk_size=chunk_size
    )
    torch.testing.assert_close(loss, torch.tensor(0.0), atol=1e-6, rtol=0)
    values, ids = topk(student, 5, 2.0)
    sparse = sparse_kd_divergence(
        student, values, ids, labels, kind=kind, temperature=2.0, chunk_size=chunk_size
    )
    torch.testing.assert_close(sparse, torch.tensor(0.0), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_matches_naive_float64_reference(kind, temperature):
    student, teacher, labels = make_batch(seed=1)
    beta = 0.3
    got = kd_divergence(student, teacher, labels, kind=kind, beta=beta, temperature=temperature)
    want = naive_kd(student, teacher, labels, kind, beta, temperature)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_matches_naive_bucket_reference(kind):
    student, teacher, labels = make_batch(seed=2)
    values, ids = topk(teacher, 4, 1.5)
    got = sparse_kd_divergence(student, values, ids, labels, kind=kind, beta=0.7, temperature=1.5)
    want = naive_sparse_kd(student, teacher, labels, 4, kind, 0.7, 1.5)
    assert got.item() == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_ce_matches_naive_reference_and_torch():
    student, _, labels = make_batch(seed=3)
    got = ce_loss(student, labels)
    assert got.item() == pytest.approx(naive_ce(student, labels), rel=1e-6)
    want = torch.nn.functional.cross_entropy(student.transpose(1, 2), labels, ignore_index=IGNORE)
    torch.testing.assert_close(got, want)


def test_named_functions_are_the_three_kinds():
    student, teacher, labels = make_batch(seed=4)
    kw = {"temperature": 2.0}
    torch.testing.assert_close(
        forward_kl(student, teacher, labels, **kw),
        kd_divergence(student, teacher, labels, kind="forward_kl", **kw),
    )
    torch.testing.assert_close(
        reverse_kl(student, teacher, labels, **kw),
        kd_divergence(student, teacher, labels, kind="reverse_kl", **kw),
    )
    torch.testing.assert_close(
        generalized_jsd(student, teacher, labels, beta=0.2, **kw),
        kd_divergence(student, teacher, labels, kind="jsd", beta=0.2, **kw),
    )
    # Forward and reverse KL really are different directions.
    assert abs(forward_kl(student, teacher, labels) - reverse_kl(student, teacher, labels)) > 1e-3


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_jsd_endpoints_are_exactly_the_two_kls(chunk_size):
    student, teacher, labels = make_batch(seed=5)
    kw = {"temperature": 2.0, "chunk_size": chunk_size}
    fwd = value_and_grad(kd_divergence, student, teacher, labels, kind="forward_kl", **kw)
    rev = value_and_grad(kd_divergence, student, teacher, labels, kind="reverse_kl", **kw)
    jsd0 = value_and_grad(kd_divergence, student, teacher, labels, kind="jsd", beta=0.0, **kw)
    jsd1 = value_and_grad(kd_divergence, student, teacher, labels, kind="jsd", beta=1.0, **kw)
    torch.testing.assert_close(jsd0, fwd, rtol=0, atol=0)
    torch.testing.assert_close(jsd1, rev, rtol=0, atol=0)


def test_jsd_near_endpoints_scales_like_the_kls():
    """Documents the TRL convention: JSD(β)/β → KL(T||S) as β → 0, JSD(β)/(1−β) → KL(S||T)."""
    student, teacher, labels = make_batch(seed=6, dtype=torch.float64)
    eps = 1e-4
    fwd = forward_kl(student, teacher, labels)
    rev = reverse_kl(student, teacher, labels)
    near0 = generalized_jsd(student, teacher, labels, beta=eps) / eps
    near1 = generalized_jsd(student, teacher, labels, beta=1 - eps) / eps
    torch.testing.assert_close(near0, fwd, rtol=1e-2, atol=0)
    torch.testing.assert_close(near1, rev, rtol=1e-2, atol=0)
    # Symmetric JSD at β = 0.5 is bounded by log 2 per token (τ = 1).
    assert 0 < generalized_jsd(student, teacher, labels, beta=0.5) <= math.log(2)


@pytest.mark.parametrize("kind", KINDS)
def test_temperature_scaling_is_t_squared(kind):
    student, teacher, labels = make_batch(seed=7)
    tau = 3.0
    scaled = kd_divergence(student, teacher, labels, kind=kind, temperature=tau)
    unscaled = kd_divergence(student / tau, teacher / tau, labels, kind=kind, temperature=1.0)
    torch.testing.assert_close(scaled, tau**2 * unscaled)


# ---------------------------------------------------------------------------------------------
# Masking.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_all_masked_is_zero_with_finite_zero_grad(kind, chunk_size):
    student, teacher, _ = make_batch()
    labels = torch.full(student.shape[:2], IGNORE)
    values, ids = topk(teacher, 3, 1.0)
    for fn, args in [
        (kd_divergence, (teacher, labels)),
        (sparse_kd_divergence, (values, ids, labels)),
    ]:
        loss, grad = value_and_grad(fn, student, *args, kind=kind, chunk_size=chunk_size)
        assert loss.item() == 0.0
        assert torch.equal(grad, torch.zeros_like(grad))
    loss, grad = value_and_grad(ce_loss, student, labels, chunk_size=chunk_size)
    assert loss.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_masked_positions_change_nothing(kind, chunk_size):
    student, teacher, labels = make_batch(seed=8)
    masked = labels == IGNORE
    before = value_and_grad(
        kd_divergence, student, teacher, labels, kind=kind, chunk_size=chunk_size
    )
    student2, teacher2 = student.clone(), teacher.clone()
    student2[masked] = float("nan")  # garbage at ignored positions must not leak in
    teacher2[masked] = 1e4
    after = value_and_grad(
        kd_divergence, student2, teacher2, labels, kind=kind, chunk_size=chunk_size
    )
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert torch.equal(after[1][masked], torch.zeros_like(after[1][masked]))
    ce_before = value_and_grad(ce_loss, student, labels, chunk_size=chunk_size)
    ce_after = value_and_grad(ce_loss, student2, labels, chunk_size=chunk_size)
    torch.testing.assert_close(ce_after, ce_before, rtol=0, atol=0)


def test_mean_is_over_non_ignored_tokens_only():
    student, teacher, labels = make_batch(seed=9)
    keep = labels != IGNORE
    per_token = torch.stack(
        [
            kd_divergence(
                student[b : b + 1, t : t + 1],
                teacher[b : b + 1, t : t + 1],
                labels[b : b + 1, t : t + 1],
            )
            for b, t in keep.nonzero().tolist()
        ]
    )
    torch.testing.assert_close(forward_kl(student, teacher, labels), per_token.mean())


# ---------------------------------------------------------------------------------------------
# Chunked == plain (value and gradient).
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk_size", [1, 3, 5, 11, 64])
def test_chunked_matches_plain(kind, chunk_size):
    student, teacher, labels = make_batch(b=3, t=5, v=17, seed=10)  # 12 kept tokens
    kw = {"kind": kind, "beta": 0.4, "temperature": 1.7}
    plain = value_and_grad(kd_divergence, student, teacher, labels, **kw)
    chunked = value_and_grad(kd_divergence, student, teacher, labels, chunk_size=chunk_size, **kw)
    torch.testing.assert_close(chunked, plain)
    values, ids = topk(teacher, 6, 1.7)
    sp_plain = value_and_grad(sparse_kd_divergence, student, values, ids, labels, **kw)
    sp_chunk = value_and_grad(
        sparse_kd_divergence, student, values, ids, labels, chunk_size=chunk_size, **kw
    )
    torch.testing.assert_close(sp_chunk, sp_plain)


@pytest.mark.parametrize("chunk_size", [1, 4, 100])
def test_chunked_ce_matches_plain(chunk_size):
    student, _, labels = make_batch(b=3, t=5, v=17, seed=11)
    plain = value_and_grad(ce_loss, student, labels)
    chunked = value_and_grad(ce_loss, student, labels, chunk_size=chunk_size)
    torch.testing.assert_close(chunked, plain)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_chunked_matches_plain_in_half_precision(dtype):
    student, teacher, labels = make_batch(seed=12, dtype=dtype)
    plain = value_and_grad(kd_divergence, student, teacher, labels, kind="jsd", temperature=2.0)
    chunked = value_and_grad(
        kd_divergence, student, teacher, labels, kind="jsd", temperature=2.0, chunk_size=3
    )
    assert plain[0].dtype == torch.float32 and plain[1].dtype == dtype
    assert chunked[1].dtype == dtype
    torch.testing.assert_close(chunked, plain)
    # The float32 computation of half inputs matches the float32 loss on the same values.
    ref = kd_divergence(student.float(), teacher.float(), labels, kind="jsd", temperature=2.0)
    torch.testing.assert_close(plain[0], ref)


def test_chunked_handles_non_contiguous_logits_and_upstream_scale():
    student, teacher, labels = make_batch(t=9, seed=13)
    base = student.detach().clone().requires_grad_(True)
    grads = []
    for chunk_size in (None, 4):
        base.grad = None
        view = base[:, :-1]  # (B, T-1, V): a non-contiguous slice, as after a label shift
        loss = kd_divergence(view, teacher[:, :-1], labels[:, 1:], chunk_size=chunk_size)
        (3.0 * loss).backward()
        grads.append(base.grad.clone())
    torch.testing.assert_close(grads[1], grads[0])
    assert grads[0][:, -1].abs().sum() == 0


@pytest.mark.parametrize("kind", ["forward_kl", "jsd"])
def test_teacher_minus_inf_logits_stay_finite(kind):
    """A teacher that rules tokens out (logit -inf) gives 0 log 0 = 0 terms, not NaN."""
    student, teacher, labels = make_batch(seed=20)
    teacher[..., :3] = float("-inf")
    plain = value_and_grad(kd_divergence, student, teacher, labels, kind=kind)
    chunked = value_and_grad(kd_divergence, student, teacher, labels, kind=kind, chunk_size=3)
    assert torch.isfinite(plain[0]) and torch.isfinite(plain[1]).all()
    torch.testing.assert_close(chunked, plain)
    assert plain[0].item() == pytest.approx(naive_kd(student, teacher, labels, kind), rel=1e-5)


def test_chunked_backward_twice_is_refused():
    student, teacher, labels = make_batch()
    student.requires_grad_(True)
    loss = kd_divergence(student, teacher, labels, chunk_size=4)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


def test_teacher_gets_no_gradient():
    student, teacher, labels = make_batch()
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    for chunk_size in (None, 4):
        kd_divergence(student, teacher, labels, chunk_size=chunk_size).backward()
        assert teacher.grad is None


# ---------------------------------------------------------------------------------------------
# Sparse top-k.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_sparse_with_full_k_equals_dense(kind, chunk_size):
    student, teacher, labels = make_batch(seed=14)
    kw = {"kind": kind, "beta": 0.6, "temperature": 2.0, "chunk_size": chunk_size}
    values, ids = topk(teacher, teacher.shape[-1], 2.0)
    dense = value_and_grad(kd_divergence, student, teacher, labels, **kw)
    sparse = value_and_grad(sparse_kd_divergence, student, values, ids, labels, **kw)
    torch.testing.assert_close(sparse, dense)


def test_sparse_small_k_differs_from_dense_and_shrinks_with_k():
    student, teacher, labels = make_batch(v=31, seed=15)
    dense = forward_kl(student, teacher, labels)
    gaps = []
    for k in (1, 8, 30):
        values, ids = topk(teacher, k, 1.0)
        gaps.append((dense - sparse_kd_divergence(student, values, ids, labels)).item())
    # Collapsing buckets can only lose information (data-processing inequality).
    assert all(g >= -1e-6 for g in gaps)
    assert gaps[0] > gaps[1] > gaps[2]


# ---------------------------------------------------------------------------------------------
# Blend and module.
# ---------------------------------------------------------------------------------------------


def test_blend_formula_and_endpoints():
    ce, kd = torch.tensor(2.0), torch.tensor(5.0)
    assert blend(ce, kd, 0.25).item() == pytest.approx(0.75 * 2 + 0.25 * 5)
    assert blend(ce, torch.tensor(float("inf")), 0.0).item() == 2.0
    assert blend(torch.tensor(float("inf")), kd, 1.0).item() == 5.0
    with pytest.raises(ValueError, match="kd_ratio"):
        blend(ce, kd, 1.5)


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_module_blends_and_matches_functions(chunk_size):
    student, teacher, labels = make_batch(seed=16)
    student.requires_grad_(True)
    module = DistillationLoss(
        kd_ratio=0.3, temperature=2.0, kind="jsd", beta=0.2, chunk_size=chunk_size
    )
    out = module(student, labels, teacher_logits=teacher)
    assert set(out) == {"loss", "ce", "kd"}
    ce = ce_loss(student, labels)
    kd = generalized_jsd(student, teacher, labels, beta=0.2, temperature=2.0)
    torch.testing.assert_close(out["ce"], ce)
    torch.testing.assert_close(out["kd"], kd)
    torch.testing.assert_close(out["loss"], 0.7 * ce + 0.3 * kd)
    (grad,) = torch.autograd.grad(out["loss"], student)
    (want,) = torch.autograd.grad(0.7 * ce + 0.3 * kd, student)
    torch.testing.assert_close(grad, want)


@pytest.mark.parametrize("kd_ratio", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("teacher_kind", ["dense", "sparse"])
@pytest.mark.parametrize("kind", KINDS)
def test_module_fused_chunked_matches_plain(kd_ratio, teacher_kind, kind):
    student, teacher, labels = make_batch(b=3, t=5, v=17, seed=21)
    values, ids = topk(teacher, 6, 2.0)
    inputs = (
        {"teacher_logits": teacher}
        if teacher_kind == "dense"
        else {
            "teacher_topk_logprobs": values,
            "teacher_topk_ids": ids,
        }
    )
    results = []
    for chunk_size in (None, 4):
        module = DistillationLoss(kd_ratio=kd_ratio, kind=kind, beta=0.3, chunk_size=chunk_size)
        x = student.clone().requires_grad_(True)
        out = module(x, labels, **inputs)
        (grad,) = torch.autograd.grad(out["loss"], x)
        results.append((out["loss"], out["ce"], out["kd"], grad))
    torch.testing.assert_close(results[1], results[0])
    assert results[0][1].item() > 0 and results[0][2].item() > 0  # both terms logged


def test_module_fused_chunked_all_masked_and_no_grad():
    student, teacher, _ = make_batch()
    labels = torch.full(student.shape[:2], IGNORE)
    x = student.clone().requires_grad_(True)
    out = DistillationLoss(chunk_size=4)(x, labels, teacher_logits=teacher)
    assert [out[k].item() for k in ("loss", "ce", "kd")] == [0.0, 0.0, 0.0]
    out["loss"].backward()
    assert torch.equal(x.grad, torch.zeros_like(x.grad))
    with torch.no_grad():
        out = DistillationLoss(chunk_size=4)(x, make_batch()[2], teacher_logits=teacher)
    assert not out["loss"].requires_grad and out["loss"].item() > 0


def test_module_sparse_teacher():
    student, teacher, labels = make_batch(seed=17)
    values, ids = topk(teacher, 5, 2.0)
    out = DistillationLoss(kd_ratio=1.0)(
        student, labels, teacher_topk_logprobs=values, teacher_topk_ids=ids
    )
    torch.testing.assert_close(
        out["kd"], sparse_kd_divergence(student, values, ids, labels, temperature=2.0)
    )
    torch.testing.assert_close(out["loss"], out["kd"])


def test_module_without_teacher():
    student, _, labels = make_batch(seed=18)
    student.requires_grad_(True)
    out = DistillationLoss(kd_ratio=0.0)(student, labels)
    assert out["kd"].item() == 0.0
    torch.testing.assert_close(out["loss"], ce_loss(student, labels))
    assert out["loss"].requires_grad
    with pytest.raises(ValueError, match="teacher_logits"):
        DistillationLoss(kd_ratio=0.5)(student, labels)


def test_module_zero_weight_term_is_logged_without_gradient():
    student, teacher, labels = make_batch(seed=19)
    student.requires_grad_(True)
    out = DistillationLoss(kd_ratio=1.0)(student, labels, teacher_logits=teacher)
    assert not out["ce"].requires_grad and out["ce"].item() > 0
    assert out["loss"].requires_grad


def test_module_rejects_inconsistent_teacher_inputs():
    student, teacher, labels = make_batch()
    values, ids = topk(teacher, 3, 2.0)
    module = DistillationLoss()
    with pytest.raises(ValueError, match="teacher_topk_ids"):
        module(student, labels, teacher_topk_logprobs=values)
    with pytest.raises(ValueError, match="teacher_topk_logprobs"):
        module(student, labels, teacher_topk_ids=ids)
    with pytest.raises(ValueError, match="not both"):
        module(student, labels, teacher, values, ids)


# ---------------------------------------------------------------------------------------------
# Argument validation.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kd_ratio": -0.1}, "kd_ratio"),
        ({"kd_ratio": 2}, "kd_ratio"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"beta": 1.5}, "beta"),
        ({"kind": "kl"}, "kind"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 2.5}, "chunk_size"),
    ],
)
def test_module_validates_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DistillationLoss(**kwargs)


def test_functions_validate_shapes_and_vocab():
    student, teacher, labels = make_batch(v=13)
    with pytest.raises(ValueError, match="vocabulary"):
        forward_kl(student, torch.randn(2, 7, 16), labels)
    with pytest.raises(ValueError, match="teacher_logits"):
        forward_kl(student, teacher[:, :5], labels)
    with pytest.raises(ValueError, match="labels"):
        forward_kl(student, teacher, labels[:, :5])
    with pytest.raises(ValueError, match="labels"):
        forward_kl(student, teacher, labels.float())
    bad = labels.clone()
    bad[1, 1] = 13
    with pytest.raises(ValueError, match="labels"):
        ce_loss(student, bad)
    with pytest.raises(ValueError, match="student_logits"):
        forward_kl(student[0], teacher[0], labels[0])
    with pytest.raises(ValueError, match="beta"):
        generalized_jsd(student, teacher, labels, beta=-0.5)
    with pytest.raises(ValueError, match="temperature"):
        reverse_kl(student, teacher, labels, temperature=-1.0)
    values, ids = topk(teacher, 3, 1.0)
    with pytest.raises(ValueError, match="teacher_topk_ids"):
        sparse_kd_divergence(student, values, ids.int(), labels)
    with pytest.raises(ValueError, match="teacher_topk_ids"):
        sparse_kd_divergence(student, values, ids[..., :2], labels)
    with pytest.raises(ValueError, match="teacher_topk_ids"):
        sparse_kd_divergence(student, values, ids + 13, labels)
    with pytest.raises(ValueError, match="teacher_topk_logprobs"):
        sparse_kd_divergence(student, values[:, :3], ids[:, :3], labels)


# ---------------------------------------------------------------------------------------------
# Random shapes.
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 6),
    v=st.integers(2, 9),
    chunk_size=st.integers(1, 8),
    kind=st.sampled_from(KINDS),
    beta=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    temperature=st.sampled_from([0.5, 1.0, 4.0]),
    seed=st.integers(0, 2**16),
    keep_prob=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_random_shapes(b, t, v, chunk_size, kind, beta, temperature, seed, keep_prob):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(b, t, v, generator=g) * 3
    teacher = torch.randn(b, t, v, generator=g) * 3
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[torch.rand(b, t, generator=g) >= keep_prob] = IGNORE
    kw = {"kind": kind, "beta": beta, "temperature": temperature}
    plain = value_and_grad(kd_divergence, student, teacher, labels, **kw)
    chunked = value_and_grad(kd_divergence, student, teacher, labels, chunk_size=chunk_size, **kw)
    torch.testing.assert_close(chunked, plain)
    assert plain[0].item() == pytest.approx(
        naive_kd(student, teacher, labels, kind, beta, temperature), rel=1e-4, abs=1e-5
    )
    assert torch.isfinite(plain[1]).all()
