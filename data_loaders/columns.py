"""Column typing and entity-column detection for loaded tables.

Every column gets one of four types (`ColumnType`): ``numeric``, ``categorical``, ``text`` or
``date``. Types are inferred on an evenly spaced sample of at most `SAMPLE_ROWS` values, so a
million-row column costs as much as a ten-thousand-row one; converting the column afterwards
(`coerce_column`) is vectorized.

Rules, in order:

* booleans are categorical; numbers are numeric; datetimes are dates;
* strings that are numbers (``"12.5"``, ``"-3"``, ``"1,234"``, ``"1e-3"``; not ``"007"``, which
  is a code) in at least `MIN_MATCH` of the sampled non-null values are numeric;
* strings that are ISO-like dates (``2020-01-31``, ``2020/1/31``, ``2020-01-31T12:00:00Z``) in at
  least `MIN_MATCH` of the sample are dates;
* other strings are categorical when they are few (at most `MAX_CATEGORIES` distinct values,
  each repeated on average) and short, else text.

The entity column is the column that names each row (``Name``, ``country``, ``iata``): a string
column that is nearly unique, mostly non-null and short, preferring names such as ``name`` or
``title`` (see `detect_entity_column`).
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from data_loaders.config import ColumnType

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 10_000
MIN_MATCH = 0.95
MAX_CATEGORIES = 50
MAX_CATEGORY_CHARS = 50
MAX_ENTITY_CHARS = 80
MIN_ENTITY_UNIQUE = 0.9
MIN_ENTITY_NONNULL = 0.9

# Column-name words that suggest an entity column, best first.
ENTITY_HINTS = (
    "name",
    "title",
    "label",
    "entity",
    "country",
    "city",
    "state",
    "company",
    "player",
    "team",
    "product",
    "model",
    "station",
    "airport",
    "symbol",
    "ticker",
    "code",
    "iata",
    "key",
    "id",
)

_NUMBER = re.compile(
    r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?:0|[1-9]\d*)(?:\.\d*)?|\.\d+)"
    r"(?:[eE][-+]?\d+)?"
)
_DATE = re.compile(
    r"\d{4}[-/]\d{1,2}[-/]\d{1,2}"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
    r"(?:Z|[-+]\d{2}:?\d{2})?"
)
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def sample(series: pd.Series, n: int = SAMPLE_ROWS) -> pd.Series:
    """At most `n` evenly spaced values of `series` (all of it when shorter), deterministic."""
    if len(series) <= n:
        return series
    return series.iloc[np.linspace(0, len(series) - 1, n).astype(np.int64)]


def _as_strings(series: pd.Series) -> pd.Series:
    """Non-null values as stripped strings (object columns may mix numbers and text)."""
    s = series.dropna()
    if not (pd.api.types.is_string_dtype(s.dtype) and s.dtype != object):
        s = s.astype(str)
    return s.str.strip()


def _is_bool(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series.dtype):
        return True
    if series.dtype == object:
        s = sample(series).dropna()
        return len(s) > 0 and s.map(type).isin([bool, np.bool_]).all()
    return False


def infer_column_type(series: pd.Series) -> ColumnType:
    """Infer the type of one column from a sample of its values.

    Args:
        series: The column as loaded (any dtype; strings may hold numbers or dates).

    Returns:
        ``"numeric"``, ``"categorical"``, ``"text"`` or ``"date"`` (see the module docstring).
        An all-null column is ``"text"``.
    """
    s = sample(series)
    if _is_bool(s):
        return "categorical"
    if pd.api.types.is_numeric_dtype(s.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "date"
    values = _as_strings(s)
    values = values[values != ""]
    if values.empty:
        return "text"
    if values.str.fullmatch(_NUMBER).mean() >= MIN_MATCH:
        return "numeric"
    if (
        values.str.fullmatch(_DATE).mean() >= MIN_MATCH
        and _parse_dates(values).notna().mean() >= MIN_MATCH
    ):
        return "date"
    n_unique = values.nunique()
    if (
        n_unique <= MAX_CATEGORIES
        and n_unique <= 0.5 * len(values)
        and values.str.len().mean() <= MAX_CATEGORY_CHARS
    ):
        return "categorical"
    return "text"


def _parse_dates(values: pd.Series) -> pd.Series:
    """Parse ISO-like date strings (``/`` or ``-`` separated); unparsable values become NaT."""
    values = values.str.replace("/", "-", regex=False)
    try:
        return pd.to_datetime(values, format="ISO8601", errors="coerce")
    except (ValueError, TypeError):  # mixed time zones
        return pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)


def coerce_column(series: pd.Series, kind: ColumnType) -> tuple[pd.Series, int]:
    """Convert a column's values to its type.

    Strings become numbers (thousands separators removed) or datetimes; values that do not
    parse become null. Categorical and text columns are left as they are, except that empty
    strings become null.

    Args:
        series: The column as loaded.
        kind: Its type (inferred or from the config).

    Returns:
        The converted column and how many non-null values failed to parse (became null).
    """
    if kind == "numeric":
        if pd.api.types.is_numeric_dtype(series.dtype) and not _is_bool(series):
            return series, 0
        if _is_bool(series):
            return series.astype("float64"), 0
        strings = _as_strings(series)
        ok = strings.str.fullmatch(_NUMBER)
        nums = pd.to_numeric(strings[ok].str.replace(",", "", regex=False), errors="coerce")
        out = pd.Series(np.nan, index=series.index, dtype="float64")
        out.loc[nums.index] = nums.to_numpy(dtype="float64")
        failed = int((strings != "").sum() - nums.notna().sum())
        return _maybe_int(out), failed
    if kind == "date":
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            return series, 0
        strings = _as_strings(series)
        parsed = _parse_dates(strings)
        out = pd.Series(pd.NaT, index=series.index, dtype=parsed.dtype)
        out.loc[parsed.index] = parsed
        failed = int((strings != "").sum() - parsed.notna().sum())
        return out, failed
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series.mask(series == ""), 0
    return series, 0


def _maybe_int(values: pd.Series) -> pd.Series:
    """Integral float columns without nulls become int64 (``18`` reads better than ``18.0``)."""
    if values.notna().all() and np.all(np.mod(values.to_numpy(), 1) == 0):
        return values.astype("int64")
    return values


def _name_bonus(column: str) -> float:
    """1.0 for the best entity-name hint down to ~0.05 for the last; 0 when none matches."""
    words = {w.lower() for w in _WORDS.findall(str(column))}
    for rank, hint in enumerate(ENTITY_HINTS):
        if hint in words:
            return 1.0 - rank / len(ENTITY_HINTS)
    return 0.0


def detect_entity_column(df: pd.DataFrame, column_types: dict) -> str | None:
    """Pick the column that names each row, or ``None`` when no column does.

    A candidate is a string column typed text or categorical whose values are at least 90%
    non-null, at least 90% unique among the non-null ones, and on average at most
    `MAX_ENTITY_CHARS` characters long. Candidates are scored by uniqueness (twice), non-null
    share, a bonus for entity-like names (`ENTITY_HINTS`), shortness and position (earlier wins
    ties).

    Args:
        df: The table.
        column_types: Column name to `ColumnType`, for the columns to consider.

    Returns:
        The best candidate's name, or ``None``.
    """
    best: tuple[float, str] | None = None
    n_rows = len(df)
    for position, (col, kind) in enumerate(column_types.items()):
        if kind not in ("text", "categorical") or col not in df.columns:
            continue
        series = df[col]
        if _is_bool(series) or pd.api.types.is_numeric_dtype(series.dtype):
            continue
        probe = _as_strings(sample(series))
        mean_len = probe.str.len().mean()
        if not mean_len or mean_len > MAX_ENTITY_CHARS:
            continue
        # A sample of a nearly unique column is at least as unique (fewer chances to collide),
        # so a clearly repetitive sample rules the column out without a full pass.
        if probe.nunique() < 0.8 * len(probe):
            continue
        nonnull = series.notna().sum()
        nonnull_share = nonnull / n_rows if n_rows else 0.0
        if nonnull_share < MIN_ENTITY_NONNULL:
            continue
        unique_share = series.nunique() / nonnull
        if unique_share < MIN_ENTITY_UNIQUE:
            continue
        score = (
            2 * unique_share
            + nonnull_share
            + _name_bonus(col)
            - min(mean_len, MAX_ENTITY_CHARS) / (2 * MAX_ENTITY_CHARS)
            - 0.01 * position
        )
        if best is None or score > best[0]:
            best = (score, col)
    return best[1] if best else None
