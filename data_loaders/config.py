"""Typed config for the datasets stage (`distillgraph prepare`), validated from YAML.

`TableConfig` says how to read and describe a table (entity column, aliases, units);
`PrepareConfig` says how many pairs of which kinds to build and how to split them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from data_loaders.config_loader import StrictModel

ColumnType = Literal["numeric", "categorical", "text", "date"]


class ColumnConfig(StrictModel):
    """How one column is named and typed in questions."""

    alias: str | None = Field(
        None, description="Name used in questions and context, e.g. 'fuel economy'."
    )
    unit: str | None = Field(None, description="Unit appended to values, e.g. 'mpg'.")
    type: ColumnType | None = Field(None, description="Override the detected column type.")
    ignore: bool = Field(False, description="Leave this column out of questions and context.")


class TableConfig(StrictModel):
    """How to read a table and describe its columns."""

    entity_column: str | None = Field(
        None, description="Column naming each row (e.g. 'Name'); detected when null."
    )
    columns: dict[str, ColumnConfig] = Field(
        default_factory=dict, description="Per-column alias/unit/type/ignore, keyed by column name."
    )
    sql_table: str | None = Field(
        None,
        description="Table to read from a SQLAlchemy URL when it has no '#table' suffix; "
        "required when the database has several.",
    )
    delimiter: str | None = Field(
        None,
        description="CSV delimiter, one character ('tab' or '\\t' for a tab); sniffed when null.",
    )
    encoding: str = Field("utf-8", description="Text encoding of CSV/JSON files.")
    json_key: str | None = Field(
        None,
        description="Key of the list of records in a JSON object; found when it holds one list.",
    )

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(v, v)
        if len(v) != 1 or v in "\r\n\"":
            raise ValueError("must be one character other than a quote or newline, or 'tab'")
        return v


class SplitConfig(StrictModel):
    """Train/val/test split, disjoint by entity."""

    val_fraction: float = Field(0.1, description="Share of entities held out for validation.")
    test_fraction: float = Field(0.1, description="Share of entities held out for test.")
    holdout_templates: list[str] = Field(
        default_factory=list,
        description="Template ids (e.g. 'lookup/3') whose pairs go only to 'test_templates.jsonl'.",
    )

    @field_validator("val_fraction", "test_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 <= v < 0.5:
            raise ValueError("must be in [0, 0.5)")
        return v


class PrepareConfig(StrictModel):
    """Everything `distillgraph prepare` needs besides the input files."""

    table: TableConfig = Field(default_factory=TableConfig, description="How to read the table(s).")
    max_pairs: int = Field(2000, ge=1, description="Pair budget over all splits and tables.")
    seed: int = Field(0, description="Seed for sampling and splitting (reproducible).")
    decimals: int = Field(2, ge=0, le=8, description="Decimal places answers are rounded to.")
    question_types: dict[str, float] = Field(
        default_factory=lambda: {
            "lookup": 0.35,
            "compare": 0.12,
            "superlative": 0.1,
            "aggregate": 0.1,
            "claim": 0.18,
            "summary_row": 0.1,
            "summary_group": 0.05,
        },
        description="Relative weight of each question type in the budget (0 turns one off).",
    )
    entity_noun: str | None = Field(
        None,
        description="What one row is called in questions, e.g. 'car'; null derives it from the "
        "file name ('cars.csv' → 'car'), else 'entry'.",
    )
    max_context_rows: int = Field(
        8, ge=1, le=64, description="Most rows serialized into one pair's context."
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="Split settings.")
