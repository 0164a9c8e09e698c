"""Synthetic training requests from an API teacher, each kept only when the table confirms it.

``distillgraph synth`` reads a dataset directory, asks an OpenAI-compatible endpoint
(`teacher_client.TeacherClient`) two things for each train pair that carries a program (and,
with ``--summaries N``, a third for each summary pair), and writes a new dataset directory: the
original pairs, the kept synthetic ones, val/test copied byte for byte, and a manifest that
records where every train pair came from (``template``, ``synth-paraphrase``, ``synth-new``,
``synth-summary``) and why each rejected request was rejected.

- Paraphrases, typed the way people type. One is kept only when masking it
  (`program_text.mask_request` with the table's `NameIndex`) yields the same mention slots as
  the original request, so the pair's ``program_text`` still applies; its ``program_input`` is
  recomputed, and reading and running the program on it must give the stored answer.
- New requests about the pair's row or group, with the teacher's program and stated answer.
  One is kept only when the program parses, binds to the request's mentions and the table's
  columns, uses every mention, runs, and gives the answer the teacher stated; when it names no
  val/test entity and repeats no question or val/test program. Its program text is rewritten
  canonically (`program_text.to_text`), its context holds the rows and facts the answer rests on.
- Summaries of a summary pair's facts (optional). One is kept only when every number it writes
  is one of the facts (or one rounded), and every row and category value it names is in them.
  It keeps its pair's request, context and program: only the prose (the answer) is new.

The prompts and those checks are `data_loaders.synth_checks`; this module owns the run: the
plan of calls, the dry-run estimate, the tallies, the output directory and its manifest. The
teacher's outputs are hard labels (a sequence-level teacher: no logits), so ``distill``
trains on the new ``train.jsonl`` like on any other, with the local logit teacher where one is
configured. A kept summary trains the prose with ``target: answer``; with ``target: program``
it repeats its parent's program example.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_loaders.config import SynthConfig
from data_loaders.dataset import MANIFEST, _created_at, check_out_dir, split_counts
from data_loaders.errors import InputError
from data_loaders.io import atomic_dir, atomic_write_json, read_jsonl, write_jsonl
from data_loaders.mentions import NameIndex, normalize
from data_loaders.program_text import mask_request
from data_loaders.qa import program_key, question_key
from data_loaders.schema import QAPair
from data_loaders.synth_checks import (
    NEW,
    PARAPHRASE,
    SUMMARY,
    SUMMARY_OPS,
    TEMPLATE,
    Rejected,
    check_new,
    check_paraphrase,
    check_summary,
    new_messages,
    paraphrase_messages,
    parse_new,
    parse_paraphrases,
    parse_summaries,
    reproduces,
    summary_messages,
)
from data_loaders.teacher_client import Call, ReplyCache, TeacherClient

EXAMPLES_KEPT = 20  # rejected requests quoted per kind in the manifest


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Requests of one kind: calls, requests received, kept, and rejections by reason."""

    calls: int = 0
    received: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    bad_replies: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def reject(self, reason: str, detail: str) -> None:
        """Count one rejection and quote the first few."""
        self.rejected[reason] += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(f"{reason}: {detail}")

    def as_dict(self) -> dict:
        """The manifest's record."""
        return {"calls": self.calls, "bad_replies": dict(self.bad_replies),
                "received": self.received, "kept": self.kept,
                "rejected": dict(self.rejected.most_common()), "examples": self.examples}


@dataclass
class Plan:
    """A synth run before any call: the dataset, its tables, the train pairs used, the calls."""

    data_dir: Path
    splits: dict[str, list[QAPair]]
    indexes: dict[str, NameIndex]  # by table hash
    sources: list[QAPair]
    calls: list[tuple[str, QAPair, Call]]  # (kind, source pair, call)
    skipped: dict[str, int]  # train pairs not asked about, by reason


def load_split(path: Path) -> list[QAPair]:
    """A split file as pairs (`InputError` naming the file and line of a bad record)."""
    from pydantic import ValidationError

    out = []
    for i, rec in enumerate(read_jsonl(path), 1):
        try:
            out.append(QAPair.model_validate(rec))
        except ValidationError as e:
            raise InputError(f"{path} record {i}: not a QA pair ({e.errors()[0]['msg']}); "
                             "re-create the dataset with `distillgraph prepare`") from None
    return out


def make_plan(data_dir: str | Path, config: SynthConfig) -> Plan:
    """Read the dataset and its tables and list the calls a run makes.

    Raises:
        InputError: not a dataset directory, a changed table, nothing to ask, no train pair
            with a program (for paraphrases and new requests) or no summary pair (for summaries).
    """
    from data_loaders.program_text import dataset_tables

    data_dir = Path(data_dir)
    if config.paraphrases == 0 and config.new_requests == 0 and config.summaries == 0:
        raise InputError("--paraphrases, --new-requests and --summaries are all 0: nothing to ask")
    if not (data_dir / MANIFEST).is_file():
        raise InputError(f"--data {data_dir}: not a dataset directory (no {MANIFEST}); make "
                         "one with `distillgraph prepare`")
    manifest = json.loads((data_dir / MANIFEST).read_text(encoding="utf-8"))
    splits = {s: load_split(data_dir / f) for s, f in manifest.get("files", {}).items()}
    if "train" not in splits:
        raise InputError(f"--data {data_dir}: the manifest lists no train split")
    indexes = {t.content_hash: NameIndex(t) for t in dataset_tables(data_dir)}
    limit = config.max_source_pairs
    calls = []
    skipped = {}
    program_sources: list[QAPair] = []
    if config.paraphrases or config.new_requests:
        with_program = [p for p in splits["train"] if p.program_text and p.program_input]
        if not with_program:
            raise InputError(f"--data {data_dir}: no train pair has a program (program_text); "
                             "re-create the dataset with `distillgraph prepare`")
        usable = [p for p in with_program if reproduces(p, indexes[p.provenance.table_hash])]
        skipped = {"no program_text": len(splits["train"]) - len(with_program),
                   "program_text does not give the stored answer": len(with_program) - len(usable)}
        program_sources = usable[:limit] if limit else usable
    for pair in program_sources:
        index = indexes[pair.provenance.table_hash]
        if config.paraphrases:
            msgs = paraphrase_messages(index.table, pair, config.paraphrases)
            calls.append((PARAPHRASE, pair, Call(msgs, parse_paraphrases)))
        if config.new_requests:
            masked = mask_request(pair.question, index)
            msgs = new_messages(index.table, pair, masked, config.new_requests)
            calls.append((NEW, pair, Call(msgs, parse_new)))
    summary_sources: list[QAPair] = []
    if config.summaries:
        summary_sources = [p for p in splits["train"] if p.qtype in SUMMARY_OPS and p.context]
        if not summary_sources:
            raise InputError(f"--data {data_dir}: --summaries {config.summaries}, but no train "
                             "pair is a summary (qtype summary_row or summary_group)")
        summary_sources = summary_sources[:limit] if limit else summary_sources
        for pair in summary_sources:
            msgs = summary_messages(pair, config.summaries)
            calls.append((SUMMARY, pair, Call(msgs, parse_summaries)))
    sources = list({p.id: p for p in program_sources + summary_sources}.values())
    return Plan(data_dir, splits, indexes, sources, calls, skipped)


def default_out(data_dir: str | Path) -> Path:
    """``<DATASET_DIR>_synth`` beside the dataset."""
    p = Path(data_dir)
    return p.with_name(f"{p.name}_synth")


def client_for(config: SynthConfig, out_dir: Path) -> TeacherClient:
    """The endpoint client with its cache (``cache_dir``, else ``synth_cache`` beside `out_dir`)."""
    cache = Path(config.cache_dir) if config.cache_dir else out_dir.parent / "synth_cache"
    return TeacherClient(config, ReplyCache(cache))


def estimate(plan: Plan, client: TeacherClient) -> dict:
    """What a run would ask, without calling: calls, cached ones, tokens and cost (estimated).

    Prompt tokens are estimated as characters / 4; a reply as the requests it asks for, each
    the length of the source request (new ones 3 times that, for the program and answer;
    summaries the length of the reference answer), plus 20 tokens.
    """
    c = client.config
    todo, cached, tokens_in, tokens_out = 0, 0, 0, 0
    for kind, pair, call in plan.calls:
        if client.cache.get(client.key_of(call.messages)) is not None:
            cached += 1
            continue
        todo += 1
        tokens_in += sum(len(m["content"]) for m in call.messages) // 4
        if kind == SUMMARY:
            tokens_out += 20 + c.summaries * (len(pair.answer) // 4 + 4)
            continue
        n, per = (c.paraphrases, 1) if kind == PARAPHRASE else (c.new_requests, 3)
        tokens_out += 20 + n * per * (len(pair.question) // 4 + 4)
    cost = (tokens_in * c.prices.input_per_million + tokens_out * c.prices.output_per_million)
    return {"source_pairs": len(plan.sources), "calls": len(plan.calls), "cached": cached,
            "to_ask": todo, "estimated_input_tokens": tokens_in,
            "estimated_output_tokens": tokens_out, "estimated_cost": round(cost / 1e6, 6),
            "currency": c.prices.currency}


@dataclass
class SynthResult:
    """What a run made: the new train split, the tallies, the manifest written and where."""

    train: list[QAPair]
    tallies: dict[str, Tally]
    manifest: dict
    out_dir: Path


def synthesize(plan: Plan, client: TeacherClient, out_dir: str | Path, *,
               progress: bool = False) -> SynthResult:
    """Ask the teacher, keep what the table confirms, and write the new dataset directory.

    Nothing is written unless every call got a reply: a `TeacherError` leaves `out_dir` as it
    was (the cache keeps the replies that came).
    """
    out = check_out_dir(out_dir)
    if out.resolve() == plan.data_dir.resolve():
        raise InputError(f"--out {out}: is the input dataset; give a new directory")
    results = client.run([call for _, _, call in plan.calls], progress=progress)
    held_out = {normalize(e) for s, pairs in plan.splits.items() if s != "train"
                for p in pairs for e in p.entities}
    seen_questions = {question_key(p.question) for ps in plan.splits.values() for p in ps}
    held_programs = {program_key(p.provenance.table_hash, p.provenance.program)
                     for s, ps in plan.splits.items() if s != "train" for p in ps}
    tallies = {PARAPHRASE: Tally(), NEW: Tally(), SUMMARY: Tally()}
    limits = {PARAPHRASE: client.config.paraphrases, NEW: client.config.new_requests,
              SUMMARY: client.config.summaries}
    # a summary keeps its pair's request: it is a duplicate only when the prose repeats too
    seen_summaries = {(question_key(p.question), normalize(p.answer))
                      for p in plan.splits["train"] if p.qtype in SUMMARY_OPS}
    made: list[QAPair] = []
    parents: dict[str, str] = {}  # synthetic pair id -> the train pair it came from
    for (kind, pair, _), result in zip(plan.calls, results, strict=True):
        tally = tallies[kind]
        tally.calls += 1
        if result.bad is not None:
            tally.bad_replies[result.bad.reason] += 1
            if len(tally.examples) < EXAMPLES_KEPT:
                tally.examples.append(f"{result.bad.reason}: {result.bad.detail}")
            continue
        index = plan.indexes[pair.provenance.table_hash]
        for item in result.value[: limits[kind]]:
            tally.received += 1
            try:
                if kind == SUMMARY:
                    new = check_summary(pair, item, index, held_out)
                    key = (question_key(new.question), normalize(new.answer))
                    if key in seen_summaries:
                        raise Rejected("duplicate", repr(new.answer))
                    seen_summaries.add(key)
                elif kind == PARAPHRASE:
                    new = check_paraphrase(pair, item, index)
                else:
                    new = check_new(item, index, held_out, pair.id)
                    key = program_key(new.provenance.table_hash, new.provenance.program)
                    if key in held_programs:
                        raise Rejected("same program as a val/test pair", repr(new.question))
                if kind != SUMMARY and question_key(new.question) in seen_questions:
                    raise Rejected("duplicate", repr(new.question))
            except Rejected as r:
                tally.reject(r.reason, r.detail)
                continue
            seen_questions.add(question_key(new.question))
            tally.kept += 1
            made.append(new)
            parents[new.id] = pair.id
    train = plan.splits["train"] + made
    manifest = synth_manifest(plan, client, tallies, train, parents)
    with atomic_dir(out) as tmp:
        write_jsonl(tmp / "train.jsonl", (p.model_dump(mode="json") for p in train))
        for split, name in manifest["files"].items():
            if split != "train":
                shutil.copyfile(plan.data_dir / name, tmp / name)
        atomic_write_json(tmp / MANIFEST, manifest)
    return SynthResult(train, tallies, manifest, out)


def synth_manifest(plan: Plan, client: TeacherClient, tallies: dict[str, Tally],
                   train: list[QAPair], parents: dict[str, str]) -> dict:
    """The input's manifest with the new train counts and a ``synth`` record."""
    manifest = json.loads((plan.data_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest["counts"]["train"] = split_counts(train)
    synthetic = (PARAPHRASE, NEW, SUMMARY)
    origin = {p.id: (p.template if p.template in synthetic else TEMPLATE) for p in train}
    c = client.config
    manifest["synth"] = {
        "created_at": _created_at(),
        "input": str(plan.data_dir),
        "teacher": {"base_url": c.base_url, "model": c.model},
        "settings": c.model_dump(mode="json", include={
            "paraphrases", "new_requests", "summaries", "max_source_pairs", "sampling_temperature",
            "max_tokens", "json_mode"}),
        "source_pairs": len(plan.sources),
        "skipped_source_pairs": plan.skipped,
        "pairs": dict(Counter(origin.values())),
        "paraphrase": tallies[PARAPHRASE].as_dict(),
        "new": tallies[NEW].as_dict(),
        "summary": tallies[SUMMARY].as_dict(),
        "usage": client.usage.as_dict(c.prices),
        "sources": [{"id": p.id, "source": origin[p.id], **(
            {"parent": parents[p.id]} if p.id in parents else {})} for p in train],
    }
    return manifest
