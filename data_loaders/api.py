"""`StructuredDataLoader`: the datasets stage from Python, in the names the design notes use.

    loader = StructuredDataLoader(config)
    loader.load_from_csv("examples/data/cars.csv").load_from_sql("sqlite:///shop.db", "orders")
    pairs = loader.create_qa_pairs(max_pairs=500)
    loader.prepare_distillation_dataset("runs/cars/data")

The ``load_from_*`` methods return the loader itself (so calls chain) and accumulate tables in
`StructuredDataLoader.tables`; `prepare_distillation_dataset` writes the same files as
``distillgraph prepare``.
"""

from __future__ import annotations

from pathlib import Path

from data_loaders.config import PrepareConfig
from data_loaders.dataset import Dataset, build_dataset, check_out_dir, write_dataset
from data_loaders.errors import InputError
from data_loaders.schema import QAPair
from data_loaders.table import Table

_SUFFIXES = {
    "csv": (".csv", ".tsv", ".txt"),
    "json": (".json", ".jsonl", ".ndjson"),
    "parquet": (".parquet", ".pq"),
}


class StructuredDataLoader:
    """Load tables, then build or write a QA-pair dataset from them.

    Args:
        config: Table description, pair budget, seed and splits; `PrepareConfig()` when None.
    """

    def __init__(self, config: PrepareConfig | None = None):
        self.config = config or PrepareConfig()
        self.tables: list[Table] = []
        self.dataset: Dataset | None = None  # the last dataset built

    def _load(self, source: str | Path, kind: str | None, sql_table: str | None = None):
        from data_loaders.loaders import load_table

        if kind is not None and Path(source).suffix.lower() not in _SUFFIXES[kind]:
            raise InputError(
                f"{source}: load_from_{kind} expects a file ending in "
                f"{' '.join(_SUFFIXES[kind])}; use the matching load_from_* method"
            )
        cfg = self.config.table
        if sql_table is not None:
            cfg = cfg.model_copy(update={"sql_table": sql_table})
        table = load_table(source, cfg)
        used = {t.name for t in self.tables}
        base, n = table.name, 1
        while table.name in used:  # same naming rule as loaders.load_tables
            n += 1
            table.name = f"{base}_{n}"
        self.tables.append(table)
        return self

    def load_from_csv(self, path: str | Path) -> StructuredDataLoader:
        """Add a delimited text file (.csv .tsv .txt); returns the loader."""
        return self._load(path, "csv")

    def load_from_json(self, path: str | Path) -> StructuredDataLoader:
        """Add a JSON list of records or a JSON Lines file; returns the loader."""
        return self._load(path, "json")

    def load_from_parquet(self, path: str | Path) -> StructuredDataLoader:
        """Add a Parquet file; returns the loader."""
        return self._load(path, "parquet")

    def load_from_sql(self, url: str, table: str | None = None) -> StructuredDataLoader:
        """Add a SQL table by SQLAlchemy URL (`table` needed when the database has several)."""
        return self._load(url, None, sql_table=table)

    def _config(self, max_pairs: int | None, seed: int | None) -> PrepareConfig:
        update = {k: v for k, v in (("max_pairs", max_pairs), ("seed", seed)) if v is not None}
        if not update:
            return self.config
        return PrepareConfig.model_validate({**self.config.model_dump(), **update})

    def build(
        self, max_pairs: int | None = None, seed: int | None = None, progress: bool = False
    ) -> Dataset:
        """Generate the split dataset from the loaded tables (kept in `dataset`)."""
        if not self.tables:
            raise InputError("no table loaded; call load_from_csv/json/parquet/sql first")
        self.dataset = build_dataset(self.tables, self._config(max_pairs, seed), progress=progress)
        return self.dataset

    def create_qa_pairs(self, max_pairs: int | None = None) -> list[QAPair]:
        """Generate QA pairs from the loaded tables (all splits, train first).

        Args:
            max_pairs: Pair budget; the config's ``max_pairs`` when None.

        Returns:
            Every pair of the train, val and test splits (and held-out templates), each split's
            pairs in file order; `dataset` keeps them split.
        """
        return self.build(max_pairs).all_pairs()

    def prepare_distillation_dataset(
        self,
        out_dir: str | Path,
        max_pairs: int | None = None,
        seed: int | None = None,
        progress: bool = False,
    ) -> Path:
        """Build the dataset and write it like ``distillgraph prepare`` does.

        Args:
            out_dir: Directory for ``train/val/test.jsonl`` and ``manifest.json`` (replaced
                atomically if it is a dataset directory already).
            max_pairs: Pair budget; the config's when None.
            seed: Seed; the config's when None.
            progress: Show a progress bar.

        Returns:
            `out_dir` as a Path.
        """
        check_out_dir(out_dir)
        return write_dataset(self.build(max_pairs, seed, progress), out_dir)
