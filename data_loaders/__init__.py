"""Tables → QA-pair datasets: loading, question generation, the recompute check and splits.

Public names are imported lazily (PEP 562), so ``import data_loaders`` and ``distillgraph
--help`` stay fast; ``from data_loaders import StructuredDataLoader`` loads what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "StructuredDataLoader": "data_loaders.api",
    "InputError": "data_loaders.errors",
    "PrepareConfig": "data_loaders.config",
    "TableConfig": "data_loaders.config",
    "SplitConfig": "data_loaders.config",
    "Table": "data_loaders.table",
    "QAPair": "data_loaders.schema",
    "Provenance": "data_loaders.schema",
    "load_table": "data_loaders.loaders",
    "load_tables": "data_loaders.loaders",
    "table_from_dataframe": "data_loaders.loaders",
    "run_program": "data_loaders.programs",
    "verify_pair": "data_loaders.programs",
    "facts_for": "data_loaders.programs",
    "ProgramError": "data_loaders.programs",
    "Dataset": "data_loaders.dataset",
    "build_dataset": "data_loaders.dataset",
    "write_dataset": "data_loaders.dataset",
    "prepare": "data_loaders.dataset",
    "dedupe": "data_loaders.dataset",
    "TEMPLATES": "data_loaders.templates",
}

__all__ = [
    "Dataset",
    "InputError",
    "PrepareConfig",
    "ProgramError",
    "Provenance",
    "QAPair",
    "SplitConfig",
    "StructuredDataLoader",
    "TEMPLATES",
    "Table",
    "TableConfig",
    "build_dataset",
    "dedupe",
    "facts_for",
    "load_table",
    "load_tables",
    "prepare",
    "run_program",
    "table_from_dataframe",
    "verify_pair",
    "write_dataset",
]

if TYPE_CHECKING:
    from data_loaders.api import StructuredDataLoader
    from data_loaders.config import PrepareConfig, SplitConfig, TableConfig
    from data_loaders.dataset import Dataset, build_dataset, dedupe, prepare, write_dataset
    from data_loaders.errors import InputError
    from data_loaders.loaders import load_table, load_tables, table_from_dataframe
    from data_loaders.programs import ProgramError, facts_for, run_program, verify_pair
    from data_loaders.schema import Provenance, QAPair
    from data_loaders.table import Table
    from data_loaders.templates import TEMPLATES


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'data_loaders' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
