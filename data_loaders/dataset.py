"""Datasets: entity-disjoint splits, the recompute check, dedupe, the manifest and the files.

`build_dataset` turns loaded tables into ``train``/``val``/``test`` lists of `QAPair` (plus
``test_templates`` when `split.holdout_templates` is set); `write_dataset` writes them with
``manifest.json`` into a directory atomically; `prepare` does load → build → write for the CLI
and the Python API.

Splits are disjoint by entity. Each table's nameable rows (`qa.entity_pool`) are shuffled with
the seed and cut into test, val and train shares first; pairs are then generated per split from
that split's rows only, so every entity a pair shows (in its question or context) belongs to
its split and no budget is spent on pairs that would straddle two. Fact lines name no entity.
Held-out templates are never used for train/val/test; their pairs (``test_templates``) are
drawn from the test entities. The same input and seed give byte-identical ``*.jsonl`` files
(``manifest.json`` also, when ``SOURCE_DATE_EPOCH`` fixes its timestamp).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_loaders import serialize
from data_loaders.choices import choices_record
from data_loaders.config import PrepareConfig, SplitConfig
from data_loaders.errors import InputError
from data_loaders.io import atomic_dir, atomic_write_json, write_jsonl
from data_loaders.programs import check_pair
from data_loaders.qa import PairGenerator, SeenKeys, apportion, entity_pool
from data_loaders.schema import DATASET_FORMAT_VERSION, QUESTION_TYPES, QAPair
from data_loaders.table import Table
from data_loaders.templates import TEMPLATES, templates_of

SPLITS = ("train", "val", "test")
HOLDOUT_SPLIT = "test_templates"
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, HOLDOUT_SPLIT: 2}
MANIFEST = "manifest.json"


@dataclass
class Dataset:
    """Generated pairs per split, with what the manifest reports about them."""

    splits: dict[str, list[QAPair]]
    tables: list[Table]
    config: PrepareConfig
    entities: list[dict[str, int]] = field(default_factory=list)  # per table: split → count
    checked: int = 0
    failed: list[str] = field(default_factory=list)  # "id: reason" of pairs dropped by the check

    def all_pairs(self) -> list[QAPair]:
        """Every pair, split by split in file order."""
        return [p for pairs in self.splits.values() for p in pairs]


def _seed_of(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def _rng(seed: int, table: Table, stream: int) -> np.random.Generator:
    """An independent, reproducible stream per (seed, table content, purpose)."""
    return np.random.default_rng([seed, _seed_of(table.content_hash), stream])


def assign_splits(table: Table, split: SplitConfig, seed: int) -> np.ndarray:
    """Split code of every row: 0 train, 1 val, 2 test, -1 not nameable (never shown).

    Entities are shuffled with the seed; the first ``test_fraction`` go to test, the next
    ``val_fraction`` to val (at least one each when the fraction is positive and at least three
    entities exist), the rest to train.
    """
    codes = np.full(len(table.df), -1, dtype=np.int8)
    pool = entity_pool(table)
    perm = _rng(seed, table, 0).permutation(pool)
    n = len(perm)

    def share(f: float) -> int:
        return 0 if f <= 0 or n < 3 else max(1, round(n * f))

    n_test, n_val = share(split.test_fraction), share(split.val_fraction)
    codes[perm[:n_test]] = 2
    codes[perm[n_test : n_test + n_val]] = 1
    codes[perm[n_test + n_val :]] = 0
    return codes


def validate_config(config: PrepareConfig) -> None:
    """Refuse settings the schema cannot check alone, naming the field (`InputError`)."""
    unknown = sorted(set(config.question_types) - set(QUESTION_TYPES))
    if unknown:
        raise InputError(
            f"question_types: unknown type(s) {', '.join(map(repr, unknown))}; "
            f"valid types: {', '.join(QUESTION_TYPES)}"
        )
    negative = [k for k, w in config.question_types.items() if w < 0]
    if negative:
        raise InputError(f"question_types.{negative[0]}: weight must be >= 0")
    if not any(w > 0 for w in config.question_types.values()):
        raise InputError("question_types: every weight is 0; give at least one type a weight")
    bad = [t for t in config.split.holdout_templates if t not in TEMPLATES]
    if bad:
        raise InputError(
            f"split.holdout_templates: unknown template id(s) {', '.join(map(repr, bad))}; "
            f"valid ids: {', '.join(TEMPLATES)}"
        )
    if config.split.val_fraction + config.split.test_fraction >= 0.9:
        raise InputError("split: val_fraction + test_fraction must leave entities for train")


def split_budgets(total: int, split: SplitConfig) -> dict[str, int]:
    """Pairs per split for one table's budget.

    Val and test get their fractions; with held-out templates, ``test_templates`` gets as many
    as test; train gets the rest.
    """
    weights = {"train": 1.0 - split.val_fraction - split.test_fraction}
    weights["val"] = split.val_fraction
    weights["test"] = split.test_fraction
    if split.holdout_templates:
        weights[HOLDOUT_SPLIT] = split.test_fraction
    return apportion(total, weights)


def dedupe(pairs: Sequence[QAPair]) -> list[QAPair]:
    """Drop exact duplicates and near-duplicates, keeping the first occurrence.

    Near-duplicates share the normalized question text (lowercase, punctuation removed) or the
    same program on the same table.
    """
    seen = SeenKeys()
    ids: set[str] = set()
    out = []
    for p in pairs:
        if p.id in ids or not seen.add(p):
            continue
        ids.add(p.id)
        out.append(p)
    return out


def build_dataset(
    tables: Sequence[Table], config: PrepareConfig, *, progress: bool = False
) -> Dataset:
    """Generate, check, dedupe and shuffle the pairs of every split.

    The pair budget (``max_pairs``) is shared equally by the tables, then by the splits
    (`split_budgets`), then by question type (``question_types``). Every pair is re-checked with
    `programs.check_pair`; one that fails is dropped and reported in the manifest.

    Args:
        tables: Loaded tables.
        config: The prepare config.
        progress: Show a tqdm progress bar on stderr.

    Raises:
        InputError: Bad config values, no tables, or no pair could be generated.
    """
    validate_config(config)
    if not tables:
        raise InputError("no input tables given; pass at least one file or SQLAlchemy URL")
    held = set(config.split.holdout_templates)
    main_templates = {q: templates_of(q, held) for q in QUESTION_TYPES}
    held_templates = {q: [t for t in templates_of(q) if t.id in held] for q in QUESTION_TYPES}
    names = list(SPLITS) + ([HOLDOUT_SPLIT] if held else [])
    splits: dict[str, list[QAPair]] = {s: [] for s in names}
    seen = SeenKeys()
    entities = []
    per_table = apportion(config.max_pairs, {str(i): 1.0 for i in range(len(tables))})
    bar = tqdm(total=config.max_pairs, disable=not progress, desc="QA pairs", unit="pair")
    try:
        for i, table in enumerate(tables):
            codes = assign_splits(table, config.split, config.seed)
            entities.append({s: int((codes == SPLIT_CODES[s]).sum()) for s in SPLITS})
            gen = PairGenerator(table, config, codes, seen)
            budgets = split_budgets(per_table[str(i)], config.split)
            for stream, split in enumerate(names, start=1):
                code = SPLIT_CODES[split]
                pool = np.flatnonzero(codes == code)
                templates = held_templates if split == HOLDOUT_SPLIT else main_templates
                splits[split] += gen.generate(
                    split, code, pool, budgets[split], templates, _rng(config.seed, table, stream),
                    on_pair=lambda: bar.update(1),
                )
    finally:
        bar.close()

    by_hash = {t.content_hash: t for t in tables}
    checked, failed = 0, []
    for split, pairs in splits.items():
        kept = []
        for p in pairs:
            checked += 1
            problems = check_pair(by_hash[p.provenance.table_hash], p)
            if problems:
                failed.append(f"{p.id}: {problems[0]}")
            else:
                kept.append(p)
        splits[split] = kept
    for stream, split in enumerate(names, start=100):
        pairs = dedupe(splits[split])
        order = np.random.default_rng([config.seed, stream]).permutation(len(pairs))
        splits[split] = [pairs[j] for j in order]
    if not any(splits.values()):
        raise InputError(
            f"{', '.join(t.source for t in tables)}: no QA pair could be generated; the table "
            "needs named rows and at least one numeric, categorical or date column"
        )
    return Dataset(splits, list(tables), config, entities, checked, failed)


def _package_version() -> str:
    try:
        return importlib.metadata.version("distillgraph")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _created_at() -> str:
    """Now in UTC, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.isoformat(timespec="seconds")


def split_counts(pairs: Sequence[QAPair]) -> dict:
    """A split's counts in the manifest: total, by type, by task and the claims' yes/no."""
    claims = Counter(p.answer for p in pairs if p.qtype == "claim")
    return {
        "total": len(pairs),
        "by_type": {q: sum(p.qtype == q for p in pairs) for q in QUESTION_TYPES},
        "by_task": dict(sorted(Counter(p.task for p in pairs).items())),
        "claim_answers": {"yes": claims.get("yes", 0), "no": claims.get("no", 0)},
    }


def build_manifest(ds: Dataset) -> dict:
    """The ``manifest.json`` content: counts, sources, config, versions, format, time.

    Each source holds its reading: entity column, types, display names, units, and the
    ``choices`` loading made with their reasons (`choices.choices_record`: entity columns, row
    noun, ignored columns, units read from names, and all of it as a pasteable ``table:``
    section).
    """
    counts = {split: split_counts(pairs) for split, pairs in ds.splits.items()}
    sources = [
        {
            "source": t.source,
            "table": t.name,
            "content_hash": t.content_hash,
            "rows": len(t.df),
            "entity_column": t.entity_column,
            "column_types": dict(t.column_types),
            "display": dict(t.display),
            "units": dict(t.units),
            "entities": ents,
            "choices": choices_record(t),
        }
        for t, ents in zip(ds.tables, ds.entities, strict=True)
    ]
    return {
        "format_version": DATASET_FORMAT_VERSION,
        "package_version": _package_version(),
        "created_at": _created_at(),
        "seed": ds.config.seed,
        "files": {s: f"{s}.jsonl" for s in ds.splits},
        "counts": counts,
        "sources": sources,
        "holdout_templates": list(ds.config.split.holdout_templates),
        "templates": {t.id: t.text for t in TEMPLATES.values()},
        "verification": {
            "checked": ds.checked,
            "passed": ds.checked - len(ds.failed),
            "failed": ds.failed[:20],
        },
        "context_format": (serialize.__doc__ or "").strip(),
        "config": ds.config.model_dump(mode="json"),
    }


def check_out_dir(out_dir: str | Path) -> Path:
    """`out_dir` as a Path, or `InputError` if writing there could destroy unrelated files."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; give a directory path")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise InputError(
            f"--out {out}: exists and is not a dataset directory (no {MANIFEST}); "
            "choose a new directory or empty it"
        )
    return out


def write_dataset(ds: Dataset, out_dir: str | Path) -> Path:
    """Write ``<split>.jsonl`` files and ``manifest.json`` into `out_dir`, atomically.

    An existing dataset directory is replaced; any other non-empty directory is refused, so a
    mistyped ``--out`` never deletes unrelated files.
    """
    out = check_out_dir(out_dir)
    manifest = build_manifest(ds)
    with atomic_dir(out) as tmp:
        for split, pairs in ds.splits.items():
            write_jsonl(tmp / f"{split}.jsonl", (p.model_dump(mode="json") for p in pairs))
        atomic_write_json(tmp / MANIFEST, manifest)
    return out


def prepare(
    sources: Sequence[str | Path],
    config: PrepareConfig,
    out_dir: str | Path,
    *,
    progress: bool = False,
) -> tuple[Dataset, Path]:
    """Load `sources`, build the dataset and write it to `out_dir` (the CLI's whole job)."""
    from data_loaders.loaders import load_tables

    check_out_dir(out_dir)
    tables = load_tables([str(s) for s in sources], config.table)
    ds = build_dataset(tables, config, progress=progress)
    return ds, write_dataset(ds, out_dir)
