"""Programs: the structured spec behind every answer, its re-execution, and the recompute check.

Each `QAPair` carries ``provenance.program``, a small JSON spec that recomputes its answer from
the table, e.g.::

    {"op": "lookup", "entity": "amc rebel sst", "row_id": 3, "column": "Horsepower", ...}
    {"op": "aggregate", "agg": "mean", "column": "Horsepower",
     "where": [{"column": "Origin", "op": "==", "value": "USA"}], "evidence": "facts", ...}

Ops: ``lookup``, ``compare``, ``superlative``, ``aggregate``, ``claim``, ``summary_row`` and
``summary_group`` (the dataset's question types), and the row-set ops natural requests need:
``list`` (names of the rows matching a filter), ``top`` (the ``k`` rows with the highest or
lowest value of a column), ``distinct`` (how many different values a column takes) and
``group`` (a statistic by group: ``{"agg": "mean", "column": "Horsepower", "by": "Origin"}``).
A ``claim`` may carry ``cmp`` (``==`` by default, or ``>``, ``<``, ``>=``, ``<=``) between the
cell and its ``raw`` value. A ``where`` filter is a list of conditions ANDed together, each
``{"column", "op", "value"}`` with op one of ``==``, ``>``, ``<``, ``>=``, ``<=``. Every program
also holds ``decimals`` (answer rounding) and ``pandas``, the same computation written as a
pandas expression over ``df`` for human readers (evaluating it gives the raw answer).

`run_program` recomputes the normalized answer; `verify_pair` checks that the recomputed answer
equals the stored one AND that the context holds the evidence the answer needs (see
`data_loaders.qa` for how contexts are built). `facts_for` renders the ``[fact]`` lines for a
filter; dataset contexts and the serving graph both call it, so they state facts identically.

Lookups are cached per table (`index_for`): entity → row, group → rows, column arrays, row
text, facts. Tables are treated as immutable once loaded.
"""

from __future__ import annotations

import json
import operator
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from data_loaders.naming import plural
from data_loaders.schema import QUESTION_TYPES, TASK_OF_TYPE, QAPair
from data_loaders.serialize import format_number, format_value, serialize_fact, serialize_row
from data_loaders.table import Table
from data_loaders.templates import TEMPLATES, col_words, join_words, where_with

OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}
AGGS = ("count", "mean", "sum", "min", "max")
SUMMARY_OPS = ("summary_row", "summary_group")  # programs whose answer is a summary
ROW_CACHE = 8  # filters whose row sets stay cached per table


class ProgramError(ValueError):
    """A program cannot be run on this table (unknown column, missing entity, tie, no rows)."""


# --------------------------------------------------------------------------------------------
# Per-table cache
# --------------------------------------------------------------------------------------------


class TableIndex:
    """Lazily built lookups over one `Table`, so no question costs a full scan twice."""

    def __init__(self, table: Table):
        self.table = table
        self.n_rows = len(table.df)
        self._entity_strings: np.ndarray | None = None
        self._entity_index: pd.Index | None = None
        self._groups: dict[tuple[str, ...], dict] = {}
        self._numeric: dict[str, np.ndarray] = {}
        self._cells: dict[str, Any] = {}
        self._row_text: dict[int, str] = {}
        self._facts: dict[str, list[str]] = {}
        # Small results are kept for good; row sets (up to n_rows ids each) only for the last
        # few filters, which covers the repeated calls while one pair is built and checked.
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._stats: dict[tuple[str, str], dict[str, float] | None] = {}
        self._extremes: dict[tuple, int | str] = {}
        self._orders: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # entities ---------------------------------------------------------------------------
    def entity_strings(self) -> np.ndarray:
        """The entity column as strings (object array; nulls become ``""``)."""
        if self._entity_strings is None:
            col = self.table.entity_column
            if col is None:
                raise ProgramError("the table has no entity column")
            s = self.table.df[col]
            self._entity_strings = s.astype(str).where(s.notna(), "").to_numpy(dtype=object)
        return self._entity_strings

    def entity_name(self, row: int) -> str:
        """The name questions use for a row (``"row N"`` without an entity column)."""
        if self.table.entity_column is None:
            return f"row {row}"
        return self.entity_strings()[row]

    def entity_row(self, entity: str) -> int:
        """The row id of an entity; `ProgramError` if it is missing or not unique."""
        if self.table.entity_column is None:
            if not entity.startswith("row ") or not entity[4:].isdigit():
                raise ProgramError(f"entity {entity!r} is not 'row N' and the table has no names")
            row = int(entity[4:])
            if not 0 <= row < self.n_rows:
                raise ProgramError(f"{entity!r} is out of range")
            return row
        if self._entity_index is None:
            self._entity_index = pd.Index(self.entity_strings())
        try:
            loc = self._entity_index.get_loc(entity)
        except KeyError:
            raise ProgramError(f"entity {entity!r} not found") from None
        if not isinstance(loc, (int, np.integer)):
            raise ProgramError(f"entity {entity!r} names several rows")
        return int(loc)

    # columns ----------------------------------------------------------------------------
    def numeric(self, col: str) -> np.ndarray:
        """A column as float64 with NaN for nulls; `ProgramError` if it is not numeric."""
        if col not in self._numeric:
            self._check_column(col)
            s = self.table.df[col]
            if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
                raise ProgramError(f"column {col!r} is not numeric")
            self._numeric[col] = s.to_numpy(dtype="float64", na_value=np.nan)
        return self._numeric[col]

    def value_order(self, col: str) -> tuple[np.ndarray, np.ndarray]:
        """Non-null rows of a numeric column sorted by value, and their sorted values (cached).

        A threshold filter is then a slice found by binary search instead of a full scan.
        """
        if col not in self._orders:
            x = self.numeric(col)
            valid = np.flatnonzero(~np.isnan(x))
            order = valid[np.argsort(x[valid], kind="stable")]
            self._orders[col] = (order, x[order])
        return self._orders[col]

    def cell(self, row: int, col: str) -> Any:
        """One cell as the row serializer sees it (numpy scalar, Timestamp, str, or NaN)."""
        arr = self._cells.get(col)
        if arr is None:
            self._check_column(col)
            s = self.table.df[col]
            if isinstance(s.dtype, np.dtype) and s.dtype.kind == "M":
                # Naive datetimes as microseconds: elements .item() to datetime.datetime, which
                # formats like Timestamp but without boxing. (Nanoseconds would give ints.)
                arr = s.to_numpy().astype("datetime64[us]")
            elif pd.api.types.is_datetime64_any_dtype(s.dtype):
                arr = s.array  # tz-aware: index to Timestamp
            else:
                arr = s.to_numpy()
            self._cells[col] = arr
        v = arr[row]
        return None if isinstance(v, np.datetime64) and np.isnat(v) else v

    def row_text(self, row: int) -> str:
        """`Table.row_text(row)`, cached; built from column arrays (no per-row DataFrame)."""
        text = self._row_text.get(row)
        if text is None:
            t = self.table
            cols = t.columns
            if t.entity_column and t.entity_column in cols:
                cols = [t.entity_column] + [c for c in cols if c != t.entity_column]
            values = {c: self.cell(row, c) for c in cols}
            text = serialize_row(row, values, cols, t.display, t.units)
            self._row_text[row] = text
        return text

    def groups(self, cols: tuple[str, ...]) -> dict:
        """Rows of each value combination of `cols` (``groupby(...).indices``), cached."""
        if cols not in self._groups:
            for c in cols:
                self._check_column(c)
            groups = self.table.df.groupby(list(cols), sort=False).indices
            self._groups[cols] = {k: np.sort(v).astype(np.int64) for k, v in groups.items()}
        return self._groups[cols]

    def _check_column(self, col: str) -> None:
        if col not in self.table.df.columns:
            raise ProgramError(f"unknown column {col!r}")


_INDEXES: dict[int, TableIndex] = {}


def index_for(table: Table) -> TableIndex:
    """The cached `TableIndex` of `table` (dropped when the table is garbage-collected)."""
    key = id(table)
    idx = _INDEXES.get(key)
    if idx is None or idx.table is not table:
        idx = TableIndex(table)
        _INDEXES[key] = idx
        weakref.finalize(table, _INDEXES.pop, key, None)
    return idx


# --------------------------------------------------------------------------------------------
# Filters and facts
# --------------------------------------------------------------------------------------------


def _check_where(where: list[dict]) -> None:
    if not isinstance(where, list):
        raise ProgramError("'where' must be a list of conditions (empty: every row)")
    for c in where:
        if not isinstance(c, dict) or set(c) != {"column", "op", "value"}:
            raise ProgramError(f"bad condition {c!r}: needs exactly column, op, value")
        if c["op"] not in OPS:
            raise ProgramError(f"bad condition op {c['op']!r}; use one of {list(OPS)}")


def _where_key(where: list[dict]) -> str:
    return json.dumps(where, sort_keys=True, default=str)


def rows_where(table: Table, where: list[dict]) -> np.ndarray:
    """Row ids (int64, read-only) of rows matching every condition of `where`.

    Equality conditions use the cached group index and a lone threshold a binary search in the
    column's cached value order, so no question costs a full scan. Ids are ascending, except
    for a lone threshold (value order). Null cells never match.
    """
    _check_where(where)
    idx = index_for(table)
    key = _where_key(where)
    rows = idx._rows.get(key)
    if rows is None:
        rows = _rows_where(idx, where)
        rows.flags.writeable = False
        idx._rows[key] = rows
        if len(idx._rows) > ROW_CACHE:
            idx._rows.popitem(last=False)
    else:
        idx._rows.move_to_end(key)
    return rows


def _rows_where(idx: TableIndex, where: list[dict]) -> np.ndarray:
    if not where:
        return np.arange(idx.n_rows, dtype=np.int64)
    eq = [c for c in where if c["op"] == "=="]
    rest = [c for c in where if c["op"] != "=="]
    if eq:
        cols = tuple(c["column"] for c in eq)
        groups = idx.groups(cols)
        key = tuple(c["value"] for c in eq) if len(cols) > 1 else eq[0]["value"]
        rows = groups.get(key)
        if rows is None:
            rows = np.empty(0, dtype=np.int64)
    elif len(rest) == 1:
        c = rest[0]
        order, xs = idx.value_order(c["column"])
        t, op = float(c["value"]), c["op"]
        if op in (">", ">="):
            return order[np.searchsorted(xs, t, side="right" if op == ">" else "left") :]
        return order[: np.searchsorted(xs, t, side="left" if op == "<" else "right")]
    else:
        rows = None  # all rows: thresholds then scan whole columns, no index array needed
    for c in rest:
        x = idx.numeric(c["column"])
        with np.errstate(invalid="ignore"):
            if rows is None:
                rows = np.flatnonzero(OPS[c["op"]](x, float(c["value"])))
            else:
                rows = rows[OPS[c["op"]](x[rows], float(c["value"]))]
    return np.asarray(rows, dtype=np.int64)


def _fmt(table: Table, col: str | None, value: Any, decimals: int) -> str:
    return format_value(value, table.units.get(col) if col else None, decimals)


def fact_where(table: Table, where: list[dict], decimals: int = 2) -> str:
    """A filter as facts state it: ``origin = USA and horsepower > 100 hp``."""
    parts = []
    for c in where:
        op = "=" if c["op"] == "==" else c["op"]
        val = _fmt(table, c["column"], c["value"], decimals)
        parts.append(f"{table.display_name(c['column'])} {op} {val}")
    return " and ".join(parts)


def where_stats(table: Table, where: list[dict], col: str) -> dict[str, float] | None:
    """`column_stats` of the rows matching `where`, cached per (filter, column)."""
    idx = index_for(table)
    key = (_where_key(where), col)
    if key not in idx._stats:
        idx._stats[key] = column_stats(table, rows_where(table, where), col)
    return idx._stats[key]


def column_stats(table: Table, rows: np.ndarray, col: str) -> dict[str, float] | None:
    """count/mean/min/max/sum of a numeric column over `rows` (nulls skipped); None if all null."""
    x = index_for(table).numeric(col)[rows]
    x = x[~np.isnan(x)]
    if x.size == 0:
        return None
    return {
        "count": int(x.size),
        "mean": float(x.mean()),
        "min": float(x.min()),
        "max": float(x.max()),
        "sum": float(x.sum()),
    }


def facts_for(table: Table, filter_spec: dict, decimals: int = 2) -> list[str]:
    """The ``[fact]`` lines that state a filter's row count and column statistics.

    Args:
        table: The table.
        filter_spec: ``{"where": [conditions], "columns": [numeric columns]}``; ``columns`` is
            optional (then only the row count is stated).
        decimals: Rounding of the stated values.

    Returns:
        ``[fact] rows where origin = USA: 245``, then for each column (if it has non-null values
        in the filter) ``mean``, ``min``, ``max`` and ``sum`` lines, e.g.
        ``[fact] mean horsepower where origin = USA: 119.05 hp (over 241 rows)``.
    """
    where = filter_spec.get("where") or []
    columns = list(filter_spec.get("columns") or [])
    idx = index_for(table)
    key = json.dumps([where, columns, decimals], sort_keys=True, default=str)
    cached = idx._facts.get(key)
    if cached is not None:
        return list(cached)
    rows = rows_where(table, where)
    w = fact_where(table, where, decimals)
    lines = [serialize_fact(f"rows where {w}: {len(rows)}")]
    for col in columns:
        st = where_stats(table, where, col)
        if st is None:
            continue
        name = table.display_name(col)
        lines.append(
            serialize_fact(
                f"mean {name} where {w}: {_fmt(table, col, st['mean'], decimals)} "
                f"(over {st['count']} rows)"
            )
        )
        for agg, label in (("min", "min"), ("max", "max"), ("sum", "sum of")):
            lines.append(
                serialize_fact(f"{label} {name} where {w}: {_fmt(table, col, st[agg], decimals)}")
            )
    idx._facts[key] = lines
    return list(lines)


# --------------------------------------------------------------------------------------------
# Running programs
# --------------------------------------------------------------------------------------------


def _decimals(program: dict) -> int:
    d = program.get("decimals", 2)
    if not isinstance(d, int) or not 0 <= d <= 8:
        raise ProgramError(f"bad decimals {d!r}")
    return d


def _row_of(
    table: Table, program: dict, entity: str | None = None, row_id: int | None = None
) -> int:
    entity = program["entity"] if entity is None else entity
    row = index_for(table).entity_row(entity)
    expected = program.get("row_id") if row_id is None else row_id
    if expected is not None and expected != row:
        raise ProgramError(f"entity {entity!r} is row {row}, not row {expected}")
    return row


def _value(table: Table, row: int, col: str) -> Any:
    v = index_for(table).cell(row, col)
    if _is_null(v):
        raise ProgramError(f"row {row} has no value in column {col!r}")
    return v


def _numeric_value(table: Table, row: int, col: str) -> float:
    x = index_for(table).numeric(col)[row]
    if np.isnan(x):
        raise ProgramError(f"row {row} has no value in column {col!r}")
    return float(x)


def superlative_row(
    table: Table, where: list[dict], column: str, direction: str, decimals: int = 2
) -> int:
    """The row with the highest (``max``) or lowest (``min``) `column` among rows matching `where`.

    Raises:
        ProgramError: No row has a value, or another row shows the same value once rounded
            (the question would have two right answers).
    """
    if direction not in ("max", "min"):
        raise ProgramError(f"bad direction {direction!r}")
    idx = index_for(table)
    key = (_where_key(where), column, direction, decimals)
    found = idx._extremes.get(key)
    if found is None:
        found = _superlative_row(table, where, column, direction, decimals)
        idx._extremes[key] = found
    if isinstance(found, str):
        raise ProgramError(found)
    return found


def _superlative_row(
    table: Table, where: list[dict], column: str, direction: str, decimals: int
) -> int | str:
    """The winning row id, or the reason there is none (as text, so it can be cached)."""
    rows = rows_where(table, where)
    x = index_for(table).numeric(column)[rows]
    ok = ~np.isnan(x)
    if not ok.any():
        return "no row in the filter has a value"
    rows, x = rows[ok], x[ok]
    best = int(np.argmax(x) if direction == "max" else np.argmin(x))
    top = x[best]
    shown = format_number(float(top), decimals)
    if int((x == top).sum()) > 1:
        return f"several rows share the {direction} {column} ({shown})"
    # Rounding ties: another value within one display unit that prints the same.
    near = np.flatnonzero(np.abs(x - top) <= 10.0 ** (-decimals))
    if len(near) > 1 and any(
        format_number(float(x[i]), decimals) == shown for i in near if i != best
    ):
        return f"several rows share the {direction} {column} ({shown})"
    return int(rows[best])


def _run_compare(table: Table, p: dict, d: int) -> str:
    a, b = p["entities"]
    ra, rb = (_row_of(table, p, e, r) for e, r in zip(p["entities"], p["row_ids"], strict=True))
    xa, xb = _numeric_value(table, ra, p["column"]), _numeric_value(table, rb, p["column"])
    if format_number(xa, d) == format_number(xb, d):
        raise ProgramError(f"{a!r} and {b!r} tie on {p['column']!r}")
    if p["direction"] not in ("max", "min"):
        raise ProgramError(f"bad direction {p['direction']!r}")
    a_wins = xa > xb if p["direction"] == "max" else xa < xb
    return a if a_wins else b


def _run_aggregate(table: Table, p: dict, d: int) -> str:
    agg = p["agg"]
    if agg not in AGGS:
        raise ProgramError(f"bad agg {agg!r}; use one of {AGGS}")
    if agg == "count":
        return str(len(rows_where(table, p["where"])))
    st = where_stats(table, p["where"], p["column"])
    if st is None:
        raise ProgramError("no row in the filter has a value")
    return _fmt(table, p["column"], st[agg], d)


def group_summary(
    table: Table,
    where: list[dict],
    columns: list[str],
    noun: str,
    list_entities: bool,
    decimals: int = 2,
) -> str:
    """The reference summary of the rows matching `where`.

    ``There are 3 cars with origin Japan and model year 1976: a, b and c. Their horsepower ranges
    from 52 to 97 hp (mean 73.33 hp).`` Names are listed only with `list_entities` (when every
    row is in the context); column sentences are left out for columns with no values.
    """
    rows = rows_where(table, where)
    n = len(rows)
    if n == 0:
        raise ProgramError("no row matches the filter")
    idx = index_for(table)
    head = (
        f"There {'is' if n == 1 else 'are'} {n} {noun if n == 1 else plural(noun)} with "
        f"{where_with(table, where, decimals)}"
    )
    if list_entities:
        head += ": " + join_words([idx.entity_name(int(r)) for r in np.sort(rows)])
    parts = [head + "."]
    for col in columns:
        st = where_stats(table, where, col)
        if st is None:
            continue
        lo, hi, mean = (_fmt(table, col, st[k], decimals) for k in ("min", "max", "mean"))
        words = col_words(table, col)
        if lo == hi:
            parts.append(f"Their {words} is {lo}.")
        else:
            parts.append(f"Their {words} ranges from {lo} to {hi} (mean {mean}).")
    return " ".join(parts)


def row_summary(table: Table, row: int, columns: list[str], decimals: int = 2) -> str:
    """The reference summary of one row: ``<entity> has <col> <value>, ... and <col> <value>.``."""
    idx = index_for(table)
    cells = []
    for col in columns:
        v = idx.cell(row, col)
        s = _fmt(table, col, v, decimals) if not _is_null(v) else ""
        if s:
            cells.append(f"{col_words(table, col)} {s}")
    if not cells:
        raise ProgramError(f"row {row} has no values to summarize")
    return f"{idx.entity_name(row)} has {join_words(cells)}."


def _is_null(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


MAX_LISTED = 20  # names a list reply spells out; the rest are counted


def _run_claim(table: Table, p: dict, d: int) -> str:
    """``yes``/``no``: the cell compared with the claimed value (``cmp``, default ``==``)."""
    row = _row_of(table, p)
    col, cmp = p["column"], p.get("cmp", "==")
    if cmp not in OPS:
        raise ProgramError(f"bad claim comparison {cmp!r}; use one of {list(OPS)}")
    if cmp == "==":
        actual = _fmt(table, col, _value(table, row, col), d)
        return "yes" if actual == p["value"] else "no"
    x = _numeric_value(table, row, col)
    try:
        claimed = float(p["raw"])
    except (TypeError, ValueError):
        raise ProgramError(f"claimed value {p['raw']!r} is not a number") from None
    return "yes" if OPS[cmp](round(x, d), round(claimed, d)) else "no"


def _names(table: Table, rows: np.ndarray) -> list[str]:
    idx = index_for(table)
    return [idx.entity_name(int(r)) for r in rows]


def _listed(names: list[str]) -> str:
    if len(names) > MAX_LISTED:
        return join_words([*names[:MAX_LISTED], f"{len(names) - MAX_LISTED} more"])
    return join_words(names)


def _run_list(table: Table, p: dict, d: int) -> str:
    rows = np.sort(rows_where(table, p["where"]))
    if len(rows) == 0:
        raise ProgramError("no row matches the filter")
    return _listed(_names(table, rows))


def top_rows(table: Table, p: dict) -> np.ndarray:
    """The ``k`` rows with the highest (``max``) or lowest ``column`` in the filter, best first.

    Rows tied with the k-th value are kept, so the reply never drops an equal row.
    """
    k = p["k"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
        raise ProgramError(f"bad k {k!r}: a whole number from 1 to 100")
    if p["direction"] not in ("max", "min"):
        raise ProgramError(f"bad direction {p['direction']!r}")
    rows = rows_where(table, p["where"])
    x = index_for(table).numeric(p["column"])[rows]
    ok = ~np.isnan(x)
    rows, x = rows[ok], x[ok]
    if len(rows) == 0:
        raise ProgramError("no row in the filter has a value")
    order = np.argsort(-x if p["direction"] == "max" else x, kind="stable")
    if len(order) > k:
        kth = x[order[k - 1]]
        order = order[: k + int((x[order[k:]] == kth).sum())]
    return rows[order]


def _run_top(table: Table, p: dict, d: int) -> str:
    rows = top_rows(table, p)
    x = index_for(table).numeric(p["column"])
    names = _names(table, rows)
    return join_words(
        [f"{n} ({_fmt(table, p['column'], x[r], d)})" for n, r in zip(names, rows, strict=True)]
    )


def _run_distinct(table: Table, p: dict, d: int) -> str:
    rows = rows_where(table, p["where"])
    idx = index_for(table)
    idx._check_column(p["column"])
    values = []
    for r in rows:
        v = idx.cell(int(r), p["column"])
        if not _is_null(v):
            values.append(_fmt(table, p["column"], v, d))
    uniq = list(dict.fromkeys(values))
    if len(uniq) <= 10:
        return f"{len(uniq)} ({join_words(uniq)})" if uniq else "0"
    return str(len(uniq))


def group_values(table: Table, p: dict) -> list[tuple[str, float]]:
    """``(group label, statistic)`` for each group of ``by`` among the filter's rows.

    Groups are in descending order of the statistic; groups with no value are left out.
    """
    agg, by = p["agg"], p["by"]
    if agg not in AGGS:
        raise ProgramError(f"bad agg {agg!r}; use one of {AGGS}")
    rows = rows_where(table, p["where"])
    idx = index_for(table)
    groups = idx.groups((by,))
    keep = set(int(r) for r in rows)
    out = []
    for key, members in groups.items():
        mine = np.asarray([m for m in members if int(m) in keep], dtype=np.int64)
        if len(mine) == 0:
            continue
        if agg == "count":
            out.append((_fmt(table, by, key, 2), float(len(mine))))
            continue
        st = column_stats(table, mine, p["column"])
        if st is not None:
            out.append((_fmt(table, by, key, 2), st[agg]))
    if not out:
        raise ProgramError("no group in the filter has a value")
    return sorted(out, key=lambda kv: -kv[1])


def _run_group(table: Table, p: dict, d: int) -> str:
    col = p.get("column") if p["agg"] != "count" else None
    return ", ".join(f"{g}: {_fmt(table, col, v, d)}" for g, v in group_values(table, p))


LIST_OPS: dict[str, Callable[[Table, dict, int], str]] = {
    "list": _run_list,
    "top": _run_top,
    "distinct": _run_distinct,
    "group": _run_group,
}


def plain_program(program: Any) -> Any:
    """`program` with numpy scalars made Python ones (filter values read from cells are numpy).

    JSON, msgpack and so LangGraph's checkpointers then store it as is.
    """
    if isinstance(program, dict):
        return {k: plain_program(v) for k, v in program.items()}
    if isinstance(program, list | tuple):
        return [plain_program(v) for v in program]
    if isinstance(program, np.generic):
        return program.item()
    return program


def run_program(table: Table, program: dict) -> str:
    """Recompute the normalized answer of a program from the table.

    Args:
        table: The table the program was generated from.
        program: A spec as described in the module docstring (``pandas`` is ignored).

    Returns:
        The answer text exactly as a `QAPair` stores it.

    Raises:
        ProgramError: The program does not apply to this table (or is malformed).
    """
    try:
        op = program["op"]
        d = _decimals(program)
        if op == "lookup":
            row = _row_of(table, program)
            return _fmt(table, program["column"], _value(table, row, program["column"]), d)
        if op == "compare":
            return _run_compare(table, program, d)
        if op == "superlative":
            row = superlative_row(
                table, program["where"], program["column"], program["direction"], d
            )
            return index_for(table).entity_name(row)
        if op == "aggregate":
            return _run_aggregate(table, program, d)
        if op == "claim":
            return _run_claim(table, program, d)
        if op == "summary_row":
            return row_summary(table, _row_of(table, program), program["columns"], d)
        if op in LIST_OPS:
            return LIST_OPS[op](table, program, d)
        if op == "summary_group":
            return group_summary(
                table,
                program["where"],
                program["columns"],
                program["noun"],
                program["evidence"] == "rows",
                d,
            )
    except KeyError as e:
        raise ProgramError(f"program {program.get('op')!r} lacks key {e}") from None
    raise ProgramError(f"unknown op {program.get('op')!r}")


# --------------------------------------------------------------------------------------------
# The recompute check
# --------------------------------------------------------------------------------------------


def required_rows(table: Table, program: dict) -> list[int]:
    """Rows the context must show for the answer to be read off it.

    For group ops with ``evidence == "rows"``: every row of the group. With ``"facts"``: the
    superlative's winning row (the others are stated by the facts).
    """
    op = program["op"]
    if op in ("lookup", "claim", "summary_row"):
        return [_row_of(table, program)]
    if op == "compare":
        return sorted(
            _row_of(table, program, e, r)
            for e, r in zip(program["entities"], program["row_ids"], strict=True)
        )
    if program.get("evidence") == "rows":
        return [int(r) for r in rows_where(table, program["where"])]
    if op == "superlative":
        d = _decimals(program)
        return [
            superlative_row(table, program["where"], program["column"], program["direction"], d)
        ]
    return []


def required_facts(table: Table, program: dict) -> list[str]:
    """Fact lines the context must hold (only group ops with ``evidence == "facts"``)."""
    if program.get("evidence") != "facts":
        return []
    cols = [program["column"]] if program.get("column") else list(program.get("columns", []))
    return facts_for(table, {"where": program["where"], "columns": cols}, _decimals(program))


def check_pair(table: Table, pair: QAPair) -> list[str]:
    """Every reason `pair` fails the recompute check (empty when it passes).

    Checks: the table hash; task and template agree with the type; the recomputed answer equals
    the stored one; the context is exactly the rows of ``provenance.row_ids`` plus fact lines;
    and it holds the evidence the answer needs (`required_rows`, `required_facts`).
    """
    problems = []
    prov = pair.provenance
    if prov.table_hash != table.content_hash:
        problems.append(f"table hash {prov.table_hash} != {table.content_hash}")
    if pair.qtype not in QUESTION_TYPES or TASK_OF_TYPE[pair.qtype] != pair.task:
        problems.append(f"task {pair.task!r} does not match type {pair.qtype!r}")
    tmpl = TEMPLATES.get(pair.template)
    if tmpl is None or tmpl.qtype != pair.qtype or prov.program.get("op") != pair.qtype:
        problems.append(f"template {pair.template!r} / op does not match type {pair.qtype!r}")
    try:
        answer = run_program(table, prov.program)
        if answer != pair.answer:
            problems.append(f"recomputed answer {answer!r} != stored {pair.answer!r}")
        idx = index_for(table)
        lines = pair.context.split("\n")
        row_lines = [ln for ln in lines if ln.startswith("[row ")]
        fact_lines = [ln for ln in lines if ln.startswith("[fact] ")]
        if len(row_lines) + len(fact_lines) != len(lines):
            problems.append("context has lines that are neither rows nor facts")
        if row_lines != [idx.row_text(r) for r in prov.row_ids]:
            problems.append("context rows differ from the table rows of provenance.row_ids")
        missing = set(required_rows(table, prov.program)) - set(prov.row_ids)
        if missing:
            problems.append(f"context lacks rows {sorted(missing)} the answer needs")
        if not set(required_facts(table, prov.program)) <= set(fact_lines):
            problems.append("context lacks the fact lines the answer needs")
    except ProgramError as e:
        problems.append(f"program fails: {e}")
    return problems


def verify_pair(table: Table, pair: QAPair) -> bool:
    """True when `pair`'s answer recomputes from `table` and its context supports it."""
    return not check_pair(table, pair)


# --------------------------------------------------------------------------------------------
# The human-readable pandas expression
# --------------------------------------------------------------------------------------------


def _mask_expr(where: list[dict]) -> str:
    return " & ".join(f"(df[{c['column']!r}] {c['op']} {c['value']!r})" for c in where)


def _select_expr(table: Table, entity: str, row: int, col: str | list[str] | None) -> str:
    ent = table.entity_column
    if ent is None:
        return f"df.loc[{row}, {col!r}]" if col is not None else f"df.loc[{row}]"
    if col is None:
        return f"df.loc[df[{ent!r}] == {entity!r}].iloc[0]"
    if isinstance(col, list):
        return f"df.loc[df[{ent!r}] == {entity!r}, {col!r}].iloc[0]"
    return f"df.loc[df[{ent!r}] == {entity!r}, {col!r}].item()"


def pandas_expr(table: Table, program: dict) -> str:
    """The program as one pandas expression over ``df`` (``pd`` is pandas), for human readers.

    Evaluating it gives the raw answer: a value (lookup, aggregate), an entity name (compare,
    superlative; a row label without an entity column), a bool (claim) or the rows/statistics
    a summary is built from.
    """
    op = program["op"]
    ent = table.entity_column
    if op == "lookup":
        return _select_expr(table, program["entity"], program["row_id"], program["column"])
    if op == "claim":
        raw = program.get("raw")
        if isinstance(raw, str) and pd.api.types.is_datetime64_any_dtype(
            table.df[program["column"]].dtype
        ):
            raw_s = f"pd.Timestamp({raw!r})"
        else:
            raw_s = repr(raw)
        lookup = _select_expr(table, program["entity"], program["row_id"], program["column"])
        return f"{lookup} {program.get('cmp', '==')} {raw_s}"
    if op == "compare":
        fn = "idxmax" if program["direction"] == "max" else "idxmin"
        col = program["column"]
        if ent is None:
            return f"df.loc[{program['row_ids']!r}, {col!r}].{fn}()"
        return f"df.set_index({ent!r}).loc[{program['entities']!r}, {col!r}].{fn}()"
    if op == "summary_row":
        return _select_expr(table, program["entity"], program["row_id"], program["columns"])
    mask = _mask_expr(program["where"]) if program["where"] else "slice(None)"
    if op == "list":
        return f"df.loc[{mask}, {ent!r}].tolist()" if ent else f"df.loc[{mask}].index.tolist()"
    if op == "top":
        fn = "nlargest" if program["direction"] == "max" else "nsmallest"
        top = f"df.loc[{mask}].{fn}({program['k']}, {program['column']!r}, keep='all')"
        return f"{top}[[{ent!r}, {program['column']!r}]]" if ent else top
    if op == "distinct":
        return f"df.loc[{mask}, {program['column']!r}].nunique()"
    if op == "group":
        if program["agg"] == "count":
            return f"df.loc[{mask}].groupby({program['by']!r}).size()"
        by, col, agg = program["by"], program["column"], program["agg"]
        return f"df.loc[{mask}].groupby({by!r})[{col!r}].{agg}()"
    if op == "superlative":
        fn = "idxmax" if program["direction"] == "max" else "idxmin"
        inner = f"df.loc[{mask}, {program['column']!r}].{fn}()"
        return f"df.loc[{inner}, {ent!r}]" if ent else inner
    if op == "aggregate":
        if program["agg"] == "count":
            return f"int(({mask}).sum())"
        return f"df.loc[{mask}, {program['column']!r}].{program['agg']}()"
    if op == "summary_group":
        listed = ent and program["evidence"] == "rows"
        names = f"df.loc[{mask}, {ent!r}].tolist(), " if listed else ""
        return f"({names}df.loc[{mask}, {program['columns']!r}].agg(['min', 'max', 'mean']))"
    raise ProgramError(f"unknown op {op!r}")
