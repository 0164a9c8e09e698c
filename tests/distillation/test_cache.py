"""Teacher soft-target cache: contents, reuse, refusal of a stale cache, batch layout."""

import pytest
import torch

from data_loaders.errors import InputError
from distillation.cache import (
    cache_fingerprint,
    fingerprint_model,
    load_cache,
    load_or_build_cache,
)
from distillation.data import IGNORE_INDEX, answer_logits, collate, encode_example
from distillation.models import load_model_and_tokenizer
from distillation.tiny import build_tiny_model_dir

T, K = 2.0, 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "m")
    model, tok = load_model_and_tokenizer(str(path), device="cpu")
    records = [
        {"question": f"What is the horsepower of car {i}?",
         "answer": f"{60 + i} hp" + " and more" * (i % 3),
         "context": f"[row {i}] Name: car {i} | horsepower: {60 + i} hp" + " | x" * (i % 5)}
        for i in range(10)
    ]
    examples = [encode_example(tok, r, 256) for r in records]
    return model, tok, records, examples


def _fp(model, tok, records, **kw):
    args = {"temperature": T, "top_k": K, "max_seq_len": 256, **kw}
    return cache_fingerprint(model, tok, records, **args)


def _build(setup, cache_dir, fp=None, **kw):
    model, tok, records, examples = setup
    fp = fp or _fp(model, tok, records)
    return load_or_build_cache(
        model, examples, cache_dir, fp, temperature=T, top_k=K, n_vocab=len(tok),
        pad_id=tok.pad_token_id, batch_size=4, progress=False, **kw,
    )


def test_cache_holds_the_teachers_top_k_log_probs(setup, tmp_path):
    model, tok, _, examples = setup
    cache, built = _build(setup, tmp_path / "c")
    assert built and cache.n_examples == len(examples)
    assert cache.logprobs.dtype == torch.float16 and cache.ids.dtype == torch.int32
    for i in (0, 3, 9):
        b = collate([examples[i]], tok.pad_token_id)
        with torch.no_grad():
            logits = answer_logits(model, b, len(tok))
        mask = b["targets"] != IGNORE_INDEX
        ref = torch.log_softmax(logits[mask] / T, -1).topk(K)
        rows = slice(int(cache.offsets[i]), int(cache.offsets[i + 1]))
        assert torch.equal(cache.ids[rows].long(), ref.indices)
        torch.testing.assert_close(cache.logprobs[rows].float(), ref.values, atol=2e-3, rtol=1e-3)


def test_matching_cache_is_reused_and_identical(setup, tmp_path):
    first, _ = _build(setup, tmp_path / "c")
    again, built = _build(setup, tmp_path / "c")
    assert not built
    assert torch.equal(first.logprobs, again.logprobs) and torch.equal(first.ids, again.ids)
    _, rebuilt = _build(setup, tmp_path / "c", rebuild=True)
    assert rebuilt


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"temperature": 1.0}, "temperature (2.0 in the cache, 1.0 now)"),
        ({"top_k": 4}, "top_k (8 in the cache, 4 now)"),
        ({"max_seq_len": 128}, "max_seq_len"),
        ({"records": "other"}, "dataset"),
        ({"teacher": "other"}, "teacher weights"),
    ],
)
def test_stale_cache_is_refused_naming_what_differs(setup, tmp_path, change, words):
    model, tok, records, _ = setup
    _build(setup, tmp_path / "c")
    kw = {k: v for k, v in change.items() if k in ("temperature", "top_k", "max_seq_len")}
    recs = records[:-1] if "records" in change else records
    fp = _fp(model, tok, recs, **kw)
    if "teacher" in change:
        fp["teacher_weights"] = "0" * 16
    with pytest.raises(InputError) as e:
        load_cache(tmp_path / "c", fp)
    assert words in str(e.value) and "cache.rebuild=true" in str(e.value)


def test_model_fingerprint_sees_one_changed_weight(setup):
    model = setup[0]
    before = fingerprint_model(model)
    with torch.no_grad():
        p = next(model.parameters())
        p[0, 0] += 1e-3
        after = fingerprint_model(model)
        p[0, 0] -= 1e-3
    assert before != after


def test_batch_targets_follow_the_batch_layout(setup, tmp_path):
    _, tok, _, examples = setup
    cache, _ = _build(setup, tmp_path / "c")
    idx = [7, 2, 5]
    b = collate([examples[i] for i in idx], tok.pad_token_id)
    lp, ids = cache.batch_targets(idx, b["targets"])
    assert lp.shape == (*b["targets"].shape, K) and ids.dtype == torch.long
    mask = b["targets"] != IGNORE_INDEX
    for row, i in enumerate(idx):
        first = int(cache.offsets[i])
        j = int(mask[row].nonzero()[0, 0])  # first answer position of this row
        assert torch.equal(ids[row, j], cache.ids[first].long())
    assert (lp[~mask] == 0).all()
    with pytest.raises(RuntimeError, match="rebuild"):
        cache.batch_targets([7, 2, 6], b["targets"])


def test_sampled_targets_are_an_unbiased_estimate_with_distinct_ids():
    from distillation.cache import sample_targets

    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(3, 50) * 2, dim=-1)
    gen = torch.Generator().manual_seed(0)
    mean = torch.zeros(3, 50)
    rounds = 400
    for _ in range(rounds):
        values, ids = sample_targets(logp, 16, gen)
        assert values.shape == ids.shape == (3, 16)
        assert all(len(set(row.tolist())) == 16 for row in ids)
        assert torch.allclose(values.exp().sum(-1), torch.ones(3))  # draws sum to 1
        mean += torch.zeros(3, 50).scatter_(1, ids, values.exp())
    # the average of the sampled distributions approaches the teacher's (3 standard errors)
    p = logp.exp()
    se = (p * (1 - p) / (16 * rounds)).sqrt()
    assert ((mean / rounds - p).abs() <= 3 * se + 1e-3).all()
    # the top-k keeps the head only: it is not the distribution
    assert not torch.allclose(logp.topk(16).values.exp().sum(-1), torch.ones(3))


def test_sampled_soft_targets_train_and_need_forward_kl(tmp_path):
    from distillation.config import DistillationConfig
    from distillation.history import read_history
    from distillation.trainer import run_distillation
    from tests.distillation.test_trainer import build_assets, config

    assets = build_assets(tmp_path)
    result = run_distillation(config(assets, tmp_path / "run", soft_targets="sampled",
                                     max_steps=2, eval_every=0), progress=False)
    rows = [r for r in read_history(result.history_path) if r["event"] == "train"]
    assert len(rows) == 2 and all(r["kd"] > 0 for r in rows)
    fp = (tmp_path / "run" / "teacher_cache" / "fingerprint.json").read_text()
    assert '"sampled": true' in fp
    with pytest.raises(ValueError, match="forward_kl"):
        DistillationConfig(soft_targets="sampled", divergence="jsd")
