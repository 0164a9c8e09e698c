"""The natural-phrasing test set: hand-written requests over five tables, answers from pandas.

The requests are written by hand in ``natural_requests.yaml`` (next to this file), typed the way
a person types them (lower case, synonyms, typos, loose yes/no claims, follow-ups in one thread),
each with what computes its expected answer: a builder here (`lookup`, `compare`, ...) turns it
into one pandas expression over the raw CSV (``pd.read_csv``, nothing from this project).
Running the module evaluates every expression and writes ``natural_requests.jsonl``; the graph
benchmark (``benchmarks/bench_graph.py``) reads that file and
``tests/benchmarks/test_bench_graph.py`` checks that every stored answer recomputes.

    python benchmarks/data/make_natural.py          # rewrites natural_requests.jsonl

Record fields: ``id``, ``table`` (path from the repo root), ``table_config`` (YAML or null),
``request``, ``thread`` (a thread id shared by the turns of a follow-up, else null), ``route``
(qa / summarize / validate), ``kind``, ``expected`` (a string; "yes"/"no" for claims, "(no
value)" when the table has no value; a list for summaries: what the summary must state),
``also_correct`` (other true values a reply may state without being wrong: the other cells of
the row asked about, the size of the group, the compared values), ``pandas`` (the expression,
evaluated with ``d`` = the table), ``about`` (the rows it is about) and ``notes``.

THIS IS A TEST SET. Never train, distil or tune anything on it (no prompts, templates, rules
or thresholds chosen by looking at these requests or the graph's score on them): it measures
what a user gets on phrasings the pipeline never saw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).resolve().parent / "natural_requests.yaml"
OUT = Path(__file__).resolve().parent / "natural_requests.jsonl"
NO_VALUE = "(no value)"

# name -> (CSV path, table YAML, column naming a row)
TABLES: dict[str, tuple[str, str | None, str]] = {
    "cars": ("examples/data/cars.csv", "configs/prepare_cars.yaml", "Name"),
    "airports": ("tests/data/airports.csv", None, "name"),
    "penguins": ("tests/data/penguins.csv", None, "species"),
    "starwars": ("tests/data/starwars.csv", None, "name"),
    "midwest": ("tests/data/midwest.csv", None, "county"),
}


@cache
def load(table: str) -> pd.DataFrame:
    """The raw table as pandas reads it (the ground truth, independent of the project's loaders)."""
    return pd.read_csv(ROOT / TABLES[table][0])


def top(s: pd.Series) -> Any:
    """Index label of the unique largest value (raises on a tie: the set has no tied answers)."""
    s = s.dropna()
    if (s == s.max()).sum() != 1:
        raise ValueError(f"tie for the largest {s.name}: {list(s[s == s.max()].index)}")
    return s.idxmax()


def bottom(s: pd.Series) -> Any:
    """Index label of the unique smallest value (raises on a tie)."""
    return top(-s)


def one(s: pd.Series) -> Any:
    """The single value of a one-row selection; NaN stays NaN (an empty cell)."""
    if len(s) != 1:
        raise ValueError(f"expected one row, got {len(s)}")
    return s.iloc[0]


NAMESPACE = {"pd": pd, "top": top, "bottom": bottom, "one": one}


def evaluate(table: str, expr: str) -> Any:
    """Evaluate one request's pandas expression with ``d`` bound to the table."""
    return eval(expr, {**NAMESPACE, "d": load(table)})  # noqa: S307 - our own literals


def fmt(value: Any) -> str:
    """Expected-answer string: integers without '.0', floats to 4 decimals, NaN as no value."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    if isinstance(value, int | float) or hasattr(value, "dtype"):
        x = float(value)
        if x.is_integer():
            return str(int(x))
        return f"{x:.4f}".rstrip("0").rstrip(".")
    return str(value)


def cells(frame: pd.DataFrame, skip: tuple[str, ...] = ()) -> list[str]:
    """Every non-empty cell of ``frame`` (minus the ``skip`` columns) as expected-answer strings."""
    out = []
    for col in frame.columns:
        if col in skip:
            continue
        out += [fmt(v) for v in frame[col] if not pd.isna(v)]
    return out


def stats(frame: pd.DataFrame) -> list[str]:
    """True figures about a group: its size and count/mean/median/min/max/sum of each number."""
    out = [fmt(len(frame))]
    for col in frame.select_dtypes("number").columns:
        s = frame[col].dropna()
        if len(s):
            out += [fmt(s.count()), fmt(s.mean()), fmt(s.median()), fmt(s.min()),
                    fmt(s.max()), fmt(s.sum())]
    return out


@dataclass(frozen=True)
class Request:
    """One hand-written request and the pandas that answers it."""

    id: str
    table: str
    request: str
    route: str  # qa | summarize | validate
    kind: str
    expr: str | list[str]  # a pandas expression, or one per item a summary must state
    # the rows whose other cells a reply may also state (a query over d), or None
    about: str | None = None
    notes: str = ""
    thread: str | None = None
    also: Callable[[pd.DataFrame], list[str]] | None = field(default=None, compare=False)

    def expected(self) -> str | list[str]:
        """The expected answer, recomputed from the table."""
        if isinstance(self.expr, list):
            return [fmt(evaluate(self.table, e)) for e in self.expr]
        return fmt(evaluate(self.table, self.expr))

    def also_correct(self) -> list[str]:
        """Other true values a reply may state without being wrong (sorted, unique)."""
        d = load(self.table)
        out: list[str] = []
        if self.about is not None:
            rows = d.query(self.about)
            out += cells(rows) + stats(rows)
        if self.also is not None:
            out += [fmt(v) for v in self.also(d)]
        exp = self.expected()
        return sorted(set(out) - set(exp if isinstance(exp, list) else [exp]))

    def record(self) -> dict[str, Any]:
        """The JSONL record."""
        path, config, _ = TABLES[self.table]
        exprs = self.expr if isinstance(self.expr, list) else [self.expr]
        return {
            "id": self.id,
            "table": path,
            "table_config": config,
            "request": self.request,
            "thread": self.thread,
            "route": self.route,
            "kind": self.kind,
            "expected": self.expected(),
            "also_correct": self.also_correct(),
            "pandas": exprs if isinstance(self.expr, list) else exprs[0],
            "about": self.about,
            "notes": self.notes,
        }


def q(s: str) -> str:
    """A Python string literal for an expression (handles names with quotes)."""
    return repr(s)


# -- builders: each writes the pandas for one kind of request ------------------------------------


def lookup(id: str, table: str, request: str, where: str, col: str, **kw: Any) -> Request:
    """One cell: ``col`` of the single row matching the query ``where``."""
    return Request(id, table, request, kw.pop("route", "qa"), kw.pop("kind", "lookup"),
                   f"one(d.query({q(where)})[{q(col)}])", about=where, **kw)


def compare(id: str, table: str, request: str, a: str, b: str, col: str, *, more: bool = True,
            key: str | None = None, **kw: Any) -> Request:
    """Which of two rows (named a, b in the key column) has more (or less) ``col``."""
    key = key or TABLES[table][2]
    pick = "top" if more else "bottom"
    expr = f"{pick}(d[d[{q(key)}].isin([{q(a)}, {q(b)}])].set_index({q(key)})[{q(col)}])"
    where = f"`{key}` in [{q(a)}, {q(b)}]"
    return Request(id, table, request, "qa", "compare", expr, about=where, **kw)


def superlative(id: str, table: str, request: str, col: str, *, most: bool = True,
                where: str | None = None, answer: str | None = None, **kw: Any) -> Request:
    """The row label (``answer`` column) with the unique largest/smallest ``col`` in a group."""
    answer = answer or TABLES[table][2]
    pick = "top" if most else "bottom"
    frame = f"d.query({q(where)})" if where else "d"
    expr = f"{pick}({frame}.set_index({q(answer)})[{q(col)}])"

    def winner(d: pd.DataFrame) -> list[Any]:
        f = d.query(where) if where else d
        s = f[col].dropna()
        best = s.max() if most else s.min()
        return cells(f[f[col] == best]) + [len(f)]

    return Request(id, table, request, "qa", "superlative", expr, also=winner, **kw)


def aggregate(id: str, table: str, request: str, expr: str, *, where: str | None = None,
              **kw: Any) -> Request:
    """A figure over a group (``where``): a count, mean, total, extreme value.

    Besides the figure a reply may state only the group's size: a competing mean or a member's
    value would be a wrong answer, however close.
    """
    also = (lambda d: [len(d.query(where))]) if where else (lambda d: [len(d)])
    return Request(id, table, request, "qa", kw.pop("kind", "aggregate"), expr, also=also, **kw)


def claim(id: str, table: str, request: str, expr: str, *, about: str | None = None,
          **kw: Any) -> Request:
    """A yes/no claim: ``expr`` evaluates to a bool."""
    return Request(id, table, request, "validate", "claim", f"bool({expr})", about=about, **kw)


def row_summary(id: str, table: str, request: str, where: str, cols: list[str],
                **kw: Any) -> Request:
    """A summary of one row: it must state ``cols`` of that row and may state its other cells."""
    exprs = [f"one(d.query({q(where)})[{q(c)}])" for c in cols]
    return Request(id, table, request, "summarize", "summary", exprs, about=where, **kw)


def group_summary(id: str, table: str, request: str, where: str, cols: list[str],
                  **kw: Any) -> Request:
    """A summary of a group: it must state its size and the mean of ``cols``.

    It may also state any count/mean/median/min/max/total of the group's numbers and the cells
    of the rows holding a minimum or maximum.
    """
    frame = f"d.query({q(where)})"
    exprs = [f"len({frame})"] + [f"{frame}[{q(c)}].mean()" for c in cols]

    def extremes(d: pd.DataFrame) -> list[Any]:
        f = d.query(where)
        out = stats(f)
        for c in f.select_dtypes("number").columns:
            for best in (f[c].max(), f[c].min()):
                out += cells(f[f[c] == best])
        return out

    return Request(id, table, request, "summarize", "summary", exprs, also=extremes, **kw)


# -- the requests -------------------------------------------------------------------------------

BUILDERS: dict[str, Callable[..., Request]] = {
    f.__name__: f
    for f in (lookup, compare, superlative, aggregate, claim, row_summary, group_summary)
}


def read_requests(path: Path = SOURCE) -> list[Request]:
    """The hand-written requests of ``natural_requests.yaml`` as `Request`s (none evaluated).

    Each entry names its text under the builder that computes its answer (``lookup: <text>``)
    and gives that builder's arguments; an unknown table, builder or argument is an error
    naming the entry.
    """
    out = []
    for table, entries in yaml.safe_load(path.read_text(encoding="utf-8")).items():
        if table not in TABLES:
            raise ValueError(f"{path.name}: unknown table {table!r}; known: {sorted(TABLES)}")
        for entry in entries:
            rest = dict(entry)
            rid = rest.pop("id")
            kinds = [k for k in rest if k in BUILDERS]
            if len(kinds) != 1:
                raise ValueError(f"{rid}: name its text under one of {sorted(BUILDERS)}")
            text = rest.pop(kinds[0])
            try:
                out.append(BUILDERS[kinds[0]](rid, table, text, **rest))
            except TypeError as exc:
                raise ValueError(f"{rid}: {exc}") from None
    return out


REQUESTS: list[Request] = read_requests()


def records() -> list[dict[str, Any]]:
    """Every request as its JSONL record, answers computed now."""
    ids = [r.id for r in REQUESTS]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate request ids")
    return [r.record() for r in REQUESTS]


def main() -> None:
    """Write natural_requests.jsonl (atomically) and print the set's composition."""
    recs = records()
    tmp = OUT.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in recs:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(OUT)
    by = {k: pd.Series([r[k] for r in recs]).value_counts().to_dict()
          for k in ("table", "route", "kind")}
    print(f"wrote {len(recs)} requests to {OUT.relative_to(ROOT)}")
    print(json.dumps(by, indent=1))


if __name__ == "__main__":
    main()
