"""Training examples: reading a dataset dir, tokenizing pairs, length-bucketed batches.

A pair becomes ``prompt + answer + end-of-turn``: the prompt is the tokenizer's chat template
over `data_loaders.serialize.build_messages` with the generation prompt appended (exactly what
`generation.generate_answers` feeds the model at inference), and only the answer tokens and the
end-of-turn token are labels; the prompt is masked with -100.

Batches are left-padded. Every answer then ends at the right edge of the batch, so the model
only needs logits for the last few positions (``n_keep``): the LM head and the loss skip the
prompt, which is most of every sequence. Explicit ``position_ids`` make a padded row compute what
it computes alone. Speed on CPU comes from doing less work: `epoch_batches` shuffles with a
seeded RNG, sorts by length inside buckets of a few batches and so pads very little.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_loaders.errors import InputError
from data_loaders.serialize import ROUTE_TASKS, build_messages, build_route_messages

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
ROUTE_KIND = "route"  # `kind` of a routing example (see `routing_records`)
PROGRAM_KIND = "program"  # `kind` of a program example (see `program_records`)
PROSE_KIND = "prose"  # `kind` of a summary-prose example (see `program_records`)
REQUIRED_FIELDS = ("question", "answer", "context")
# Buckets hold this many batches: large enough to group similar lengths, small enough that the
# epoch order stays well shuffled.
BUCKET_BATCHES = 8


# --------------------------------------------------------------------------------------------
# Reading pairs
# --------------------------------------------------------------------------------------------


def read_split(path: str | Path) -> list[dict]:
    """Read one JSONL split, checking each line holds a pair with question, answer and context.

    Raises:
        InputError: missing file, malformed JSON or a record without the needed text fields,
            naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: file not found; a dataset dir needs train.jsonl and val.jsonl "
            "(make one with `distillgraph prepare`)"
        )
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path} line {lineno}: not valid JSON ({e.msg})") from None
            records.append(check_record(rec, f"{path} line {lineno}"))
    if not records:
        raise InputError(f"{path}: no pairs in the file; re-run `distillgraph prepare`")
    return records


def check_record(rec: Any, where: str) -> dict:
    """Return `rec` as a dict if it has string question/answer/context, else raise InputError."""
    if hasattr(rec, "model_dump"):  # a QAPair
        rec = rec.model_dump()
    if not isinstance(rec, Mapping):
        raise InputError(f"{where}: a pair must be a JSON object, got {type(rec).__name__}")
    for key in REQUIRED_FIELDS:
        if not isinstance(rec.get(key), str):
            raise InputError(f"{where}: field '{key}' is missing or not a string")
    if not rec["answer"].strip():
        raise InputError(f"{where}: field 'answer' is empty")
    return dict(rec)


def load_dataset_dir(data_dir: str | Path, splits: Sequence[str] = ("train", "val")) -> dict:
    """Read ``<split>.jsonl`` for each split of a dataset directory.

    Returns:
        ``{split: [record, ...]}``.

    Raises:
        InputError: the directory or a split file is missing, or a line is malformed.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(
            f"data_dir: {data_dir} is not a directory; make a dataset with `distillgraph prepare`"
        )
    return {s: read_split(data_dir / f"{s}.jsonl") for s in splits}


def as_records(pairs: Iterable[Any], source: str = "training_data") -> list[dict]:
    """Turn QAPair objects or dicts into checked record dicts."""
    out = [check_record(p, f"{source}[{i}]") for i, p in enumerate(pairs)]
    if not out:
        raise InputError(f"{source}: no pairs given")
    return out


def routing_records(records: Sequence[Mapping], share: float, seed: int) -> list[dict]:
    """Routing examples for a seeded ``share`` of ``records``: prompt = the question, answer = task.

    The agent graph's router asks the student which task a request is with
    `data_loaders.serialize.build_route_messages`; these examples teach it the answer (one of
    ``qa``, ``summarize``, ``validate``, the pair's ``task``). Pairs without a task, or with
    another one, are skipped. The prompt is a few dozen tokens and the answer one or two, so
    they cost little training time.
    """
    usable = [r for r in records if r.get("task") in ROUTE_TASKS]
    n = round(share * len(usable))
    chosen = random.Random(f"route-{seed}").sample(usable, n) if n else []
    return [
        {"id": f"route:{r.get('id', i)}", "kind": ROUTE_KIND, "task": r["task"],
         "question": r["question"], "answer": r["task"], "context": ""}
        for i, r in enumerate(chosen)
    ]


def program_records(records: Sequence[Mapping], prose: bool = False) -> list[dict]:
    """Program examples: prompt = the pair's program prompt, answer = its one-line program.

    The student's job in the graph is to read a request and write the program the table runs
    (`data_loaders.program_text`); ``prepare`` stores both halves in every pair
    (``program_input``, ``program_text``). The original answer is kept as ``reference``.
    With `prose`, each summary pair adds a second example: the facts the table computed
    (``prose_input``) → their wording (``prose_text``, `data_loaders.prose`), so the student
    can write a summary's prose in the graph.

    Raises:
        InputError: no pair carries a program target (a dataset from an older ``prepare``).
    """
    out = []
    for r in records:
        if r.get("kind") == ROUTE_KIND or not r.get("program_text") or not r.get("program_input"):
            continue
        out.append({**r, "kind": PROGRAM_KIND, "question": r["program_input"],
                    "answer": r["program_text"], "context": "", "reference": r["answer"]})
        if prose and r.get("prose_input") and r.get("prose_text"):
            out.append({**r, "id": f"prose:{r.get('id', '')}", "kind": PROSE_KIND,
                        "question": r["prose_input"], "answer": r["prose_text"], "context": "",
                        "reference": r["answer"]})
    if not out and records:
        raise InputError(
            "target: program, but no pair has a program target (program_input/program_text); "
            "re-create the dataset with `distillgraph prepare`, or set target=answer"
        )
    return out


def prompt_messages(pair: Mapping[str, Any]) -> list[dict]:
    """The chat messages a pair's prompt is made of (program, routing or answer example)."""
    if pair.get("kind") == ROUTE_KIND:
        return build_route_messages(pair["question"])
    if pair.get("kind") == PROGRAM_KIND:
        from data_loaders.program_text import PROGRAM_SYSTEM

        return [{"role": "system", "content": PROGRAM_SYSTEM},
                {"role": "user", "content": pair["question"]}]
    if pair.get("kind") == PROSE_KIND:
        from data_loaders.prose import PROSE_SYSTEM

        return [{"role": "system", "content": PROSE_SYSTEM},
                {"role": "user", "content": pair["question"]}]
    return build_messages(pair.get("context", ""), pair["question"])


# --------------------------------------------------------------------------------------------
# Tokenizing
# --------------------------------------------------------------------------------------------


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict], **kw) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(
            f"tokenizer of {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
            "use an instruct/chat model (or one whose tokenizer_config.json sets chat_template)"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, **kw)


def encode_messages(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> list[int]:
    """Token ids of chat ``messages``, ending with the assistant turn's opening."""
    text = _render(tokenizer, messages, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, context: str, question: str) -> list[int]:
    """Token ids of the chat prompt for one pair, ending with the assistant turn's opening.

    Args:
        tokenizer: a tokenizer with a chat template.
        context: serialized rows/facts (`data_loaders.serialize` format).
        question: the question.
    """
    return encode_messages(tokenizer, build_messages(context, question))


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that closes an assistant turn in the chat template (else the eos token).

    Found by rendering a short conversation and reading the first token after the assistant's
    text, when that token is a special token (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for
    Llama 3).
    """
    cached = getattr(tokenizer, "_distillgraph_eot", None)
    if cached is not None:
        return cached
    marker = "ZQXJ"
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}]
    eot = tokenizer.eos_token_id
    try:
        text = _render(tokenizer, msgs)
    except InputError:
        text = ""
    if marker in text:
        tail = tokenizer(text.split(marker, 1)[1], add_special_tokens=False)["input_ids"]
        if tail and tail[0] in set(tokenizer.all_special_ids):
            eot = tail[0]
    if eot is None:
        raise InputError(
            f"tokenizer of {getattr(tokenizer, 'name_or_path', '?')!r} has no end-of-turn or "
            "eos token; the model could never stop answering"
        )
    tokenizer._distillgraph_eot = eot
    return eot


def encode_example(
    tokenizer: PreTrainedTokenizerBase, pair: Mapping[str, Any], max_seq_len: int
) -> dict[str, list[int]]:
    """Tokenize one pair for training: prompt masked, answer + end-of-turn as labels.

    A routing example (``kind: "route"``, from `routing_records`) gets the routing prompt, a
    program example (``kind: "program"``, from `program_records`) the program prompt and a
    prose example (``kind: "prose"``) the prose prompt.

    ``labels[t]`` is ``input_ids[t]`` on answer and end-of-turn tokens and -100 on the prompt
    (the HF convention; the batch shifts them). A prompt that would make the example longer than
    ``max_seq_len`` is cut from the left, so the answer is always whole.

    Returns:
        ``{"input_ids": [...], "labels": [...]}`` of equal length.

    Raises:
        InputError: the answer alone does not fit into ``max_seq_len``.
    """
    if hasattr(pair, "model_dump"):
        pair = pair.model_dump()
    prompt = encode_messages(tokenizer, prompt_messages(pair))
    answer = tokenizer(pair["answer"].strip(), add_special_tokens=False)["input_ids"]
    answer = answer + [end_of_turn_id(tokenizer)]
    room = max_seq_len - len(answer)
    if room < 1:
        raise InputError(
            f"max_seq_len: {max_seq_len} tokens cannot hold the answer of pair "
            f"{pair.get('id', '?')!r} ({len(answer)} tokens); raise max_seq_len"
        )
    if len(prompt) > room:
        prompt = prompt[-room:]
    return {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}


def encode_records(
    tokenizer: PreTrainedTokenizerBase, records: Sequence[Mapping], max_seq_len: int
) -> list[dict[str, list[int]]]:
    """Encode many pairs, warning once about how many prompts had to be cut."""
    out = [encode_example(tokenizer, r, max_seq_len) for r in records]
    cut = sum(1 for r, e in zip(records, out, strict=True) if len(e["input_ids"]) >= max_seq_len)
    if cut:
        log.warning("%d of %d examples reach max_seq_len=%d: their prompts were cut from the "
                    "left; raise max_seq_len if answers suffer", cut, len(out), max_seq_len)
    return out


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """The batches of one epoch: seeded shuffle, sort by length inside buckets, shuffle batches.

    Deterministic in ``(lengths, batch_size, seed, epoch)``, which is what lets a resumed run
    pick up at a batch index. Every example appears exactly once; the last batch may be short.

    Args:
        lengths: token count of each example.
        batch_size: examples per batch.
        seed: run seed.
        epoch: epoch number (a new order each epoch).

    Returns:
        Lists of example indices.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    bucket = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start : start + bucket], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Mapping[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Left-pad a batch and shift its labels into next-token targets for the kept positions.

    Returns:
        ``input_ids``, ``attention_mask``, ``position_ids``: ``(B, T)`` with T the longest
        example (no padding beyond it); ``n_keep``: how many final positions need logits;
        ``targets``: ``(B, n_keep)`` where ``targets[:, j]`` is the token that the logits at
        position ``T - n_keep + j`` must predict (-100 where nothing is learned);
        ``n_tokens``: real tokens in the batch.
    """
    import torch

    bsz = len(examples)
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((bsz, width), pad_id, dtype=torch.long)
    attention = torch.zeros((bsz, width), dtype=torch.long)
    shifted = torch.full((bsz, width), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, width - n :] = torch.tensor(e["input_ids"])
        attention[i, width - n :] = 1
        # logits at t predict the token at t + 1
        shifted[i, width - n : width - 1] = torch.tensor(e["labels"][1:])
    positions = (attention.cumsum(-1) - 1).clamp_min(0)
    learned = (shifted != IGNORE_INDEX).any(0).nonzero()
    n_keep = int(width - learned[0, 0]) if len(learned) else 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "position_ids": positions,
        "n_keep": n_keep,
        "targets": shifted[:, width - n_keep :],
        "n_tokens": int(attention.sum()),
    }


def batch_to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors to ``device`` (other values unchanged)."""
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def answer_logits(model: torch.nn.Module, batch: Mapping[str, Any], n_vocab: int) -> torch.Tensor:
    """Logits ``(B, n_keep, n_vocab)`` of the kept positions of a `collate` batch.

    ``logits_to_keep`` makes the LM head run on the answer end of the batch only, and the
    slice to ``n_vocab`` drops ids that exist only as padding of the embedding matrix.
    """
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=batch["n_keep"],
        use_cache=False,
    )
    return out.logits[..., :n_vocab]  # (B, n_keep, V)
