"""QA-pair generation from one `Table`: sampling, slot filling, contexts and answers.

`PairGenerator` builds pairs of the seven question types (`schema.QUESTION_TYPES`) for one
split at a time, drawing every entity it shows from that split's pool of rows, so a pair's
entities (question and context) always sit in one split. Answers come from `run_program`, so an
answer and its program cannot disagree.

Context rule: the answer must always be derivable from the context by reading or simple
arithmetic, and the context shows no more than that.

* lookup, claim, summary_row: the entity's row. compare: the two rows.
* superlative, aggregate, summary_group over a filter (1–2 ``column == value`` conditions, or one
  numeric threshold): when the whole group fits (at most ``max_context_rows`` rows) and all its
  rows are in the split, the context is exactly the group's rows and no ``[fact]`` line (it
  would give the answer away); the answer is read or computed from those rows
  (``program.evidence = "rows"``). Otherwise the rows cannot all be shown, so the context gets the
  filter's fact lines from `programs.facts_for` (row count; mean/min/max/sum of the asked
  column) plus up to ``max_context_rows // 2`` rows of the group from this split
  (``evidence = "facts"``): for a superlative these always include the winner (the pair is
  only made when the winner is in the split), so the answer is the row whose value matches the
  stated max/min. A group summary then states counts and ranges without naming entities. The
  serving graph calls the same `facts_for`.

Numeric thresholds come from a fixed grid (the column's rounded 2%–98% quantiles). Rows are
listed in row-id order (never by value, which would leak the answer), then facts. No per-row
Python work runs over a whole table: rows are sampled, groups come from cached
``groupby(...).indices``, statistics are numpy reductions over one group, cached per filter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_loaders.casual import column_variants, rewrite, same_mentions
from data_loaders.config import PrepareConfig
from data_loaders.mentions import NameIndex
from data_loaders.naming import plural
from data_loaders.program_text import mask_request, program_messages, to_text
from data_loaders.programs import (
    OPS,
    SUMMARY_OPS,
    ProgramError,
    facts_for,
    index_for,
    pandas_expr,
    rows_where,
    run_program,
    superlative_row,
    top_rows,
)
from data_loaders.prose import mask_facts, prose_messages, reference_prose, summary_facts
from data_loaders.schema import TASK_OF_TYPE, Provenance, QAPair
from data_loaders.serialize import MAX_CELL_CHARS, format_number
from data_loaders.table import Table
from data_loaders.templates import (
    Template,
    col_words,
    entity_noun,
    value_words,
    where_adj,
    where_is,
    where_with,
)

MAX_FILTER_VALUES = 1000  # categorical columns with more distinct values are not used as filters
MAX_FAILURES = 200  # consecutive failed draws after which a question type counts as exhausted
SUMMARY_GROUP_COLUMNS = 2  # numeric columns described in a group summary
TIE_RATIO = 4  # superlatives skip groups larger than this many times a column's distinct values
MAX_GROUPS = 12  # group-by and distinct: categorical columns with at most this many values
MAX_LIST = 12  # list questions pick filters matching at most this many rows
THRESHOLD_LEVELS = 49  # quantiles offered as numeric thresholds (2%, 4%, ..., 98%)


def _wants_where(tmpl: Template) -> bool:
    return "{where_with}" in tmpl.text or "{where_adj}" in tmpl.text


def entity_pool(table: Table) -> np.ndarray:
    """Rows that can be named in a question: a unique, non-empty entity name (sorted ids).

    Without an entity column every row is its own entity (``"row N"``). Rows whose name occurs
    more than once are left out: a question about them would be ambiguous.
    """
    n = len(table.df)
    if table.entity_column is None:
        return np.arange(n, dtype=np.int64)
    s = table.df[table.entity_column]
    names = pd.Series(index_for(table).entity_strings())
    ok = s.notna().to_numpy() & (names.str.len() > 0).to_numpy()
    ok &= (names.str.len() <= MAX_CELL_CHARS).to_numpy()
    ok &= ~names.duplicated(keep=False).to_numpy()
    return np.flatnonzero(ok).astype(np.int64)


_PUNCT = re.compile(r"[^\w\s]|_")


def question_key(question: str) -> str:
    """A question normalized for near-duplicate detection (lowercase, no punctuation)."""
    return " ".join(_PUNCT.sub(" ", question.lower()).split())


def program_key(table_hash: str, program: dict) -> str:
    """A canonical text of a program (without its pandas string) for duplicate detection."""
    spec = {k: v for k, v in program.items() if k != "pandas"}
    return table_hash + json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str)


def pair_id(table_hash: str, template: str, program: dict) -> str:
    """Stable pair id: hash of the table hash, the template id and the slots (the program)."""
    text = f"{template}|{program_key(table_hash, program)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class SeenKeys:
    """Questions and programs already emitted, shared across splits and tables."""

    questions: set[str] = field(default_factory=set)
    programs: set[str] = field(default_factory=set)

    def has(self, question: str, table_hash: str, program: dict) -> bool:
        """Whether a pair with this question or program was already recorded."""
        return (
            question_key(question) in self.questions
            or program_key(table_hash, program) in self.programs
        )

    def add(self, pair: QAPair) -> bool:
        """Record `pair`; False (and nothing recorded) if it duplicates an earlier one."""
        q = question_key(pair.question)
        p = program_key(pair.provenance.table_hash, pair.provenance.program)
        if q in self.questions or p in self.programs:
            return False
        self.questions.add(q)
        self.programs.add(p)
        return True


def apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split `total` into integer shares proportional to `weights` (largest remainder)."""
    keys = [k for k, w in weights.items() if w > 0]
    if not keys or total <= 0:
        return {k: 0 for k in weights}
    s = sum(weights[k] for k in keys)
    raw = {k: total * weights[k] / s for k in keys}
    out = {k: int(raw[k]) for k in keys}
    by_rest = sorted(keys, key=lambda k: (-(raw[k] - out[k]), keys.index(k)))
    for k in by_rest[: total - sum(out.values())]:
        out[k] += 1
    return {k: out.get(k, 0) for k in weights}


def _json_value(v: object) -> object:
    """A cell value as JSON keeps it (numpy scalars → Python, dates → ISO text)."""
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def _is_null(v: object) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


class PairGenerator:
    """Generates QA pairs for one table, one split at a time.

    Args:
        table: The table.
        config: Budget shares, rounding and context size (the row noun is the table's).
        split_of_row: Split code of each row (``-1``: in no split, never shown).
        seen: Duplicate filter shared with the other splits and tables.
    """

    def __init__(
        self, table: Table, config: PrepareConfig, split_of_row: np.ndarray, seen: SeenKeys
    ):
        self.table = table
        self.config = config
        self.idx = index_for(table)
        self.names = NameIndex(table)
        self.split_of_row = split_of_row
        self.seen = seen
        self.decimals = config.decimals
        self.max_ctx = config.max_context_rows
        self.noun = entity_noun(table)
        self.nouns = plural(self.noun)
        self.claims_made: dict[str, int] = {}
        self._grids: dict[str, list[int | float]] = {}
        df = table.df

        def distinct(c: str) -> int:
            return int(df[c].nunique(dropna=True))

        self.distinct = {c: distinct(c) for c in table.columns_of("numeric")}
        self.numeric_cols = [c for c in table.columns_of("numeric") if self.distinct[c] >= 2]
        self.filter_cols = [
            c for c in table.columns_of("categorical") if 2 <= distinct(c) <= MAX_FILTER_VALUES
        ]
        dates = [c for c in table.columns_of("date") if distinct(c) >= 2]
        # The parts of a name made of several columns ('state' of 'NOBLE, IN') are in the
        # name already: filters may use them, lookups and claims would only repeat it.
        named = {table.entity_column, *table.entity_parts}
        self.claim_cols = [
            c
            for c in table.columns
            if c in set(self.numeric_cols + self.filter_cols + dates) and c not in named
        ]
        self.lookup_cols = [c for c in table.columns if c not in named]
        self.group_cols = [c for c in self.filter_cols if distinct(c) <= MAX_GROUPS]
        self._makers: dict[str, Callable[..., QAPair | None]] = {
            "lookup": self._lookup,
            "compare": self._compare,
            "superlative": self._superlative,
            "aggregate": self._aggregate,
            "claim": self._claim,
            "summary_row": self._summary_row,
            "summary_group": self._summary_group,
            "list": self._list,
            "top": self._top,
            "distinct": self._distinct,
            "group": self._group,
        }

    # ----------------------------------------------------------------------------------------
    def possible(self, qtype: str, pool_size: int) -> bool:
        """Whether the table has the columns (and the split enough rows) for a question type."""
        if pool_size == 0:
            return False
        can_filter = bool(self.filter_cols) or len(self.numeric_cols) >= 1
        return {
            "lookup": bool(self.lookup_cols),
            "compare": bool(self.numeric_cols) and pool_size >= 2,
            "superlative": bool(self.numeric_cols) and can_filter,
            "aggregate": can_filter,
            "claim": bool(self.claim_cols),
            "summary_row": bool(self.lookup_cols),
            "summary_group": can_filter,
            "list": can_filter and self.table.entity_column is not None,
            "top": bool(self.numeric_cols) and self.table.entity_column is not None,
            "distinct": bool(self.group_cols),
            "group": bool(self.group_cols),
        }[qtype]

    def generate(
        self,
        split: str,
        code: int,
        pool: np.ndarray,
        budget: int,
        templates: dict[str, list[Template]],
        rng: np.random.Generator,
        on_pair: Callable[[], None] | None = None,
    ) -> list[QAPair]:
        """Up to `budget` new pairs whose entities all come from `pool`.

        Each type gets its share of the budget (``config.question_types``); a type that runs
        out of new questions (`MAX_FAILURES` failed draws in a row) hands its remainder to the
        others, so the budget is only missed when every type is exhausted.

        Args:
            split: Split name (claims are balanced true/false per split).
            code: Split code the pool's rows carry in `split_of_row`.
            pool: Row ids of this split's entities.
            budget: Number of pairs wanted.
            templates: Usable templates per question type (held-out ones removed).
            rng: Seeded generator; the only source of randomness.
            on_pair: Called once per accepted pair (progress bar).
        """
        weights = {
            t: w
            for t, w in self.config.question_types.items()
            if w > 0 and templates.get(t) and self.possible(t, len(pool))
        }
        quotas = apportion(budget, weights)
        made = dict.fromkeys(weights, 0)
        exhausted: set[str] = set()
        out: list[QAPair] = []
        while len(out) < budget:
            for qtype in weights:
                failures = 0
                while made[qtype] < quotas[qtype] and qtype not in exhausted:
                    tmpl = templates[qtype][int(rng.integers(len(templates[qtype])))]
                    try:
                        pair = self._makers[qtype](tmpl, split, code, pool, rng)
                    except ProgramError:
                        pair = None
                    if pair is None or not self.seen.add(pair):
                        failures += 1
                        if failures >= MAX_FAILURES:
                            exhausted.add(qtype)
                        continue
                    failures = 0
                    if qtype == "claim":
                        self.claims_made[split] = self.claims_made.get(split, 0) + 1
                    made[qtype] += 1
                    out.append(pair)
                    if on_pair is not None:
                        on_pair()
            live = {t: w for t, w in weights.items() if t not in exhausted}
            short = budget - len(out)
            if short <= 0 or not live:
                break
            for t, extra in apportion(short, live).items():
                quotas[t] += extra
        return out

    # ----------------------------------------------------------------------------------------
    # helpers
    def _pick_row(self, pool: np.ndarray, rng: np.random.Generator) -> int | None:
        row = int(pool[int(rng.integers(len(pool)))])
        name = self.idx.entity_name(row)
        # Names with odd whitespace would not match their serialized cell; skip them.
        return row if name == " ".join(name.split()) else None

    def _pick(self, items: list[str], rng: np.random.Generator) -> str:
        return items[int(rng.integers(len(items)))]

    def _cell(self, row: int, col: str) -> object | None:
        v = self.idx.cell(row, col)
        return None if _is_null(v) else v

    def _make(
        self,
        tmpl: Template,
        program: dict,
        slots: dict[str, str],
        row_ids: list[int],
        facts: list[str] | None = None,
    ) -> QAPair | None:
        """Assemble a pair: answer from the program, context from rows then facts.

        Returns None, before any serializing, when the question or program was seen already.
        """
        t = self.table
        program = {**program, "decimals": self.decimals}
        if "{where_adj}" in tmpl.text and slots.get("where_adj") is None:
            return None  # a threshold filter has no "<value> <nouns>" form
        rng = np.random.default_rng(
            [self.config.seed, int(pair_id(t.content_hash, tmpl.id, program)[:12], 16)]
        )
        casual = rng.random() < self.config.casual_share
        if casual:
            slots = dict(slots)
            for slot, key in (("col", "column"), ("by", "by")):
                if slots.get(slot) and program.get(key):
                    options = column_variants(t, program[key])
                    slots[slot] = options[int(rng.integers(len(options)))]
        question = tmpl.text.format(noun=self.noun, nouns=self.nouns, **slots)
        if casual:
            typed = rewrite(question, rng)
            if same_mentions(typed, question, self.names):
                question = typed
        if self.seen.has(question, t.content_hash, program):
            return None
        answer = run_program(t, program)
        rows = sorted(set(row_ids))
        context = "\n".join([self.idx.row_text(r) for r in rows] + list(facts or []))
        entities = list(dict.fromkeys(self.idx.entity_name(r) for r in rows))
        cols = [c for c in (program.get("column"), *program.get("columns", [])) if c]
        cols += [c["column"] for c in program.get("where", [])]
        if t.entity_column:
            cols.insert(0, t.entity_column)
        masked = mask_request(question, self.names)
        prose_input = prose_text = None
        if program["op"] in SUMMARY_OPS:
            facts = summary_facts(t, program, self.decimals)
            prose_input = prose_messages(t, facts)[1]["content"]
            prose_text = reference_prose(t, mask_facts(facts)[0], rng)
        return QAPair(
            id=pair_id(t.content_hash, tmpl.id, program),
            task=TASK_OF_TYPE[tmpl.qtype],
            qtype=tmpl.qtype,
            template=tmpl.id,
            question=question,
            answer=answer,
            context=context,
            entities=entities,
            provenance=Provenance(
                source=t.source,
                table=t.name,
                table_hash=t.content_hash,
                row_ids=rows,
                columns=list(dict.fromkeys(cols)),
                program={**program, "pandas": pandas_expr(t, program)},
            ),
            program_input=program_messages(t, masked)[1]["content"],
            program_text=to_text(program, masked),
            prose_input=prose_input,
            prose_text=prose_text,
        )

    def _where(
        self, pool: np.ndarray, rng: np.random.Generator, exclude: str | None = None
    ) -> list[dict] | None:
        """A random filter: 1–2 categorical equalities seeded from a split row, or a threshold."""
        numeric = [c for c in self.numeric_cols if c != exclude]
        if self.filter_cols and (not numeric or rng.random() < 0.7):
            row = int(pool[int(rng.integers(len(pool)))])
            k = 2 if len(self.filter_cols) >= 2 and rng.random() < 0.4 else 1
            picked = rng.choice(len(self.filter_cols), size=k, replace=False)
            where = []
            for i in sorted(int(i) for i in picked):
                col = self.filter_cols[i]
                v = self._cell(row, col)
                if v is None:
                    return None
                where.append({"column": col, "op": "==", "value": _json_value(v)})
            return where
        if not numeric:
            return None
        col = self._pick(numeric, rng)
        grid = self._thresholds(col)
        if not grid:
            return None
        value = grid[int(rng.integers(len(grid)))]
        return [{"column": col, "op": ">" if rng.random() < 0.5 else "<", "value": value}]

    def _thresholds(self, col: str) -> list[int | float]:
        """Threshold values for a column: its rounded 2%, 4%, ..., 98% quantiles (distinct).

        A fixed grid (rather than any cell value) keeps the set of threshold filters small, so
        their row sets and statistics are computed once and reused.
        """
        grid = self._grids.get(col)
        if grid is None:
            x = self.idx.numeric(col)
            x = x[~np.isnan(x)]
            grid = []
            if x.size:
                qs = np.quantile(x, np.linspace(0.02, 0.98, THRESHOLD_LEVELS))
                for text in dict.fromkeys(format_number(float(q), self.decimals) for q in qs):
                    grid.append(float(text) if "." in text else int(text))
            self._grids[col] = grid
        return grid

    def _where_slots(self, where: list[dict]) -> dict[str, str | None]:
        return {
            "where_with": where_with(self.table, where, self.decimals),
            "where_is": where_is(self.table, where, self.decimals),
            "where_adj": where_adj(self.table, where, self.decimals),
        }

    def _group_context(
        self, rows: np.ndarray, code: int, rng: np.random.Generator, min_rows: int
    ) -> tuple[str, list[int]] | None:
        """Evidence kind and context rows for a group (see the module docstring)."""
        if len(rows) < min_rows:
            return None
        if len(rows) <= self.max_ctx and bool(np.all(self.split_of_row[rows] == code)):
            return "rows", [int(r) for r in rows]
        return "facts", self._sample_in_split(rows, code, max(1, self.max_ctx // 2), rng)

    def _sample_in_split(
        self, rows: np.ndarray, code: int, k: int, rng: np.random.Generator, first: int = -1
    ) -> list[int]:
        """Up to `k` distinct rows of `rows` in split `code` (`first` included if given).

        Rejection sampling costs O(k / share of the split) instead of a scan of a large group;
        small groups, or groups where the split is rare, are scanned.
        """
        picked = [first] if first >= 0 else []
        if len(rows) > 64:
            for _ in range(40 * k):
                if len(picked) >= k:
                    return sorted(picked)
                r = int(rows[int(rng.integers(len(rows)))])
                if self.split_of_row[r] == code and r not in picked:
                    picked.append(r)
        rest = rows[self.split_of_row[rows] == code]
        rest = rest[~np.isin(rest, picked)]
        n = min(len(rest), k - len(picked))
        if n > 0:
            picked += [int(r) for r in rng.choice(rest, size=n, replace=False)]
        return sorted(picked)

    # ----------------------------------------------------------------------------------------
    # question types
    def _lookup(self, tmpl, split, code, pool, rng) -> QAPair | None:
        row = self._pick_row(pool, rng)
        if row is None:
            return None
        col = self._pick(self.lookup_cols, rng)
        if self._cell(row, col) is None:
            return None
        entity = self.idx.entity_name(row)
        program = {"op": "lookup", "entity": entity, "row_id": row, "column": col}
        slots = {"entity": entity, "col": col_words(self.table, col)}
        return self._make(tmpl, program, slots, [row])

    def _compare(self, tmpl, split, code, pool, rng) -> QAPair | None:
        ra, rb = self._pick_row(pool, rng), self._pick_row(pool, rng)
        if ra is None or rb is None or ra == rb:
            return None
        col = self._pick(self.numeric_cols, rng)
        direction = "max" if rng.random() < 0.5 else "min"
        a, b = self.idx.entity_name(ra), self.idx.entity_name(rb)
        program = {
            "op": "compare",
            "entities": [a, b],
            "row_ids": [ra, rb],
            "column": col,
            "direction": direction,
        }
        slots = {
            "a": a,
            "b": b,
            "col": col_words(self.table, col),
            "more": "higher" if direction == "max" else "lower",
        }
        return self._make(tmpl, program, slots, [ra, rb])  # ties raise ProgramError

    def _superlative(self, tmpl, split, code, pool, rng) -> QAPair | None:
        where = self._where(pool, rng)
        if where is None:
            return None
        rows = rows_where(self.table, where)
        used = {c["column"] for c in where}
        # A column with far fewer distinct values than the group has rows almost surely ties
        # at its extreme; leave those out rather than pay an O(group) search for nothing.
        cols = [
            c for c in self.numeric_cols
            if c not in used and len(rows) <= TIE_RATIO * self.distinct[c]
        ]
        if not cols:
            return None
        col = self._pick(cols, rng)
        direction = "max" if rng.random() < 0.5 else "min"
        winner = superlative_row(self.table, where, col, direction, self.decimals)
        if self.split_of_row[winner] != code:
            return None
        ev = self._group_context(rows, code, rng, min_rows=2)
        if ev is None:
            return None
        evidence, shown = ev
        facts = []
        if evidence == "facts":
            # The winner and other rows of the group from this split; the facts state the
            # max/min, which only the winner's row shows.
            k = max(1, self.max_ctx // 2)
            shown = self._sample_in_split(rows, code, k, rng, first=winner)
            facts = facts_for(self.table, {"where": where, "columns": [col]}, self.decimals)
        program = {
            "op": "superlative",
            "column": col,
            "direction": direction,
            "where": where,
            "evidence": evidence,
        }
        slots = {
            "col": col_words(self.table, col),
            "most": "highest" if direction == "max" else "lowest",
            **self._where_slots(where),
        }
        return self._make(tmpl, program, slots, shown, facts)

    def _aggregate(self, tmpl, split, code, pool, rng) -> QAPair | None:
        agg = tmpl.agg or "count"
        col = None
        if agg != "count":
            if not self.numeric_cols:
                return None
            col = self._pick(self.numeric_cols, rng)
        where = self._where(pool, rng, exclude=col)
        if where is None:
            return None
        rows = rows_where(self.table, where)
        ev = self._group_context(rows, code, rng, min_rows=1)
        if ev is None:
            return None
        evidence, shown = ev
        facts = []
        if evidence == "facts":
            facts = facts_for(
                self.table, {"where": where, "columns": [col] if col else []}, self.decimals
            )
        program = {
            "op": "aggregate",
            "agg": agg,
            "column": col,
            "where": where,
            "evidence": evidence,
        }
        slots = {"col": col_words(self.table, col) if col else "", **self._where_slots(where)}
        return self._make(tmpl, program, slots, shown, facts)

    def _claim(self, tmpl, split, code, pool, rng) -> QAPair | None:
        row = self._pick_row(pool, rng)
        if row is None:
            return None
        col = self._pick(self.claim_cols, rng)
        actual = self._cell(row, col)
        if actual is None:
            return None
        cmp = tmpl.agg or "=="
        want_true = self.claims_made.get(split, 0) % 2 == 0  # alternate: balanced per split
        claimed = actual
        if cmp != "==":
            if col not in self.numeric_cols:
                return None  # "above" and "below" need a number
            claimed = None
            for _ in range(20):  # another row's value on the side that gives the wanted answer
                v = self._cell(int(rng.integers(self.idx.n_rows)), col)
                if v is None or format_number(float(v), self.decimals) == format_number(
                    float(actual), self.decimals
                ):
                    continue
                if OPS[cmp](float(actual), float(v)) == want_true:
                    claimed = v
                    break
            if claimed is None:
                return None
        elif not want_true:
            shown = value_words(self.table, col, actual, self.decimals)
            claimed = None
            for _ in range(20):  # a plausible wrong value: another row's value in this column
                v = self._cell(int(rng.integers(self.idx.n_rows)), col)
                if v is not None and value_words(self.table, col, v, self.decimals) != shown:
                    claimed = v
                    break
            if claimed is None:
                return None
        entity = self.idx.entity_name(row)
        value = value_words(self.table, col, claimed, self.decimals)
        program = {
            "op": "claim",
            "entity": entity,
            "row_id": row,
            "column": col,
            "value": value,
            "raw": _json_value(claimed),
        }
        if cmp != "==":
            program["cmp"] = cmp
        slots = {"entity": entity, "col": col_words(self.table, col), "value": value}
        return self._make(tmpl, program, slots, [row])

    def _summary_row(self, tmpl, split, code, pool, rng) -> QAPair | None:
        row = self._pick_row(pool, rng)
        if row is None:
            return None
        cols = [c for c in self.lookup_cols if self._cell(row, c) is not None]
        if not cols:
            return None
        entity = self.idx.entity_name(row)
        program = {"op": "summary_row", "entity": entity, "row_id": row, "columns": cols}
        return self._make(tmpl, program, {"entity": entity}, [row])

    def _summary_group(self, tmpl, split, code, pool, rng) -> QAPair | None:
        where = self._where(pool, rng)
        if where is None:
            return None
        rows = rows_where(self.table, where)
        ev = self._group_context(rows, code, rng, min_rows=2)
        if ev is None:
            return None
        evidence, shown = ev
        used = {c["column"] for c in where}
        numeric = [c for c in self.numeric_cols if c not in used]
        k = min(SUMMARY_GROUP_COLUMNS, len(numeric))
        cols = [numeric[int(i)] for i in sorted(rng.choice(len(numeric), size=k, replace=False))]
        facts = []
        if evidence == "facts":
            facts = facts_for(self.table, {"where": where, "columns": cols}, self.decimals)
        program = {
            "op": "summary_group",
            "where": where,
            "columns": cols,
            "noun": self.noun,
            "evidence": evidence,
        }
        return self._make(tmpl, program, self._where_slots(where), shown, facts)

    # ---- row-set questions (answers computed by the program, context: a sample of rows) ----
    def _set_pair(self, tmpl, program: dict, slots: dict, rows: np.ndarray, code, rng):
        shown = self._sample_in_split(rows, code, max(1, self.max_ctx // 2), rng)
        if not shown:
            return None
        return self._make(tmpl, {**program, "evidence": "program"}, slots, shown)

    def _list(self, tmpl, split, code, pool, rng) -> QAPair | None:
        where = self._where(pool, rng)
        if where is None:
            return None
        rows = rows_where(self.table, where)
        if not 2 <= len(rows) <= MAX_LIST:
            return None
        program = {"op": "list", "where": where}
        return self._set_pair(tmpl, program, self._where_slots(where), rows, code, rng)

    def _top(self, tmpl, split, code, pool, rng) -> QAPair | None:
        col = self._pick(self.numeric_cols, rng)
        where: list[dict] = []
        if _wants_where(tmpl):
            where = self._where(pool, rng, exclude=col) or []
            if not where:
                return None
        k = int(rng.integers(2, 6))
        # "top 3 by weight" says the highest; only a template with {most} can ask the lowest
        direction = "max" if rng.random() < 0.6 or "{most}" not in tmpl.text else "min"
        program = {"op": "top", "k": k, "column": col, "direction": direction, "where": where}
        rows = top_rows(self.table, program)
        if len(rows) != k:  # a tie at the k-th value would make the question ambiguous
            return None
        slots = {
            "k": str(k),
            "col": col_words(self.table, col),
            "most": "highest" if direction == "max" else "lowest",
            **(self._where_slots(where) if where else {}),
        }
        return self._set_pair(tmpl, program, slots, rows, code, rng)

    def _distinct(self, tmpl, split, code, pool, rng) -> QAPair | None:
        col = self._pick(self.group_cols, rng)
        where: list[dict] = []
        if _wants_where(tmpl):
            where = self._where(pool, rng, exclude=col) or []
            if not where or any(c["column"] == col for c in where):
                return None
        rows = rows_where(self.table, where)
        program = {"op": "distinct", "column": col, "where": where}
        slots = {"col": col_words(self.table, col), **(self._where_slots(where) if where else {})}
        return self._set_pair(tmpl, program, slots, rows, code, rng)

    def _group(self, tmpl, split, code, pool, rng) -> QAPair | None:
        agg = tmpl.agg or "mean"
        by = self._pick(self.group_cols, rng)
        col = None
        if agg != "count":
            cols = [c for c in self.numeric_cols if c != by]
            if not cols:
                return None
            col = self._pick(cols, rng)
        program = {"op": "group", "agg": agg, "column": col, "by": by, "where": []}
        rows = rows_where(self.table, [])
        slots = {"col": col_words(self.table, col) if col else "", "by": col_words(self.table, by)}
        return self._set_pair(tmpl, program, slots, rows, code, rng)
