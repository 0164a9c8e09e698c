"""Programs as read-only SQL give what run_program computes, on every kind of dataset program."""

from __future__ import annotations

import sqlite3

import pytest

from data_loaders.config import PrepareConfig
from data_loaders.config_loader import load_config
from data_loaders.dataset import build_dataset
from data_loaders.loaders import load_tables
from data_loaders.program_sql import run_sql, to_sql
from data_loaders.programs import ProgramError, format_value, run_program
from tests.graphs.conftest import CARS, CARS_CONFIG


@pytest.fixture(scope="module")
def cars_pairs():
    cfg = load_config(PrepareConfig, CARS_CONFIG)
    t = load_tables([CARS], cfg.table)[0]
    return t, build_dataset([t], cfg).all_pairs()


def _from_rows(t, prog, rows):
    op, d = prog["op"], prog.get("decimals", 2)
    unit = t.units.get(prog.get("column")) if prog.get("column") else None
    if op == "lookup":
        return format_value(rows[0][0], unit, d)
    if op == "claim":
        return None  # compared in Python from the looked-up cell
    if op in ("compare", "superlative"):
        return rows[0][0]
    if op == "aggregate":
        return str(rows[0][0]) if prog["agg"] == "count" else format_value(rows[0][0], unit, d)
    if op == "list":
        return [r[0] for r in rows]
    if op == "top":
        return [r[0] for r in rows]
    if op == "distinct":
        return rows[0][0]
    if op == "group":
        return {format_value(k): v for k, v in rows}
    raise AssertionError(op)


def test_sql_matches_run_program(cars_pairs):
    t, pairs = cars_pairs
    seen = set()
    for pair in pairs:
        prog = pair.provenance.program
        if prog["op"].startswith("summary"):
            with pytest.raises(ProgramError):
                to_sql(prog, t)
            continue
        got = _from_rows(t, prog, run_sql(prog, t))
        answer = run_program(t, prog)
        if prog["op"] in ("list", "top"):
            assert all(n in answer for n in got), (pair.question, got)
        elif prog["op"] == "distinct":
            assert answer.split(" ")[0] == str(got)
        elif prog["op"] == "group":
            assert len(got) == answer.count(": ")
        elif got is not None:
            assert got == answer, (pair.question, got, answer)
        seen.add(prog["op"])
    assert seen >= {"lookup", "compare", "superlative", "aggregate", "list", "top", "distinct",
                    "group"}


def test_values_are_parameters_and_the_connection_is_read_only(cars_pairs):
    t, _ = cars_pairs
    evil = "x'; DROP TABLE t; --"
    prog = {"op": "lookup", "entity": evil, "column": "Horsepower", "row_id": None}
    sql, params = to_sql(prog, t)
    assert evil not in sql and params == {"p0": evil}
    assert run_sql(prog, t) == []
    conn = sqlite3.connect(":memory:")
    conn.execute("create table t (a)")
    conn.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("insert into t values (1)")
