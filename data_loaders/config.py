"""Typed config for the datasets stage (`distillgraph prepare`), validated from YAML.

`TableConfig` says how to read and describe a table (entity column, row noun, aliases, units);
`PrepareConfig` says how many pairs of which kinds to build and how to split them. What the
table section leaves out is worked out from the table (`data_loaders.loaders`), and
``distillgraph prepare`` prints those choices as a ``table:`` section to paste and edit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from data_loaders.config_loader import StrictModel

ColumnType = Literal["numeric", "categorical", "text", "date"]


class ColumnConfig(StrictModel):
    """How one column is named and typed in questions.

    Naming a column here, even as ``{}``, keeps it in questions when it looks like a row index.
    """

    alias: str | None = Field(
        None,
        description="Name used in questions and context, e.g. 'fuel economy'; null uses the "
        "column name, less a unit suffix ('bill_length_mm' → 'bill length').",
    )
    unit: str | None = Field(
        None,
        description="Unit appended to values, e.g. 'mpg'; null reads it from a suffix of a "
        "numeric column's name ('_mm', '_pct' → '%'); '' for none.",
    )
    type: ColumnType | None = Field(None, description="Override the detected column type.")
    ignore: bool = Field(False, description="Leave this column out of questions and context.")


class TableConfig(StrictModel):
    """How to read a table and describe its columns."""

    entity_column: str | list[str] | None = Field(
        None,
        description="Column naming each row (e.g. 'Name'), or a list of 2 or 3 columns that "
        "name it together (e.g. [county, state]: rows read 'NOBLE, IN'); detected when null.",
    )
    entity_noun: str | None = Field(
        None,
        description="What one row is called in questions, e.g. 'car'; null derives it from the "
        "table name ('cars.csv' → 'car') or the entity column's name ('county') when either "
        "reads as a noun, else 'entry'.",
    )
    columns: dict[str, ColumnConfig] = Field(
        default_factory=dict,
        description="Per-column alias/unit/type/ignore, keyed by column name. Index-like "
        "columns (rownames, PID, ...) are left out unless named here.",
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

    @field_validator("entity_column")
    @classmethod
    def _entity_column(cls, v: str | list[str] | None) -> str | list[str] | None:
        if not isinstance(v, list):
            return v
        if len(v) == 1:
            return v[0]
        if not 2 <= len(v) <= 3:
            raise ValueError("give one column, or a list of 2 or 3 columns that name rows together")
        if len(set(v)) != len(v):
            raise ValueError(f"lists a column twice ({v}); give different columns")
        return v

    @property
    def entity_columns(self) -> list[str]:
        """The configured entity column(s) as a list (empty when detected)."""
        if self.entity_column is None:
            return []
        return [self.entity_column] if isinstance(self.entity_column, str) else self.entity_column

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
            "list": 0.03,
            "top": 0.03,
            "distinct": 0.02,
            "group": 0.03,
        },
        description="Relative weight of each question type in the budget (0 turns one off).",
    )
    max_context_rows: int = Field(
        8, ge=1, le=64, description="Most rows serialized into one pair's context."
    )
    casual_share: float = Field(
        0.35, ge=0.0, le=1.0,
        description="Share of questions rewritten the way people type (data_loaders.casual): "
        "a column named by its raw name or unit, lower case, no final punctuation, a short "
        "form, an occasional typo. A rewrite that would change what the request mentions is "
        "not made. 0 keeps every template's wording.",
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="Split settings.")


class PricesConfig(StrictModel):
    """What the teacher endpoint charges, for the token and cost count of ``synth``."""

    input_per_million: float = Field(
        0.0, ge=0.0, description="Price of one million prompt tokens (0 for a local server)."
    )
    output_per_million: float = Field(
        0.0, ge=0.0, description="Price of one million completion tokens (0 for a local server)."
    )
    currency: str = Field("USD", description="Label printed beside costs.")


class SynthConfig(StrictModel):
    """Everything `distillgraph synth` needs besides the dataset: the teacher and the client."""

    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, "
        "llama.cpp server, Ollama) or https://api.openai.com/v1."
    )
    model: str | None = Field(None, description="Model name at the endpoint.")
    api_key_env: str | None = Field(
        None,
        description="Environment variable holding the API key; null sends a placeholder key "
        "(local servers accept any).",
    )
    paraphrases: int = Field(
        3, ge=0, le=20, description="Paraphrases asked for each train pair (typed as people type)."
    )
    new_requests: int = Field(
        1, ge=0, le=20,
        description="New requests (with the teacher's program) asked for each train pair.",
    )
    summaries: int = Field(
        0, ge=0, le=20,
        description="Teacher-written summaries asked for each train summary pair (0: none); "
        "one is kept only when every number and name it writes is in the pair's facts.",
    )
    max_source_pairs: int | None = Field(
        None, ge=1, description="Use only the first N train pairs with a program (null: all)."
    )
    max_concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    max_retries: int = Field(
        4, ge=0, le=20, description="Retries of one call on HTTP 429, 5xx, timeouts, refusals "
        "to connect."
    )
    backoff_s: float = Field(
        1.0, ge=0.0, description="Wait before the first retry; doubles each retry (with jitter) "
        "unless the endpoint sends Retry-After."
    )
    backoff_max_s: float = Field(30.0, ge=0.0, description="Longest wait between retries.")
    timeout_s: float = Field(120.0, gt=0, description="Time limit of one HTTP request.")
    sampling_temperature: float = Field(
        0.8, ge=0.0, le=2.0, description="Sampling temperature of the teacher's replies."
    )
    max_tokens: int = Field(800, ge=16, le=32768, description="Most tokens in one reply.")
    json_mode: bool = Field(
        False,
        description="Send response_format json_object (servers that support it return only "
        "JSON); replies are parsed leniently either way.",
    )
    cache_dir: str | None = Field(
        None, description="Reply cache directory (null: 'synth_cache' beside the output dir)."
    )
    prices: PricesConfig = Field(
        default_factory=PricesConfig, description="Prices for the cost count."
    )
