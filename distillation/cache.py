"""The teacher soft-target cache: the teacher's top-k log-probs per answer token, on disk.

Online distillation runs the teacher at every step, and the teacher forward is about 40% of a KD
step. The teacher's output on a fixed train split never changes, so it is computed once here
(`build_cache`), kept as its top-k log-probabilities at the KD temperature (float16) and their
token ids (int32) for every answer token, and reused by every later epoch and every later run.

A cache is only valid for what produced it. Its ``fingerprint.json`` records a hash of each part:
teacher weights, tokenizer (vocabulary and special tokens), chat template, dataset (the train
pairs' text), KD temperature, top_k and max_seq_len. `load_cache` refuses a cache whose
fingerprint differs, naming the parts that differ and how to rebuild it.

Files (written together with `data_loaders.io.atomic_dir`, so never half-written):
``soft_targets.safetensors`` with ``logprobs`` (N, k) float16, ``ids`` (N, k) int32 and
``offsets`` (n_examples + 1,) int64 (example i owns rows ``offsets[i]:offsets[i + 1]``, one per
answer token in order), and ``fingerprint.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_loaders.errors import InputError
from data_loaders.io import atomic_dir, atomic_write_json
from distillation.data import IGNORE_INDEX, answer_logits, batch_to, collate

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
TENSORS_FILE = "soft_targets.safetensors"
FINGERPRINT_FILE = "fingerprint.json"


# --------------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------------


def fingerprint_model(model: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of a model's state dict: names, dtypes, shapes and bytes.

    About 0.4 s for a 135M-parameter float32 model.
    """
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()[:16]


def _sha(obj: Any) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprint_tokenizer(tokenizer: PreTrainedTokenizerBase) -> str:
    """Hash of the vocabulary (token → id) and the special tokens."""
    specials = {
        attr: getattr(tokenizer, attr, None)
        for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")
    }
    return _sha({"vocab": sorted(tokenizer.get_vocab().items()), "special": specials,
                 "all_special": list(tokenizer.all_special_tokens)})


def fingerprint_records(records: Sequence[Mapping[str, Any]]) -> str:
    """Hash of the text the model sees in each pair (context, question, answer), in order."""
    return _sha([[r["context"], r["question"], r["answer"]] for r in records])


def cache_fingerprint(
    teacher: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping[str, Any]],
    *,
    temperature: float,
    top_k: int,
    max_seq_len: int,
    teacher_hash: str | None = None,
    sampled: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Every input that changes the cached soft targets, as a flat dict of comparable values.

    Args:
        teacher: the teacher model (its weights are hashed unless ``teacher_hash`` is given).
        tokenizer: the (shared) tokenizer.
        records: the train pairs, in the order the cache indexes them.
        temperature: KD softmax temperature the log-probs are taken at.
        top_k: log-probs kept per token.
        max_seq_len: longest encoded example.
        teacher_hash: a precomputed `fingerprint_model` of the teacher.
        sampled: the cache holds sampled ids (`build_cache`) rather than the top-k.
        seed: the sampling seed (only with ``sampled``).
    """
    extra = {"sampled": True, "seed": int(seed)} if sampled else {}
    return {
        **extra,
        "format": CACHE_FORMAT,
        "teacher_weights": teacher_hash or fingerprint_model(teacher),
        "tokenizer": fingerprint_tokenizer(tokenizer),
        "chat_template": _sha(str(getattr(tokenizer, "chat_template", None))),
        "dataset": fingerprint_records(records),
        "temperature": float(temperature),
        "top_k": int(top_k),
        "max_seq_len": int(max_seq_len),
    }


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


@dataclass
class SoftTargetCache:
    """Top-k teacher log-probs of every answer token of every train example."""

    logprobs: torch.Tensor  # (N, k) float16, log_softmax(teacher_logits / T) top-k values
    ids: torch.Tensor  # (N, k) int32 token ids of those values
    offsets: torch.Tensor  # (n_examples + 1,) int64 row ranges per example

    @property
    def n_examples(self) -> int:
        """Number of examples the cache covers."""
        return int(self.offsets.numel()) - 1

    def batch_targets(
        self, example_idx: Sequence[int], targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k log-probs and ids laid out like a batch's targets.

        Args:
            example_idx: the batch's example indices, in batch order.
            targets: ``(B, K)`` next-token targets of the batch (-100 where nothing is learned).

        Returns:
            ``(B, K, k)`` float32 log-probs and ``(B, K, k)`` int64 ids, on ``targets``'s
            device; positions without a target hold zeros (the loss skips them).

        Raises:
            RuntimeError: the batch has a different number of answer tokens than the cache
                (the cache does not belong to these examples).
        """
        import torch

        mask = targets != IGNORE_INDEX  # (B, K)
        rows = torch.cat(
            [torch.arange(int(self.offsets[i]), int(self.offsets[i + 1])) for i in example_idx]
        )
        if rows.numel() != int(mask.sum()):
            raise RuntimeError(
                f"soft-target cache holds {rows.numel()} answer tokens for this batch but the "
                f"batch has {int(mask.sum())}; rebuild the cache (cache.rebuild=true)"
            )
        k = self.logprobs.shape[1]
        lp = torch.zeros((*targets.shape, k), dtype=torch.float32, device=targets.device)
        ids = torch.zeros((*targets.shape, k), dtype=torch.long, device=targets.device)
        # Boolean-mask assignment walks (B, K) in row-major order: example by example, token by
        # token, which is exactly how the rows were stored.
        lp[mask] = self.logprobs[rows].to(targets.device, torch.float32)
        ids[mask] = self.ids[rows].to(targets.device, torch.long)
        return lp, ids


def _describe_mismatch(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    labels = {
        "teacher_weights": "teacher weights",
        "tokenizer": "tokenizer",
        "chat_template": "chat template",
        "dataset": "dataset (train pairs)",
        "format": "cache format",
    }
    parts = []
    for key in wanted:
        if found.get(key) != wanted[key]:
            label = labels.get(key, key)
            if key in ("temperature", "top_k", "max_seq_len", "format"):
                parts.append(f"{label} ({found.get(key)} in the cache, {wanted[key]} now)")
            else:
                parts.append(label)
    return ", ".join(parts)


def load_cache(cache_dir: str | Path, fingerprint: Mapping[str, Any]) -> SoftTargetCache | None:
    """Load the cache in ``cache_dir`` if it exists and was built for ``fingerprint``.

    Returns:
        The cache, or None when the directory holds no cache.

    Raises:
        InputError: the cache was built from something else (names what differs).
    """
    from safetensors.torch import load_file

    cache_dir = Path(cache_dir)
    fp_file, tensors = cache_dir / FINGERPRINT_FILE, cache_dir / TENSORS_FILE
    if not fp_file.is_file() or not tensors.is_file():
        return None
    try:
        found = json.loads(fp_file.read_text(encoding="utf-8"))
    except ValueError:
        found = {}
    diff = _describe_mismatch(found, fingerprint)
    if diff:
        raise InputError(
            f"teacher cache {cache_dir} does not match this run (differs: {diff}); rebuild "
            f"it with cache.rebuild=true (or delete {cache_dir})"
        )
    data = load_file(str(tensors))
    return SoftTargetCache(logprobs=data["logprobs"], ids=data["ids"], offsets=data["offsets"])


def build_cache(
    teacher: torch.nn.Module,
    examples: Sequence[Mapping[str, list[int]]],
    cache_dir: str | Path,
    fingerprint: Mapping[str, Any],
    *,
    temperature: float,
    top_k: int,
    n_vocab: int,
    pad_id: int,
    batch_size: int = 16,
    progress: bool = True,
    sampled: bool = False,
    seed: int = 0,
) -> SoftTargetCache:
    """Run the teacher once over ``examples`` and write their top-k log-probs to ``cache_dir``.

    With ``sampled`` each answer token keeps, instead of its top-k, ``top_k`` draws (with
    replacement, seeded) from the teacher's distribution at the temperature, stored as the
    distinct ids drawn with log(count / top_k) (Anshumann et al., ACL 2025, "Sparse Logit
    Sampling"): an unbiased estimate of the full distribution, where the top-k is biased
    towards the head. Unused slots hold further ids at probability 0 (log-prob -inf).

    Args:
        teacher: the teacher (put in eval mode; run without gradients).
        examples: encoded train examples (`data.encode_example`), indexed as in training.
        cache_dir: where to write (replaced atomically).
        fingerprint: `cache_fingerprint` of these inputs, stored beside the tensors.
        temperature: KD softmax temperature.
        top_k: log-probs kept per token (at most the vocabulary size).
        n_vocab: real vocabulary size (logits beyond it are embedding padding).
        pad_id: padding token id.
        batch_size: examples per teacher forward.
        progress: show a tqdm bar.
        sampled: store sampled ids instead of the top-k (see above).
        seed: seed of the draws.

    Returns:
        The cache just written.
    """
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    k = min(top_k, n_vocab)
    device = next(teacher.parameters()).device
    teacher.eval()
    per_example: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(examples)
    # Sorted by length so each forward pads almost nothing.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    bar = tqdm(total=len(examples), desc="teacher cache", unit="ex", disable=not progress)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = batch_to(collate([examples[i] for i in idx], pad_id), device)
            logits = answer_logits(teacher, batch, n_vocab)  # (B, K, V)
            mask = batch["targets"] != IGNORE_INDEX  # (B, K)
            logp = torch.log_softmax(logits[mask].float() / temperature, dim=-1)  # (N_b, V)
            del logits
            values, ids = sample_targets(logp, k, gen) if sampled else logp.topk(k, dim=-1)
            del logp
            counts = mask.sum(1).tolist()
            values, ids = values.half().cpu().split(counts), ids.int().cpu().split(counts)
            for j, i in enumerate(idx):
                per_example[i] = (values[j], ids[j])
            bar.update(len(idx))
    bar.close()
    counts = torch.tensor([0] + [p[0].shape[0] for p in per_example])
    cache = SoftTargetCache(
        logprobs=torch.cat([p[0] for p in per_example]).contiguous(),
        ids=torch.cat([p[1] for p in per_example]).contiguous(),
        offsets=counts.cumsum(0),
    )
    with atomic_dir(cache_dir) as tmp:
        save_file(
            {"logprobs": cache.logprobs, "ids": cache.ids, "offsets": cache.offsets},
            str(tmp / TENSORS_FILE),
        )
        atomic_write_json(tmp / FINGERPRINT_FILE, dict(fingerprint))
    log.info("teacher cache: %d answer tokens x top-%d written to %s",
             cache.logprobs.shape[0], k, cache_dir)
    return cache


def sample_targets(
    logp: torch.Tensor, k: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` draws per row of ``logp`` ``(N, V)``: ``(log(count / k), ids)``, each ``(N, k)``.

    The distinct ids drawn come first (by count); the remaining slots hold the most probable
    ids not drawn, at log-prob -inf, so every row has ``k`` distinct ids.
    """
    import torch

    n, vocab = logp.shape
    draws = torch.multinomial(logp.exp().cpu(), k, replacement=True, generator=gen)  # (N, k)
    counts = torch.zeros(n, vocab).scatter_add_(1, draws, torch.ones(n, k))  # (N, V)
    # drawn ids first (by count, then teacher probability), then the likeliest undrawn ones
    key = counts + logp.cpu().softmax(-1)
    _, ids = key.topk(k, dim=-1)
    got = counts.gather(1, ids)
    values = torch.where(got > 0, (got / k).log(), torch.full_like(got, float("-inf")))
    return values.to(logp.device), ids.to(logp.device)


def load_or_build_cache(
    teacher: torch.nn.Module,
    examples: Sequence[Mapping[str, list[int]]],
    cache_dir: str | Path,
    fingerprint: Mapping[str, Any],
    *,
    rebuild: bool = False,
    **build_kw: Any,
) -> tuple[SoftTargetCache, bool]:
    """Reuse a matching cache, or build one (always when ``rebuild``).

    Returns:
        ``(cache, built)`` where ``built`` says whether the teacher had to run.

    Raises:
        InputError: a cache exists for other inputs and ``rebuild`` is false.
    """
    if not rebuild:
        cache = load_cache(cache_dir, fingerprint)
        if cache is not None and cache.n_examples == len(examples):
            return cache, False
    return build_cache(teacher, examples, cache_dir, fingerprint, **build_kw), True
