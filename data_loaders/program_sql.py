"""Programs as read-only SQL: the same computation for a table that lives in a database.

`to_sql` renders a bound program (`data_loaders.program_text.bind`, `data_loaders.programs`)
as one ``SELECT`` with bound parameters (values never enter the SQL text, so a name or number
from a request cannot inject anything), quoting every column. `run_sql` runs it on an
in-memory SQLite copy of a `Table`; the tests check it against `run_program` on every dataset
program, so a graph over a user's Postgres or DuckDB table can push the program down to the
database instead of loading the table. The student still writes the one-line language: it is
a third of the tokens of the same program in SQL (9.8 against 27.5 on the cars test split,
`benchmarks/bench_program_format.py`), and a shorter target is cheaper to learn and decode.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from data_loaders.programs import ProgramError
from data_loaders.table import Table

_AGG_SQL = {"count": "COUNT", "mean": "AVG", "sum": "SUM", "min": "MIN", "max": "MAX"}


def _q(col: str) -> str:
    return '"' + str(col).replace('"', '""') + '"'


class _Params:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value.item() if hasattr(value, "item") else value
        return f":{name}"


def _where(where: list[dict], p: _Params, extra: list[str] | None = None) -> str:
    conds = [f"{_q(c['column'])} {'=' if c['op'] == '==' else c['op']} {p.add(c['value'])}"
             for c in where]
    conds += extra or []
    return (" WHERE " + " AND ".join(conds)) if conds else ""


def to_sql(program: dict, table: Table, name: str = "t") -> tuple[str, dict[str, Any]]:
    """One read-only ``SELECT`` (and its parameters) computing `program`'s raw result.

    Raises:
        ProgramError: an op with no SQL form here (summaries are built from several queries).
    """
    op = program["op"]
    p = _Params()
    t = _q(name)
    ent = table.entity_column
    e = _q(ent) if ent else "rowid"
    col = _q(program["column"]) if program.get("column") else None
    desc = "DESC" if program.get("direction") == "max" else "ASC"
    if op in ("lookup", "claim"):
        return f"SELECT {col} FROM {t} WHERE {e} = {p.add(program['entity'])}", p.values
    if op == "compare":
        a, b = (p.add(x) for x in program["entities"])
        return (f"SELECT {e} FROM {t} WHERE {e} IN ({a}, {b}) AND {col} IS NOT NULL "
                f"ORDER BY {col} {desc} LIMIT 1", p.values)
    where = program.get("where") or []
    if op == "superlative":
        w = _where(where, p, [f"{col} IS NOT NULL"])
        return f"SELECT {e} FROM {t}{w} ORDER BY {col} {desc} LIMIT 1", p.values
    if op == "aggregate":
        what = "COUNT(*)" if program["agg"] == "count" else f"{_AGG_SQL[program['agg']]}({col})"
        return f"SELECT {what} FROM {t}{_where(where, p)}", p.values
    if op == "list":
        return f"SELECT {e} FROM {t}{_where(where, p)} ORDER BY rowid", p.values
    if op == "top":
        w = _where(where, p, [f"{col} IS NOT NULL"])
        return f"SELECT {e}, {col} FROM {t}{w} ORDER BY {col} {desc} LIMIT {int(program['k'])}", \
            p.values
    if op == "distinct":
        return f"SELECT COUNT(DISTINCT {col}) FROM {t}{_where(where, p)}", p.values
    if op == "group":
        by = _q(program["by"])
        what = "COUNT(*)" if program["agg"] == "count" else f"{_AGG_SQL[program['agg']]}({col})"
        w = _where(where, p)
        return f"SELECT {by}, {what} FROM {t}{w} GROUP BY {by}", p.values
    raise ProgramError(f"op {op!r} has no single-query SQL form")


def run_sql(program: dict, table: Table) -> list[tuple]:
    """Rows `to_sql` returns on an in-memory SQLite copy of `table` (opened read-only)."""
    sql, params = to_sql(program, table)
    conn = sqlite3.connect(":memory:")
    try:
        table.df.to_sql("t", conn, index=False)
        conn.execute("PRAGMA query_only = ON")  # nothing but reads from here on
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
