"""Retrieval over the user's tables: find the rows a question is about and serialize them.

For each query, `Retriever.retrieve` finds the supporting rows (named entities first: the
longest case-insensitive match wins; then BM25 over the rows' cell values with `bm25s`), works
out filters and aggregates the question asks for ("how many <rows> with <column> <value>",
"which <row> with <column> <value> has the highest <column>") and computes them with pandas as
``[fact]`` lines, so the student reads rather than calculates. The context is written with
`Table.row_text` and `serialize_fact`, exactly the serialization used in training, and capped
in rows and characters.

`parse_query` is shared with `graphs.validation`, which re-reads claims and answers with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from data_loaders.mentions import NUMBER, Match, NameIndex, mention_score, normalize
from data_loaders.serialize import format_value, serialize_fact
from data_loaders.table import Table
from graphs.config import RetrievalConfig

AGG_WORDS = {
    "count": ("how many", "count the", "number of"),
    "mean": ("average", "mean"),
    "sum": ("total", "add up", "sum of"),
}
MAX_WORDS = (
    "highest",
    "largest",
    "biggest",
    "greatest",
    "most",
    "maximum",
    "max",
    "heaviest",
    "fastest",
    "longest",
    "top",
)
MIN_WORDS = (
    "lowest",
    "smallest",
    "least",
    "fewest",
    "minimum",
    "min",
    "lightest",
    "slowest",
    "shortest",
)
OP_WORDS = {
    ">": ("above", "over", "more than", "greater than", "higher than"),
    "<": ("below", "under", "less than", "fewer than", "lower than"),
    ">=": ("at least",),
    "<=": ("at most",),
}


@dataclass
class Filter:
    """One condition of a question: column op value (op in ==, >, <, >=, <=)."""

    column: str
    op: str
    value: Any


@dataclass
class QueryParse:
    """What a query names in one table."""

    table: Table
    tokens: list[str]
    entities: list[Match] = field(default_factory=list)  # in query order, longest first won
    values: list[Match] = field(default_factory=list)
    columns: list[Match] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    numbers: list[float] = field(default_factory=list)  # numbers outside entity names
    agg: str | None = None  # count / mean / sum
    extreme: str | None = None  # "max" / "min"

    @property
    def row_ids(self) -> list[int]:
        """Rows of the entities named, in query order."""
        return [int(m.value) for m in self.entities]

    @property
    def column_names(self) -> list[str]:
        """Columns named, in query order, without repeats."""
        return list(dict.fromkeys(m.column for m in self.columns if m.column))

    @property
    def score(self) -> float:
        """How strongly the query points at this table (entities weigh most)."""
        return mention_score([*self.entities, *self.values, *self.columns])


def parse_query(query: str, index: NameIndex) -> QueryParse:
    """Read what a query names in one table: entities, values, columns, filters, aggregates."""
    tokens = normalize(query).split()
    p = QueryParse(index.table, tokens)
    matches = index.find(tokens, query)
    p.entities = [m for m in matches if m.kind == "entity"]
    p.values = [m for m in matches if m.kind == "value"]
    p.columns = [m for m in matches if m.kind == "column"]
    in_entity = {i for m in p.entities for i in range(m.start, m.end)}
    p.numbers = [float(t) for i, t in enumerate(tokens) if i not in in_entity and NUMBER.match(t)]
    text = " ".join(tokens)
    for agg, words in AGG_WORDS.items():
        if any(re.search(rf"\b{w}\b", text) for w in words):
            p.agg = agg
            break
    if any(re.search(rf"\b{w}\b", text) for w in MAX_WORDS):
        p.extreme = "max"
    elif any(re.search(rf"\b{w}\b", text) for w in MIN_WORDS):
        p.extreme = "min"
    if p.agg in ("sum", "mean") and p.extreme == "max" and "most" in tokens and "total" in tokens:
        p.extreme = None
    found = [(m.start, Filter(m.column, "==", m.value)) for m in p.values if m.column]
    found += _column_filters(tokens, p.columns, index)
    seen: set[tuple] = set()
    for _, f in sorted(found, key=lambda x: x[0]):  # query order, as facts state them
        key = (f.column, f.op, normalize(f.value))
        if key not in seen:
            seen.add(key)
            p.filters.append(f)
    return p


def _column_filters(
    tokens: list[str], columns: list[Match], index: NameIndex
) -> list[tuple[int, Filter]]:
    """``<column words> [is] [above|below|at least|...] <value>`` → (position, filter)."""
    out = []
    table = index.table
    numeric = set(table.columns_of("numeric")) | set(table.columns_of("date"))
    for m in columns:
        i = m.end
        if i < len(tokens) and tokens[i] == "is":
            i += 1
        cats = index.categories.get(m.column)
        if cats is not None:
            if i < len(tokens) and tokens[i] in cats:
                out.append((m.start, Filter(m.column, "==", cats[tokens[i]])))
            continue
        if m.column not in numeric:
            continue
        op = "=="
        for o, words in OP_WORDS.items():
            for w in words:
                ws = w.split()
                if tokens[i : i + len(ws)] == ws:
                    op, i = o, i + len(ws)
                    break
            if op != "==":
                break
        if i < len(tokens) and NUMBER.match(tokens[i]):
            out.append((m.start, Filter(m.column, op, float(tokens[i]))))
    return out


@dataclass
class Retrieval:
    """The context built for one query."""

    table: Table | None
    row_ids: list[int]
    facts: list[str]  # "[fact] ..." lines
    context: str
    parse: QueryParse | None
    how: str  # "entity", "group", "bm25" or "none"
    support: list[str] = field(default_factory=list)  # facts backing the check (shown or not)

    @property
    def found(self) -> bool:
        """Whether anything from the tables was retrieved."""
        return bool(self.row_ids or self.facts)

    def row_lines(self) -> list[str]:
        """The ``[row N]`` lines of the context."""
        return [ln for ln in self.context.splitlines() if ln.startswith("[row ")]


def apply_filters(df: pd.DataFrame, filters: Sequence[Filter]) -> pd.Series:
    """Boolean mask of the rows meeting every filter."""
    mask = pd.Series(True, index=df.index)
    for f in filters:
        col = df[f.column]
        if f.op == "==":
            if isinstance(f.value, float) and pd.api.types.is_numeric_dtype(col):
                mask &= np.isclose(col.astype(float), f.value)
            elif pd.api.types.is_datetime64_any_dtype(col) and isinstance(f.value, float):
                mask &= col.dt.year == int(f.value)
            else:
                mask &= col.astype(str).str.lower() == str(f.value).lower()
        else:
            if pd.api.types.is_datetime64_any_dtype(col):
                col = col.dt.year
            vals = pd.to_numeric(col, errors="coerce")
            mask &= {
                ">": vals > f.value,
                "<": vals < f.value,
                ">=": vals >= f.value,
                "<=": vals <= f.value,
            }[f.op].fillna(False)
    return mask


def where_conditions(filters: Sequence[Filter]) -> list[dict]:
    """Parsed filters as a program's ``where`` list (`data_loaders.programs`)."""
    return [{"column": f.column, "op": f.op, "value": f.value} for f in filters]


def target_columns(p: QueryParse, summary: bool = False) -> list[str]:
    """Numeric columns a question asks about (at most 2).

    Filter columns count only when nothing else is named. A group summary that names no column
    describes the first two numeric columns outside its filter (training picks two at random).
    """
    numeric = [c for c in p.column_names if c in p.table.columns_of("numeric")]
    filter_cols = {f.column for f in p.filters}
    named = [c for c in numeric if c not in filter_cols]
    if summary and not named:
        named = [c for c in p.table.columns_of("numeric") if c not in filter_cols]
    return (named or numeric)[:2]


def compute_facts(
    p: QueryParse, decimals: int = 2, summary: bool = False
) -> tuple[list[str], list[int]]:
    """The aggregate facts a question asks for, and the row an extreme names.

    With a filter the lines come from `data_loaders.programs.facts_for`, so they read exactly
    as in the training contexts; without one (``"what is the average <column>?"``) the same
    statistics are stated over all rows.

    Returns:
        (``[fact]`` lines, row ids to show first: the highest/lowest row when asked for).
    """
    from data_loaders.programs import ProgramError, facts_for, superlative_row

    t = p.table
    cols = target_columns(p, summary)
    where = where_conditions(p.filters)
    rows: list[int] = []
    if where:
        try:
            facts = facts_for(t, {"where": where, "columns": cols}, decimals)
        except ProgramError:
            return [], []
        if p.extreme and cols:
            try:
                rows.append(superlative_row(t, where, cols[0], p.extreme, decimals))
            except ProgramError:
                pass
        return facts, rows
    if not (p.agg or p.extreme):
        return [], []
    facts = [serialize_fact(f"rows: {len(t.df)}")]
    for col in cols:
        x = pd.to_numeric(t.df[col], errors="coerce")
        if x.notna().sum() == 0:
            continue
        name, unit = t.display_name(col), t.units.get(col)
        facts.append(
            serialize_fact(
                f"mean {name}: {format_value(float(x.mean()), unit, decimals)} "
                f"(over {int(x.notna().sum())} rows)"
            )
        )
        for agg, label in (("min", "min"), ("max", "max"), ("sum", "sum of")):
            facts.append(
                serialize_fact(
                    f"{label} {name}: {format_value(float(getattr(x, agg)()), unit, decimals)}"
                )
            )
        if p.extreme and col == cols[0]:
            rows.append(int(x.idxmax() if p.extreme == "max" else x.idxmin()))
    return facts, rows


class Retriever:
    """Context builder over one or more loaded tables (built once, shared by all threads)."""

    def __init__(self, tables: Sequence[Table], config: RetrievalConfig | None = None):
        if not tables:
            raise ValueError("the retriever needs at least one table")
        self.tables = list(tables)
        self.config = config or RetrievalConfig()
        self.indexes = [NameIndex(t) for t in self.tables]
        self._bm25 = [self._build_bm25(t) for t in self.tables]

    @staticmethod
    def _build_bm25(table: Table) -> Any:
        import bm25s

        # Cell values only: column names are in every row and would only add noise.
        docs = [
            " ".join(str(v) for v in row if pd.notna(v)) for row in table.df.itertuples(index=False)
        ]
        tokens = bm25s.tokenize(docs, stopwords="en", return_ids=False, show_progress=False)
        model = bm25s.BM25()
        model.index(tokens, show_progress=False)
        return model

    def _bm25_rows(self, ti: int, query: str, k: int, min_score: float) -> list[int]:
        import bm25s

        q = bm25s.tokenize(query, stopwords="en", return_ids=False, show_progress=False)[0]
        if not q:
            return []
        scores = self._bm25[ti].get_scores(q)  # (n_rows,)
        order = np.argsort(-scores, kind="stable")[:k]
        return [int(i) for i in order if scores[i] > min_score]

    def index_of(self, table: Table) -> NameIndex:
        """The name index of one of the retriever's tables (by identity)."""
        return next(ix for ix in self.indexes if ix.table is table)

    def parse(self, query: str) -> list[QueryParse]:
        """The query read against every table."""
        return [parse_query(query, ix) for ix in self.indexes]

    def retrieve(
        self,
        query: str,
        *,
        wide: bool = False,
        summary: bool = False,
        config: RetrievalConfig | None = None,
    ) -> Retrieval:
        """Build the context for one query.

        Args:
            query: The user's question (already resolved against the previous turn).
            wide: The retry after a failed check: ``wider_rows`` rows instead of ``max_rows``,
                BM25 neighbours added.
            summary: A summary request: a group's facts cover two numeric columns even when
                the query names none.
            config: This call's caps (a graph call's ``configurable``); the retriever's own
                by default.
        """
        cfg = config or self.config
        cap = cfg.wider_rows if wide else cfg.max_rows
        parses = self.parse(query)
        best = max(range(len(parses)), key=lambda i: parses[i].score)
        if parses[best].score == 0:  # nothing named: rank by BM25 across tables
            hits = [
                (self._bm25_rows(i, query, cap, cfg.bm25_min_score), i)
                for i in range(len(self.tables))
            ]
            hits = [(r, i) for r, i in hits if r]
            if not hits:
                return Retrieval(None, [], [], "", parses[best], "none")
            rows, best = hits[0]
            return self._assemble(parses[best], rows[:cap], [], "bm25", cfg.max_chars)
        p = parses[best]
        table = p.table
        facts: list[str] = []
        hidden: list[str] = []
        if p.entities:
            rows, how = p.row_ids, "entity"
            if p.agg or p.extreme:  # "is X the lightest <row>?"
                facts, extra = compute_facts(p)
                rows += [r for r in extra if r not in rows]
        else:
            facts, rows = compute_facts(p, summary=summary)
            how = "group"
            if p.filters:
                group = np.flatnonzero(apply_filters(table.df, p.filters).to_numpy())
                if 0 < len(group) <= cap:
                    # As in training: a group that fits is shown whole and without facts (they
                    # would give the answer away); the facts still back the answer check.
                    hidden, facts, rows = facts, [], [int(i) for i in group]
                else:
                    rows += self._group_sample(p, group, max(1, cap // 2), rows)
        if wide or (how == "group" and not rows and not facts):
            bm25 = self._bm25_rows(best, query, cap, cfg.bm25_min_score)
            rows += [r for r in bm25 if r not in rows]
        out = self._assemble(p, rows[:cap], facts, how, cfg.max_chars)
        out.support = hidden + out.facts
        return out

    @staticmethod
    def _group_sample(p: QueryParse, group: np.ndarray, n: int, first: list[int]) -> list[int]:
        """Rows beside a big group's facts: its top rows by the asked column, else its first."""
        cols = target_columns(p)
        if p.extreme and cols:
            x = pd.to_numeric(p.table.df[cols[0]].iloc[group], errors="coerce").to_numpy()
            x = np.where(np.isnan(x), -np.inf if p.extreme == "max" else np.inf, x)
            order = np.argsort(-x if p.extreme == "max" else x, kind="stable")
            picked = [int(group[i]) for i in order[:n]]
        else:
            picked = [int(i) for i in group[:n]]
        return [r for r in picked if r not in first]

    @staticmethod
    def _assemble(
        p: QueryParse, rows: list[int], facts: list[str], how: str, max_chars: int
    ) -> Retrieval:
        """Rows (in priority order until `max_chars`, then sorted by id), then facts."""
        table = p.table
        budget = max_chars
        shown_facts: list[str] = []
        for f in facts:  # facts first claim the budget: they carry the aggregates
            if sum(len(x) + 1 for x in shown_facts) + len(f) + 1 > budget // 2:
                break
            shown_facts.append(f)
        budget -= sum(len(x) + 1 for x in shown_facts)
        kept: list[int] = []
        total = 0
        for rid in rows:
            n = len(table.row_text(rid)) + 1
            if total + n > budget and kept:
                break
            kept.append(rid)
            total += n
        kept.sort()  # rows in row-id order, as in training (never by value)
        lines = [table.row_text(r) for r in kept] + shown_facts
        return Retrieval(table, kept, shown_facts, "\n".join(lines), p, how)

    def examples(self, n: int = 3) -> list[str]:
        """A few entity names, for a 'not found' reply."""
        t = self.tables[0]
        return [t.entity_of(i) for i in range(min(n, len(t.df)))]
