"""Reading pairs, prompt masking, length bucketing, left-padded batches and greedy generation."""

import json

import pytest
import torch

from data_loaders.errors import InputError
from data_loaders.serialize import build_messages
from distillation.data import (
    IGNORE_INDEX,
    answer_logits,
    collate,
    encode_example,
    encode_prompt,
    end_of_turn_id,
    epoch_batches,
    load_dataset_dir,
)
from distillation.generation import generate_answers
from distillation.models import load_model_and_tokenizer
from distillation.tiny import build_tiny_model_dir

PAIR = {
    "id": "p0",
    "question": "What is the horsepower of ford pinto?",
    "answer": "75 hp",
    "context": "[row 3] Name: ford pinto | horsepower: 75 hp",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "m")
    return load_model_and_tokenizer(str(path), device="cpu")


def _pairs(n):
    return [
        {**PAIR, "id": f"p{i}", "context": PAIR["context"] + " | x" * (i % 7), "answer": f"{i} hp"}
        for i in range(n)
    ]


def test_prompt_is_the_chat_template_with_generation_prompt(tiny):
    _, tok = tiny
    ids = encode_prompt(tok, PAIR["context"], PAIR["question"])
    messages = build_messages(PAIR["context"], PAIR["question"])
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids).endswith("<|im_start|>assistant\n")


def test_example_masks_the_prompt_and_labels_answer_plus_end_of_turn(tiny):
    _, tok = tiny
    ex = encode_example(tok, PAIR, max_seq_len=512)
    prompt = encode_prompt(tok, PAIR["context"], PAIR["question"])
    assert len(ex["input_ids"]) == len(ex["labels"])
    assert ex["labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    answer = ex["labels"][len(prompt) :]
    assert IGNORE_INDEX not in answer
    assert answer[-1] == end_of_turn_id(tok) == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode(answer[:-1]) == "75 hp"


def test_long_prompt_is_cut_from_the_left_and_answer_kept(tiny):
    _, tok = tiny
    ex = encode_example(tok, PAIR, max_seq_len=12)
    assert len(ex["input_ids"]) == 12
    kept = [t for t in ex["labels"] if t != IGNORE_INDEX]
    assert tok.decode(kept[:-1]) == "75 hp"
    with pytest.raises(InputError, match="max_seq_len"):
        encode_example(tok, {**PAIR, "answer": "75 hp " * 20}, max_seq_len=12)


def test_epoch_batches_cover_every_example_once_and_are_seeded():
    lengths = [(i * 37) % 101 + 5 for i in range(203)]
    b0 = epoch_batches(lengths, 8, seed=1, epoch=0)
    assert sorted(i for b in b0 for i in b) == list(range(203))
    assert b0 == epoch_batches(lengths, 8, seed=1, epoch=0)
    assert b0 != epoch_batches(lengths, 8, seed=1, epoch=1)
    assert b0 != epoch_batches(lengths, 8, seed=2, epoch=0)


def test_bucketing_pads_far_less_than_random_batches():
    lengths = [(i * 37) % 301 + 5 for i in range(512)]

    def waste(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b)
                   for b in batches)

    bucketed = epoch_batches(lengths, 8, seed=0, epoch=0)
    plain = [list(range(i, i + 8)) for i in range(0, 512, 8)]
    assert waste(bucketed) < 0.25 * waste(plain)


def test_collate_left_pads_and_shifts_targets(tiny):
    _, tok = tiny
    exs = [encode_example(tok, p, 512) for p in _pairs(3)]
    b = collate(exs, pad_id=tok.pad_token_id)
    width = max(len(e["input_ids"]) for e in exs)
    assert b["input_ids"].shape == (3, width)
    k = b["n_keep"]
    assert b["targets"].shape == (3, k)
    for i, e in enumerate(exs):
        n = len(e["input_ids"])
        assert b["attention_mask"][i].sum() == n and b["attention_mask"][i, width - n :].all()
        assert b["position_ids"][i, -1] == n - 1
        # targets[:, j] is the token after position width - k + j
        t, ids = b["targets"][i], b["input_ids"][i]
        for j in range(k):
            if t[j] != IGNORE_INDEX:
                assert t[j] == ids[width - k + j + 1]
        n_answer = sum(1 for x in e["labels"] if x != IGNORE_INDEX)
        assert int((t != IGNORE_INDEX).sum()) == n_answer
    assert b["n_tokens"] == sum(len(e["input_ids"]) for e in exs)


def test_padded_batch_computes_what_each_example_computes_alone(tiny):
    model, tok = tiny
    exs = [encode_example(tok, p, 512) for p in _pairs(3)]
    with torch.no_grad():
        b = collate(exs, tok.pad_token_id)
        batched = answer_logits(model, b, len(tok))
        for i, e in enumerate(exs):
            solo = collate([e], tok.pad_token_id)
            alone = answer_logits(model, solo, len(tok))
            k = solo["n_keep"]
            torch.testing.assert_close(batched[i, -k:], alone[0], atol=1e-5, rtol=1e-4)


def test_generation_is_batch_independent_and_in_order(tiny):
    model, tok = tiny
    pairs = _pairs(5)
    model.train()
    together = generate_answers(model, tok, pairs, max_new_tokens=6, batch_size=4)
    alone = [generate_answers(model, tok, [p], max_new_tokens=6)[0] for p in pairs]
    assert together == alone and len(together) == 5
    prompt = encode_prompt(tok, PAIR["context"], PAIR["question"])
    assert generate_answers(model, tok, [prompt], max_new_tokens=6) == alone[:1]
    assert model.training  # train/eval mode restored
    model.eval()


def test_dataset_dir_errors_name_file_and_line(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        load_dataset_dir(tmp_path / "nope")
    (tmp_path / "train.jsonl").write_text(json.dumps(PAIR) + "\n")
    with pytest.raises(InputError, match="val.jsonl: file not found"):
        load_dataset_dir(tmp_path)
    (tmp_path / "val.jsonl").write_text(json.dumps(PAIR) + "\n{not json\n")
    with pytest.raises(InputError, match=r"val.jsonl line 2: not valid JSON"):
        load_dataset_dir(tmp_path)
    (tmp_path / "val.jsonl").write_text(json.dumps({**PAIR, "answer": 3}) + "\n")
    with pytest.raises(InputError, match=r"val.jsonl line 1: field 'answer'"):
        load_dataset_dir(tmp_path)
    (tmp_path / "val.jsonl").write_text(json.dumps(PAIR) + "\n")
    assert load_dataset_dir(tmp_path)["val"][0]["answer"] == "75 hp"


def test_routing_records_take_a_seeded_share_labelled_with_the_task():
    from distillation.data import routing_records

    pairs = [{**PAIR, "id": f"p{i}", "task": ("qa", "summarize", "validate")[i % 3]}
             for i in range(40)]
    pairs.append({**PAIR, "id": "no-task"})  # user pairs without a task are skipped
    routes = routing_records(pairs, share=0.25, seed=0)
    assert len(routes) == 10
    assert routes == routing_records(pairs, share=0.25, seed=0)
    assert routes != routing_records(pairs, share=0.25, seed=1)
    by_id = {p["id"]: p for p in pairs}
    for r in routes:
        source = by_id[r["id"].removeprefix("route:")]
        assert r["answer"] == r["task"] == source["task"]
        assert r["question"] == source["question"] and r["context"] == ""
    assert routing_records(pairs, share=0.0, seed=0) == []


def test_program_records_add_a_prose_example_per_train_summary_pair():
    from distillation.data import PROSE_KIND, program_records, prompt_messages

    base = {"task": "summarize", "question": "tell me about E1", "answer": "a has x 1.",
            "program_input": "table t ...\nrequest: tell me about E1",
            "program_text": "summary_row E1", "prose_input": "table t\nfacts:\ncar: a\nx: 1",
            "prose_text": "a has x 1."}
    lookup = {**base, "task": "qa", "program_text": "lookup E1 x", "prose_input": None,
              "prose_text": None}
    train = program_records([base, lookup], prose=True)
    assert [r["kind"] for r in train] == ["program", PROSE_KIND, "program"]
    assert train[1]["answer"] == "a has x 1." and train[1]["question"].endswith("x: 1")
    assert "facts" in prompt_messages(train[1])[0]["content"]
    assert len(program_records([base, lookup])) == 2  # val: programs only
