"""Vocabulary trimming: kept ids, the renumbered tokenizer, sliced embeddings, the teacher view."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from data_loaders.errors import InputError
from distillation.config import DistillationConfig
from distillation.data import answer_logits, collate, encode_records
from distillation.history import read_history
from distillation.models import load_model_and_tokenizer
from distillation.tiny import build_tiny_model_dir
from distillation.trainer import run_distillation
from distillation.vocab import (
    TeacherOnKeptIds,
    _backend_json,
    _merge_pairs,
    dropped_mass,
    kept_token_ids,
    trim_embeddings,
    trim_tokenizer,
)
from tests.distillation.test_trainer import make_pairs

# The tokenizer learns many words the training pairs never use, so trimming drops most merges.
OTHER_TEXT = (
    "penguins islands flippers bill length body mass species adelie gentoo chinstrap "
    "airports runway elevation latitude longitude timezone municipality country region "
    "thunderstorm volcano glacier hurricane photosynthesis mitochondria electromagnetic "
) * 20


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    train, val = make_pairs(24, 0), make_pairs(6, 1)
    data = root / "data"
    data.mkdir()
    for name, pairs in (("train", train), ("val", val)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    texts = [f"{p['context']}\n{p['question']}\n{p['answer']}" for p in train] + [OTHER_TEXT]
    teacher_dir = build_tiny_model_dir(root / "teacher", n_layers=3, texts=texts,
                                       vocab_size=900)
    model, tok = load_model_and_tokenizer(str(teacher_dir), dtype="float32", device="cpu")
    records = train + val
    full = encode_records(tok, records, 10**9)
    kept = kept_token_ids(tok, [e["input_ids"] for e in full], keep_common=0)
    return {"root": root, "data": data, "teacher_dir": teacher_dir, "model": model, "tok": tok,
            "records": records, "full": full, "kept": kept}


def test_kept_ids_hold_data_bytes_specials_and_are_closed_under_merges(setup):
    tok, kept = setup["tok"], set(setup["kept"])
    spec = _backend_json(tok, "trim_vocab")
    vocab = spec["model"]["vocab"]
    assert len(kept) < len(vocab) * 0.8  # the other words' tokens are dropped
    assert {i for e in setup["full"] for i in e["input_ids"]} <= kept
    assert {a["id"] for a in spec["added_tokens"]} <= kept
    assert {i for t, i in vocab.items() if len(t) == 1} <= kept
    by_id = {i: t for t, i in vocab.items()}
    kept_strings = {by_id[i] for i in kept if i in by_id}
    for a, b in _merge_pairs(spec["model"]["merges"]):
        if a + b in kept_strings:
            assert a in kept_strings and b in kept_strings, (a, b)
    more = kept_token_ids(tok, [e["input_ids"] for e in setup["full"]], keep_common=50)
    assert set(more) > kept  # the first merges' tokens come on top


def test_trimmed_tokenizer_encodes_the_data_identically_and_any_text_in_kept_ids(setup):
    tok, kept = setup["tok"], setup["kept"]
    trimmed = trim_tokenizer(tok, kept)
    assert len(trimmed) == len(kept)
    for e, t in zip(setup["full"], encode_records(trimmed, setup["records"], 10**9), strict=True):
        assert [kept[i] for i in t["input_ids"]] == e["input_ids"]
        assert t["labels"].count(-100) == e["labels"].count(-100)
    for attr in ("eos_token", "bos_token", "pad_token"):
        assert getattr(trimmed, attr) == getattr(tok, attr)
        assert kept[getattr(trimmed, f"{attr}_id")] == getattr(tok, f"{attr}_id")
    unseen = "Glacier volcano ünïcödé 🚗 — 3.14e-5 <b>x</b>"
    ids = trimmed(unseen, add_special_tokens=False)["input_ids"]
    assert max(ids) < len(kept) and trimmed.decode(ids) == unseen
    full_ids = tok(unseen, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(full_ids)  # dropped words fall back to smaller pieces
    msgs = [{"role": "user", "content": "hi"}]
    assert trimmed.apply_chat_template(msgs, tokenize=False) == tok.apply_chat_template(
        msgs, tokenize=False)


def test_trimmed_student_gives_the_full_models_logits_on_kept_ids(setup):
    model, tok, kept = setup["model"], setup["tok"], setup["kept"]
    import copy

    small = trim_embeddings(copy.deepcopy(model), kept)
    assert small.get_input_embeddings().weight.shape[0] == len(kept)
    assert small.get_output_embeddings().weight is small.get_input_embeddings().weight
    assert small.config.eos_token_id == kept.index(model.config.eos_token_id)
    e = setup["full"][0]
    ids = torch.tensor([e["input_ids"]])
    new_id = {old: new for new, old in enumerate(kept)}
    with torch.no_grad():
        want = model(input_ids=ids).logits[..., kept]
        got = small(input_ids=torch.tensor([[new_id[i] for i in e["input_ids"]]])).logits
        view = TeacherOnKeptIds(model, kept)(
            input_ids=torch.tensor([[new_id[i] for i in e["input_ids"]]])).logits
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(view, want)
    assert TeacherOnKeptIds(model, kept).config.vocab_size == len(kept)
    assert model.config.vocab_size == len(tok)  # the teacher itself is untouched


def test_dropped_mass_is_the_teacher_probability_outside_the_kept_ids(setup):
    model, tok, kept = setup["model"], setup["tok"], setup["kept"]
    trimmed = trim_tokenizer(tok, kept)
    ex = encode_records(trimmed, setup["records"][:4], 10**9)
    got = dropped_mass(model, kept, ex, temperature=2.0, pad_id=tok.pad_token_id,
                       n_vocab=len(tok))
    back = [{**e, "input_ids": [kept[i] for i in e["input_ids"]]} for e in ex]
    batch = collate(back, pad_id=tok.pad_token_id)
    with torch.no_grad():
        p = torch.softmax(answer_logits(model, batch, len(tok)) / 2.0, -1)
    mask = batch["targets"] != -100
    want = (1 - p[..., kept].sum(-1))[mask].mean()
    assert 0 < got < 1 and got == pytest.approx(float(want), rel=1e-4)


def _config(setup, out, **kw):
    base = dict(
        teacher_model_name=str(setup["teacher_dir"]), student_layers=2, data_dir=setup["data"],
        output_dir=out, max_steps=2, batch_size=4, eval_every=0, eval_samples=4,
        eval_max_new_tokens=4, save_every=2, device="cpu", learning_rate=1e-3,
        warmup_steps=1, top_k=16, teacher_adaptation={"enabled": False},
        trim_vocab_keep_common=0,
    )
    return DistillationConfig(**{**base, **kw})


def test_distilled_trimmed_student_is_a_plain_model_directory(setup, tmp_path):
    result = run_distillation(_config(setup, tmp_path / "run"), progress=False)
    student_dir = tmp_path / "run" / "student"
    model = AutoModelForCausalLM.from_pretrained(student_dir)
    tok = AutoTokenizer.from_pretrained(student_dir)
    meta = json.loads((student_dir / "training_metadata.json").read_text())
    vocab = meta["vocabulary"]
    # the routing examples the trainer adds bring a few tokens of their own
    assert len(setup["kept"]) <= vocab["kept_tokens"] < len(setup["tok"])
    assert model.config.vocab_size == len(tok) == vocab["kept_tokens"]
    assert vocab["teacher_tokens"] == len(setup["tok"])
    assert 0 < vocab["teacher_mass_dropped"] < 1
    assert meta["student_parameters"] == sum(p.numel() for p in model.parameters())
    # what the graph gets: the student's own tokenizer and generate
    ids = tok.apply_chat_template([{"role": "user", "content": "horsepower of ford pinto?"}],
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert int(out.max()) < len(tok)
    assert result.exported in ("best", "final")
    assert read_history(result.history_path)[0]["kd"] > 0


def test_cached_and_online_kd_agree_on_the_trimmed_vocabulary(setup, tmp_path):
    kw = dict(kd_ratio=1.0, max_steps=1, top_k=10_000, learning_rate=1e-4)
    cached = run_distillation(_config(setup, tmp_path / "a", **kw), progress=False)
    online = run_distillation(_config(setup, tmp_path / "b", soft_targets="online", **kw),
                              progress=False)
    kd_c = read_history(cached.history_path)[0]["kd"]
    kd_o = read_history(online.history_path)[0]["kd"]
    assert kd_c == pytest.approx(kd_o, rel=2e-2, abs=1e-4)


def test_full_vocabulary_student_when_trimming_is_off(setup, tmp_path):
    run_distillation(_config(setup, tmp_path / "run", trim_vocab=False), progress=False)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "student")
    assert model.config.vocab_size == len(setup["tok"])


def test_trimming_a_named_or_lora_student_is_refused():
    with pytest.raises(ValueError, match="trim_vocab"):
        DistillationConfig(student_model_name="some/model", trim_vocab=True)
    with pytest.raises(ValueError, match="trim_vocab"):
        DistillationConfig(student_lora={"r": 4}, trim_vocab=True)
    assert not DistillationConfig(student_model_name="some/model").trims_vocab
    assert DistillationConfig().trims_vocab


def test_a_tokenizer_that_is_not_bpe_is_a_clear_error(setup):
    from tokenizers import Tokenizer, models

    class Wordy:
        backend_tokenizer = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))

    with pytest.raises(InputError, match="BPE"):
        kept_token_ids(Wordy(), [[0]])
