"""Vocabulary trimming: a student that keeps only the token ids its data needs.

SmolLM2's tied 49,152-token embedding is 28.3M of a 10-layer student's 63.7M parameters, and its
LM head is about half the compute of each decoded token, while one table's prompts and answers
use a few thousand distinct tokens. Trimming (vocabtrimmer, Ushio et al. 2023; TextPruner) keeps

- every single-character token (the byte-level alphabet, so any text still encodes) and byte
  fallback tokens (``<0x41>``),
- every special and added token (chat template, eos, pad),
- every token of the training and validation pairs as the student reads them (prompt, chat
  template, answer or program),
- the results of the tokenizer's first ``keep_common`` merges (its most frequent pieces), so
  words the data never had still encode in pieces the teacher knew,
- and, closing the set, both halves of every merge that builds a kept token.

The last rule makes the trimmed tokenizer encode every text the data had into exactly the same
tokens as before (only renumbered): a BPE tokenizer applies its merges in rank order, every
merge it applied to such a text builds a kept token from kept halves and is kept, and dropping
merges it never applied changes no choice. `trim_tokenizer` writes that tokenizer (a plain
``tokenizer.json``: `AutoTokenizer` loads it and it can only emit kept ids), `trim_embeddings`
slices the model's embedding and LM head to the kept rows, and `TeacherOnKeptIds` lets the
full-vocabulary teacher read student ids and answer with logits over the kept ids only, so its
softmax is renormalised on them (`dropped_mass` measures what that drops).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from data_loaders.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def _backend_json(tokenizer: PreTrainedTokenizerBase, where: str) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InputError(
            f"{where}: vocabulary trimming needs a fast (tokenizer.json) tokenizer; "
            "set trim_vocab: false"
        )
    spec = json.loads(backend.to_str())
    if (spec.get("model") or {}).get("type") != "BPE":
        kind = (spec.get("model") or {}).get("type")
        raise InputError(
            f"{where}: vocabulary trimming supports BPE tokenizers (GPT-2, Llama 3, Qwen, "
            f"SmolLM style), not {kind!r}; set trim_vocab: false"
        )
    return spec


def _merge_pairs(merges: Sequence[Any]) -> list[tuple[str, str]]:
    """Merges as (left, right) pairs; tokenizers writes them as lists or as "a b" strings."""
    out = []
    for m in merges:
        if isinstance(m, str):
            left, _, right = m.partition(" ")
            out.append((left, right))
        else:
            out.append((m[0], m[1]))
    return out


def kept_token_ids(
    tokenizer: PreTrainedTokenizerBase,
    sequences: Iterable[Sequence[int]],
    *,
    keep_common: int = 0,
    where: str = "trim_vocab",
) -> list[int]:
    """The token ids a trimmed student keeps, ascending (the new id of ``ids[i]`` is ``i``).

    Args:
        tokenizer: the teacher's (full) fast BPE tokenizer.
        sequences: token ids of every text the student trains on, as this tokenizer encodes it.
        keep_common: also keep the tokens built by the first ``keep_common`` merges.
        where: config field named in errors.

    Raises:
        InputError: not a fast BPE tokenizer.
    """
    spec = _backend_json(tokenizer, where)
    vocab: dict[str, int] = spec["model"]["vocab"]
    merges = _merge_pairs(spec["model"].get("merges", []))
    kept = {i for s in sequences for i in s}
    kept.update(a["id"] for a in spec.get("added_tokens", []))
    kept.update(i for t, i in vocab.items() if len(t) == 1 or _BYTE_FALLBACK.match(t))
    kept.update(vocab[a + b] for a, b in merges[: max(keep_common, 0)] if a + b in vocab)
    kept &= set(vocab.values()) | {a["id"] for a in spec.get("added_tokens", [])}
    # close over merges: both halves of every merge that builds a kept token
    builds: dict[str, list[tuple[str, str]]] = {}
    for a, b in merges:
        builds.setdefault(a + b, []).append((a, b))
    by_id = {i: t for t, i in vocab.items()}
    todo = [by_id[i] for i in kept if i in by_id]
    seen = set(todo)
    while todo:
        for pair in builds.get(todo.pop(), ()):
            for half in pair:
                if half in vocab and half not in seen:
                    seen.add(half)
                    kept.add(vocab[half])
                    todo.append(half)
    return sorted(kept)


def trimmed_tokenizer_json(spec: dict, kept_ids: Sequence[int]) -> dict:
    """A tokenizer.json spec renumbered to ``kept_ids`` (new id = position in ``kept_ids``)."""
    new_id = {old: new for new, old in enumerate(kept_ids)}
    out = json.loads(json.dumps(spec))
    model = out["model"]
    vocab = {t: new_id[i] for t, i in model["vocab"].items() if i in new_id}
    merges = _merge_pairs(model.get("merges", []))
    model["vocab"] = vocab
    model["merges"] = [[a, b] for a, b in merges if a in vocab and b in vocab and a + b in vocab]
    out["added_tokens"] = [
        {**a, "id": new_id[a["id"]]} for a in out.get("added_tokens", []) if a["id"] in new_id
    ]
    post = out.get("post_processor") or {}
    for processor in [post, *post.get("processors", [])]:
        for special in (processor.get("special_tokens") or {}).values():
            if isinstance(special, dict) and "ids" in special:
                special["ids"] = [new_id[i] for i in special["ids"]]
    return out


def trim_tokenizer(
    tokenizer: PreTrainedTokenizerBase, kept_ids: Sequence[int]
) -> PreTrainedTokenizerBase:
    """The tokenizer renumbered to ``kept_ids``: same chat template and special tokens.

    Saved and reloaded through a temporary directory, so what is returned is exactly what
    ``AutoTokenizer.from_pretrained(student_dir)`` gives back after export.
    """
    from transformers import AutoTokenizer

    spec = trimmed_tokenizer_json(_backend_json(tokenizer, "trim_vocab"), kept_ids)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        for slow in ("vocab.json", "merges.txt", "added_tokens.json"):
            (Path(tmp) / slow).unlink(missing_ok=True)
        (Path(tmp) / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False),
                                                  encoding="utf-8")
        cfg_path = Path(tmp) / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        new_id = {old: new for new, old in enumerate(kept_ids)}
        if isinstance(cfg.get("added_tokens_decoder"), dict):
            cfg["added_tokens_decoder"] = {
                str(new_id[int(k)]): v for k, v in cfg["added_tokens_decoder"].items()
                if int(k) in new_id
            }
        cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")
        trimmed = AutoTokenizer.from_pretrained(tmp)
    if trimmed.pad_token is None and tokenizer.pad_token is not None:
        trimmed.pad_token = tokenizer.pad_token
    return trimmed


def trim_embeddings(model: PreTrainedModel, kept_ids: Sequence[int]) -> PreTrainedModel:
    """Slice the input embedding and LM head to ``kept_ids`` rows (tied stays tied), in place.

    The config's vocab_size and special-token ids follow the new numbering.
    """
    import torch

    kept = torch.as_tensor(list(kept_ids), dtype=torch.long)
    emb = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight.data_ptr() == emb.weight.data_ptr()
    new_emb = torch.nn.Embedding(len(kept), emb.weight.shape[1], dtype=emb.weight.dtype,
                                 device=emb.weight.device)
    new_emb.weight.data.copy_(emb.weight.data.index_select(0, kept.to(emb.weight.device)))
    model.set_input_embeddings(new_emb)
    if head is not None:
        new_head = torch.nn.Linear(head.weight.shape[1], len(kept), bias=head.bias is not None,
                                   dtype=head.weight.dtype, device=head.weight.device)
        if tied:
            new_head.weight = new_emb.weight
        else:
            rows = head.weight.data.index_select(0, kept.to(head.weight.device))
            new_head.weight.data.copy_(rows)
        if head.bias is not None:
            new_head.bias.data.copy_(head.bias.data.index_select(0, kept.to(head.bias.device)))
        model.set_output_embeddings(new_head)
    model.config.vocab_size = len(kept)
    new_id = {old: new for new, old in enumerate(kept_ids)}
    configs = [model.config, getattr(model, "generation_config", None)]
    for cfg in (c for c in configs if c is not None):
        for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int):
                setattr(cfg, attr, new_id.get(value))
            elif isinstance(value, list):
                setattr(cfg, attr, [new_id[v] for v in value if v in new_id])
    return model


class TeacherOnKeptIds(torch.nn.Module):
    """The full-vocabulary teacher seen through the student's kept ids.

    It reads student ids (mapped back to the teacher's) and returns logits over the kept ids
    only, so a softmax over them is the teacher's distribution renormalised on the kept set.
    Its ``config.vocab_size`` is the kept count; its state dict (the cache fingerprint) holds
    the teacher's weights and the kept ids.
    """

    def __init__(self, teacher: torch.nn.Module, kept_ids: Sequence[int]) -> None:
        super().__init__()
        self.teacher = teacher
        self.register_buffer("kept", torch.as_tensor(list(kept_ids), dtype=torch.long))
        head = teacher.get_output_embeddings()
        self.teacher_vocab = int(head.weight.shape[0] if head is not None
                                 else teacher.config.vocab_size)
        self.config = copy.copy(teacher.config)
        self.config.vocab_size = len(kept_ids)

    def forward(self, *, input_ids: torch.Tensor, **kw) -> Any:
        """The teacher's output on ``kept[input_ids]`` with logits ``(B, T, n_kept)``."""
        out = self.teacher(input_ids=self.kept[input_ids], **kw)
        out.logits = out.logits.index_select(-1, self.kept)
        return out


def dropped_mass(
    teacher: torch.nn.Module,
    kept_ids: Sequence[int],
    examples: Sequence[Mapping[str, list[int]]],
    *,
    temperature: float,
    pad_id: int,
    n_vocab: int,
) -> float:
    """Mean teacher probability (at the KD temperature) on dropped ids over answer tokens.

    ``examples`` are encoded with the trimmed tokenizer (student ids); they are mapped back to
    the teacher's ids here.
    """
    import torch

    from distillation.data import answer_logits, batch_to, collate

    device = next(teacher.parameters()).device
    kept = torch.as_tensor(list(kept_ids), dtype=torch.long, device=device)
    back = [{**e, "input_ids": [int(kept_ids[i]) for i in e["input_ids"]]} for e in examples]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(back), 8):
            batch = batch_to(collate(back[start : start + 8], pad_id=pad_id), device)
            logits = answer_logits(teacher, batch, n_vocab).float() / temperature  # (B, K, V)
            mask = batch["targets"] != -100
            logp = torch.log_softmax(logits, dim=-1)[mask]  # (N, V)
            kept_mass = logp.index_select(-1, kept).exp().sum(-1)
            total += float((1 - kept_mass).clamp(min=0).sum())
            count += int(mask.sum())
    return total / max(count, 1)
