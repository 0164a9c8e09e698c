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
``title`` (see `detect_entity_column`). When no column does, two string columns that are unique
together may name the rows (``county`` + ``state``, see `detect_entity_pair`).

Index columns (`index_columns`) only number or identify rows, so questions about them say
nothing: unique integers named like an index or an id (``rownames``, ``Unnamed: 0``, a blank
header, ``index``, ``PID``, ``customer_id``), a first column counting the rows (1, 2, 3, ... or
down), and unique codes named like an id. A name that means something ordered (``year``,
``rank``) keeps a first column that counts; so does any other column that merely increases
(a table sorted by population); R row names that are text (``mtcars``) are names, not an index.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterator
from itertools import combinations

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

# Names of row-index columns (lowercase, words joined by '_'): R's row names, pandas' index.
INDEX_NAMES = frozenset(
    {"rownames", "rowname", "row_names", "index", "idx", "row", "rowid", "row_id", "rownum",
     "row_num", "row_number", "obs", "id", "_id"}
)
# Last name words that make a column an identifier ('customer_id', 'PassengerId', 'PID').
ID_WORDS = frozenset({"id", "ids", "uuid", "guid", "pid", "uid", "oid", "fid", "gid", "objectid"})
# Name words of ordered quantities that may run 1, 2, 3, ... and still mean something.
ORDINAL_WORDS = frozenset(
    {"rank", "ranking", "position", "place", "seed", "year", "season", "round", "episode",
     "week", "month", "day", "hour", "age", "number", "level", "grade", "step"}
)
MAX_KEY_CANDIDATES = 12  # string columns tried as parts of a two-column entity
_AUTO_NAME = re.compile(r"(?i)unnamed: ?\d+|\.\.\.\d+|column_\d+")  # pandas, readr, blank

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


def _short_string_columns(
    df: pd.DataFrame, column_types: dict
) -> Iterator[tuple[int, str, pd.Series, float]]:
    """Columns that could name rows: strings typed text or categorical, short on average.

    Yields (position, name, sampled values as stripped strings, their mean length).
    """
    for position, (col, kind) in enumerate(column_types.items()):
        if kind not in ("text", "categorical") or col not in df.columns:
            continue
        series = df[col]
        if _is_bool(series) or pd.api.types.is_numeric_dtype(series.dtype):
            continue
        probe = _as_strings(sample(series))
        mean_len = probe.str.len().mean()
        if mean_len and mean_len <= MAX_ENTITY_CHARS:
            yield position, col, probe, float(mean_len)


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
    for position, col, probe, mean_len in _short_string_columns(df, column_types):
        series = df[col]
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


def name_words(column: str) -> list[str]:
    """The lower-case words of a column name: ``_``, camelCase and digits split."""
    return [w.lower() for w in _WORDS.findall(str(column))]


def is_index_name(column: str) -> bool:
    """Whether a column is named like a row index (``rownames``, ``Unnamed: 0``, ``index``)."""
    name = str(column).strip()
    return bool(_AUTO_NAME.fullmatch(name)) or (
        name.lower() in INDEX_NAMES or "_".join(name_words(name)) in INDEX_NAMES
    )


def _is_id_name(column: str) -> bool:
    words = name_words(column)
    return bool(words) and words[-1] in ID_WORDS


def _unique_integers(series: pd.Series) -> np.ndarray | None:
    """The values as float64 when they are non-null, whole and all different, else None."""
    if _is_bool(series) or not pd.api.types.is_numeric_dtype(series.dtype):
        return None
    if series.isna().any() or not series.is_unique:
        return None
    x = series.to_numpy(dtype="float64")
    return x if np.all(np.mod(x, 1) == 0) else None


def index_columns(
    df: pd.DataFrame, column_types: dict, keep: Collection[str] = ()
) -> dict[str, str]:
    """Columns that only number or identify rows, each with the reason (see the module docstring).

    Args:
        df: The typed table.
        column_types: Column name to `ColumnType`, in table order (the first column matters).
        keep: Columns never reported (the entity's, and those the config names).

    Returns:
        Column name → a short reason, e.g. ``"unique integers named like an index"``.
    """
    found: dict[str, str] = {}
    for position, (col, kind) in enumerate(column_types.items()):
        if col in keep or col not in df.columns:
            continue
        series = df[col]
        index_name = is_index_name(col)
        if kind == "numeric":
            x = _unique_integers(series)
            if x is None:
                continue
            if index_name or _is_id_name(col):
                found[col] = f"unique integers named like {'an index' if index_name else 'an id'}"
            elif (
                position == 0
                and len(x) > 2
                and not ORDINAL_WORDS & set(name_words(col))
                and np.all(np.abs(np.diff(x)) == 1)  # unique, so 1, 2, 3, ... or down
            ):
                found[col] = "first column counts the rows (a row index)"
        elif kind in ("text", "categorical") and _is_id_name(col) and not index_name:
            # Text named like an index (R row names) names rows; codes named like ids do not.
            nonnull = series.dropna()
            if len(nonnull) and nonnull.nunique() >= MIN_ENTITY_UNIQUE * len(series):
                found[col] = "unique codes named like an id"
    return found


def detect_entity_pair(df: pd.DataFrame, column_types: dict) -> tuple[str, str] | None:
    """Two string columns that name each row together, for tables no single column names.

    Candidates are string columns typed text or categorical, at least 90% non-null and short
    (as for `detect_entity_column`; the first `MAX_KEY_CANDIDATES`). A pair qualifies when at
    least 90% of the rows where both are set hold a different combination; pairs are scored by
    that share (twice), the share of rows where both are set, the parts' own uniqueness,
    entity-like names and position. The more unique part comes first (``county``, then
    ``state``), so rows read ``NOBLE, IN``.

    Args:
        df: The table.
        column_types: Column name to `ColumnType`.

    Returns:
        The two column names, most unique first, or ``None``.
    """
    n_rows = len(df)
    if n_rows < 2:
        return None
    candidates: list[tuple[int, str, float]] = []
    for position, col, _, _ in _short_string_columns(df, column_types):
        series = df[col]
        nonnull = int(series.notna().sum())
        if nonnull < MIN_ENTITY_NONNULL * n_rows:
            continue
        candidates.append((position, col, series.nunique() / nonnull))
        if len(candidates) == MAX_KEY_CANDIDATES:
            break
    probe = df.iloc[np.unique(np.linspace(0, n_rows - 1, min(n_rows, SAMPLE_ROWS)).astype(int))]
    best: tuple[float, tuple[str, str]] | None = None
    for (pa, a, ua), (pb, b, ub) in combinations(candidates, 2):
        # A sample of a nearly unique pair is at least as unique: a cheap filter first.
        sampled = probe[[a, b]].dropna()
        if sampled.duplicated().mean() > 1 - MIN_ENTITY_UNIQUE:
            continue
        both = df[[a, b]].dropna()
        if len(both) < MIN_ENTITY_NONNULL * n_rows:
            continue
        unique_share = 1 - both.duplicated().sum() / len(both)
        if unique_share < MIN_ENTITY_UNIQUE:
            continue
        score = (
            2 * unique_share
            + len(both) / n_rows
            + ua
            + ub
            + _name_bonus(a)
            + _name_bonus(b)
            - 0.01 * (pa + pb)
        )
        if best is None or score > best[0]:
            best = (score, (a, b) if ua >= ub else (b, a))
    return best[1] if best else None


def entity_key_values(df: pd.DataFrame, parts: list[str] | tuple[str, ...]) -> pd.Series:
    """The name of each row made of several columns' values: ``"NOBLE, IN"``.

    Values are shown as everywhere else (``1999``, not ``1999.0``); a row missing any part
    gets no name (null).
    """
    from data_loaders.serialize import format_value

    texts = []
    for col in parts:
        s = df[col]
        if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
            texts.append(s.str.strip())
        else:
            texts.append(s.map(format_value, na_action="ignore").astype(object))
    name = texts[0].astype(object)
    for t in texts[1:]:
        name = name + ", " + t.astype(object)
    return name.mask(df[list(parts)].isna().any(axis=1)).astype("str")
