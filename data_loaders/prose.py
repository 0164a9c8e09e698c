"""Summaries the table vouches for: the table computes the facts, the student words them.

A summary program (``summary_row``, ``summary_group``) picks a row or a group; `summary_facts`
computes what the table says about it (each cell of the row; the group's filter, size, names
when few, and each column's lowest, highest and mean). The student sees those facts as slots
(`mask_facts`: names ``E1``, values ``F1``; `prose_messages`) and writes prose over the slots,
which the table fills in (`unmask`): like the request masking of programs, the student never
copies a name or a number. `check_prose` then lets the filled-in prose through only when every
number, entity name and category value in it is one of those facts, attributed to the fact's
own column and statistic:

- the prose is split into sentences and clauses (at commas, brackets, "and", "with", "but");
  a clause names a column by its words, an everyday word for it or its unit (one column, or
  the one the sentence's previous clause named);
- a number must equal a fact of the named column: a cell (row summary, no statistic word), or
  the statistic the clause says (mean/lowest/highest; "from A to B" and "between A and B" are
  the lowest and the highest); a count is a number before the rows' noun; a threshold of the
  group's filter is said with its own comparison ("above", "at most", ...);
- an entity name must be the row's (or one of the group's listed names), a category value the
  row's cell or the group's filter value of that column;
- every word must come from the facts, the columns' own words and units, or a small fixed
  vocabulary of plain connecting words (`PROSE_WORDS`): a word such as "not", "than",
  "japanese", "heavy" or "heaviest" that could carry a claim the facts do not make stops the
  prose; a clause that names a column states one of its values, and one with a statistic or
  comparison word states its number.

Each rule can only stop prose; stopped prose is replaced by the table's own summary sentences
(`data_loaders.programs.row_summary`/`group_summary`). `reference_prose` words facts (or
their slots) in a few seeded styles: ``prepare`` stores the slot prompt and the slot wording as
each summary pair's training target (``prose_input``/``prose_text``); every reference, filled
in, passes `check_prose`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_loaders.mentions import NUMBER, NameIndex, normalize
from data_loaders.misreading import column_own_words, foreign_unit
from data_loaders.naming import plural
from data_loaders.program_text import mask_request
from data_loaders.programs import (
    ProgramError,
    _fmt,
    _is_null,
    index_for,
    rows_where,
    where_stats,
)
from data_loaders.table import Table
from data_loaders.templates import FILTER_OP_WORDS, col_words, entity_noun, join_words

PROSE_SYSTEM = (
    "Write a short summary of the facts in plain sentences. Use only the facts given: write "
    "each fact's slot (E1, F1, ...) with its column's name, never a value of your own."
)
MAX_NAMED = 6  # a group summary names its rows when there are at most this many

STATS = ("min", "max", "mean")
_STAT_WORDS = {
    "mean": ("mean", "average", "averages", "avg", "typical"),
    "min": ("lowest", "minimum", "min", "least", "smallest"),
    "max": ("highest", "maximum", "max", "most", "largest"),
}
# Comparisons of a filter, as single tokens ("more than" -> "more_than"): "more", "than" and
# "less" alone are no plain words ("more weight than 2046 lbs" is a claim no fact makes).
_PHRASES = {"more than": "more_than", "greater than": "greater_than", "less than": "less_than",
            "at least": "at_least", "at most": "at_most"}
_THRESHOLD_WORDS = {
    ">": ("above", "over", "more_than", "greater_than"),
    "<": ("below", "under", "less_than"),
    ">=": ("at_least",),
    "<=": ("at_most",),
}
# Plain words that carry no claim of their own; every other word must come from the facts or
# the columns. Stat and threshold words are checked against the facts where they occur.
PROSE_WORDS = frozenset(
    "a an the and of is are was were has have had with its it their they them this that these "
    "there here in for to from between ranges range ranging goes go varies vary at on by as "
    "which who value values row rows table summary one each while".split()
) | {w for ws in _STAT_WORDS.values() for p in ws for w in p.split()} | {
    w for ws in _THRESHOLD_WORDS.values() for w in ws
}
_CLAUSE_BREAK = frozenset({"and", "with", "but", "while", "which"})
_NEGATIONS = frozenset("no not never none nor neither without nothing nobody".split())


@dataclass(frozen=True)
class Fact:
    """One thing the table computed for a summary."""

    kind: str  # "name", "cell", "filter", "count", "same", "mean", "min", "max"
    column: str | None
    text: str  # as the facts state it: "4654 lbs", "USA", "ford pinto", "79"
    number: float | None = None
    op: str | None = None  # a filter's comparison ("==", ">", ...)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    s = str(v).strip()
    return float(s) if NUMBER.match(s) else None


def summary_facts(table: Table, spec: dict, decimals: int = 2) -> list[Fact]:
    """The facts the table computes for a bound ``summary_row`` or ``summary_group`` program.

    Raises:
        ProgramError: the program is no summary, or its row or group has nothing to state.
    """
    idx = index_for(table)
    d = spec.get("decimals", decimals)
    cols = [c for c in spec.get("columns") or table.columns if c != table.entity_column]
    if spec["op"] == "summary_row":
        row = int(spec["row_id"])
        facts = [Fact("name", table.entity_column, idx.entity_name(row))]
        for col in cols:
            v = idx.cell(row, col)
            if _is_null(v):
                continue
            text = _fmt(table, col, v, d)
            facts.append(Fact("cell", col, text, _fact_number(v, text)))
        if len(facts) == 1:
            raise ProgramError(f"row {row} has no values to summarize")
        return facts
    if spec["op"] != "summary_group":
        raise ProgramError(f"{spec['op']} is not a summary program")
    where = spec.get("where") or []
    rows = rows_where(table, where)
    if len(rows) == 0:
        raise ProgramError("no row matches the filter")
    facts = []
    for c in where:
        text = _fmt(table, c["column"], c["value"], d)
        facts.append(Fact("filter", c["column"], text, _fact_number(c["value"], text), c["op"]))
    facts.append(Fact("count", None, str(len(rows)), float(len(rows))))
    if len(rows) <= MAX_NAMED and table.entity_column is not None:
        facts += [Fact("name", table.entity_column, idx.entity_name(int(r)))
                  for r in np.sort(rows)]
    for col in cols:
        if col in {c["column"] for c in where if c["op"] == "=="}:
            continue
        try:
            st = where_stats(table, where, col)
        except (ProgramError, KeyError, TypeError, ValueError):
            st = None  # not a numeric column
        if st is None:
            continue
        texts = {k: _fmt(table, col, st[k], d) for k in STATS}
        if texts["min"] == texts["max"]:
            facts.append(Fact("same", col, texts["min"], _number_of(texts["min"])))
            continue
        facts += [Fact(k, col, texts[k], _number_of(texts[k])) for k in STATS]
    return facts


def _fact_number(value: Any, text: str) -> float | None:
    """A numeric value's number as the facts state it (rounded, as in `text`), else None."""
    return _number_of(text) if _number(value) is not None else None


def _number_of(text: str) -> float | None:
    head = text.split()[0] if text.split() else ""
    return _number(head.replace(",", ""))


def facts_text(table: Table, facts: list[Fact]) -> str:
    """The facts as the prose prompt shows them, one per line."""
    noun = entity_noun(table)
    lines = []
    group = [f for f in facts if f.kind == "filter"]
    count = next((f for f in facts if f.kind == "count"), None)
    if count is not None:
        where = _where_words(table, facts) if group else ""
        lines.append(f"{plural(noun)}{' with ' + where if where else ''}: {count.text}")
        names = [f.text for f in facts if f.kind == "name"]
        if names:
            lines.append(f"names: {join_words(names)}")
    for f in facts:
        if f.kind == "name" and count is None:
            lines.append(f"{noun}: {f.text}")
        elif f.kind == "cell":
            lines.append(f"{col_words(table, f.column)}: {f.text}")
        elif f.kind == "same":
            lines.append(f"{col_words(table, f.column)} of every one: {f.text}")
        elif f.kind in STATS:
            lines.append(f"{_STAT_WORDS[f.kind][0] if f.kind == 'mean' else f.kind} "
                         f"{col_words(table, f.column)}: {f.text}")
    return "\n".join(lines)


def _where_words(table: Table, facts: list[Fact]) -> str:
    """The group's filter in words: ``origin Japan and horsepower above 100 hp``."""
    return " and ".join(f"{col_words(table, f.column)} {FILTER_OP_WORDS[f.op]}{f.text}"
                        for f in facts if f.kind == "filter")


def mask_facts(facts: list[Fact]) -> tuple[list[Fact], dict[str, str]]:
    """The facts with each name a slot ``E1``, ``E2`` ... and each value ``F1``, ``F2`` ....

    The student words the slots and the table fills them in (`unmask`): a pruned student
    keeps a sentence's structure far better than it copies names and numbers.

    Returns:
        (the slot facts, {slot: the fact's text}).
    """
    out, slots = [], {}
    counts = {"E": 0, "F": 0}
    for f in facts:
        prefix = "E" if f.kind == "name" else "F"
        counts[prefix] += 1
        name = f"{prefix}{counts[prefix]}"
        slots[name] = f.text
        out.append(Fact(f.kind, f.column, name, f.number if f.kind == "count" else None, f.op))
    return out, slots


_SLOT_WORD = re.compile(r"(?<![\w.])([EF]\d+)(?![\w])")


def unmask(text: str, slots: dict[str, str]) -> str:
    """Prose over slots with each known slot replaced by its fact's text (others stay)."""
    return _SLOT_WORD.sub(lambda m: slots.get(m.group(1), m.group(1)), text)


def prose_messages(table: Table, facts: list[Fact]) -> list[dict]:
    """The chat messages that ask for prose from `facts`, shown as slots (`mask_facts`)."""
    masked, _ = mask_facts(facts)
    return [{"role": "system", "content": PROSE_SYSTEM},
            {"role": "user", "content": f"table {table.name}\nfacts:\n"
                                        f"{facts_text(table, masked)}"}]


# --------------------------------------------------------------------------------------------
# Reference prose (the training target)
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _cell_phrase(table: Table, f: Fact, rng: np.random.Generator) -> str:
    words = col_words(table, f.column)
    options = [f"{words} {f.text}", f"{words} of {f.text}"]
    if f.number is not None and f.text == normalize(f.text) and not table.units.get(f.column):
        options.append(f"{f.text} {words}")  # "8 cylinders"
    return _pick(rng, options)


def reference_prose(table: Table, facts: list[Fact], rng: np.random.Generator) -> str:
    """The facts worded in one of a few seeded styles; it always passes `check_prose`."""
    if any(f.kind == "count" for f in facts):
        return _group_prose(table, facts, rng)
    name = next(f.text for f in facts if f.kind == "name")
    phrases = [_cell_phrase(table, f, rng) for f in facts if f.kind == "cell"]
    style = int(rng.integers(3))
    if style == 0 or len(phrases) < 4:
        return f"{name} has {join_words(phrases)}."
    if style == 1:
        return f"{name}: {join_words(phrases)}."
    cut = len(phrases) // 2
    cells = [f for f in facts if f.kind == "cell"][cut:]
    rest = [f"its {col_words(table, f.column)} is {f.text}" for f in cells]
    return f"{name} has {join_words(phrases[:cut])}. {_cap(join_words(rest))}."


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _group_prose(table: Table, facts: list[Fact], rng: np.random.Generator) -> str:
    nouns = plural(entity_noun(table))
    count = next(f for f in facts if f.kind == "count")
    where = _where_words(table, facts)
    n_word = entity_noun(table) if count.number == 1 else nouns
    be = "is" if count.number == 1 else "are"
    head = _pick(rng, [f"There {be} {count.text} {n_word} with {where}",
                       f"The table has {count.text} {n_word} with {where}"])
    names = [f.text for f in facts if f.kind == "name"]
    parts = [head + (f": {join_words(names)}." if names else ".")]
    by_col: dict[str, dict[str, Fact]] = {}
    for f in facts:
        if f.kind in STATS or f.kind == "same":
            by_col.setdefault(f.column, {})[f.kind] = f
    for col, st in by_col.items():
        w = col_words(table, col)
        if "same" in st:
            parts.append(f"Their {w} is {st['same'].text}.")
            continue
        lo, hi, mean = st["min"].text, st["max"].text, st["mean"].text
        parts.append(_pick(rng, [
            f"Their {w} ranges from {lo} to {hi}, with a mean of {mean}.",
            f"The mean {w} is {mean}, from {lo} to {hi}.",
            f"Their {w} averages {mean} (lowest {lo}, highest {hi}).",
            f"Their {w} is between {lo} and {hi} (mean {mean}).",
        ]))
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


def _column_marks(text: str, table: Table) -> tuple[str, dict[str, str]]:
    """Replace each column's full words ("0-60 mph time") with a mark token (``colmark3``).

    Numbers inside a column's name are then not read as values; the longest names go first.
    """
    marks: dict[str, str] = {}
    cols = sorted((c for c in table.columns if c != table.entity_column),
                  key=lambda c: -len(col_words(table, c)))
    out = text
    for i, col in enumerate(cols):
        words = normalize(col_words(table, col)).split()
        if not words:
            continue
        pat = r"(?<![\w.])" + r"[\W_]*".join(re.escape(w) for w in words) + r"(?!\w)"
        token = f"colmark{i}"
        new = re.sub(pat, f" {token} ", out, flags=re.IGNORECASE)
        if new != out:
            marks[token] = col
            out = new
    return out, marks


def _join_phrases(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for t in tokens:
        if out and f"{out[-1]} {t}" in _PHRASES:
            out[-1] = _PHRASES[f"{out[-1]} {t}"]
        else:
            out.append(t)
    return out


def _says(clause: list[str], phrase: str) -> bool:
    words = phrase.split()
    n = len(words)
    return any(clause[i:i + n] == words for i in range(len(clause) - n + 1))


def _clauses(tokens: list[str]) -> list[list[str]]:
    """Split at clause words; "between A and B" stays one clause (its "and" is a range)."""
    tokens = list(tokens)
    for i, t in enumerate(tokens):
        if t == "between":
            for j in range(i + 2, min(i + 5, len(tokens) - 1)):
                if tokens[j] == "and" and _is_number(tokens[j + 1]):
                    tokens[j] = "rangeand"
                    break
    out: list[list[str]] = [[]]
    for t in tokens:
        if t in _CLAUSE_BREAK:
            out.append([])
        else:
            out[-1].append(t)
    return [c for c in out if c]


def _is_number(t: str) -> bool:
    return bool(re.fullmatch(r"V\d+", t))


_CATEGORY_VALUES: dict[tuple[str, str], tuple[dict[str, set[str]], frozenset[str]]] = {}


def _category_values(table: Table) -> tuple[dict[str, set[str]], frozenset[str]]:
    """The table's non-numeric values, scanned once per table (name and content hash).

    Returns ({normalized value: the columns holding it}, the values written with a capital
    letter as one word, "IN", "WI").
    """
    key = (table.name, table.content_hash)
    if key not in _CATEGORY_VALUES:
        owners: dict[str, set[str]] = {}
        cased: set[str] = set()
        for c in table.columns:
            if c == table.entity_column or table.column_types.get(c) == "numeric":
                continue
            for v in map(str, table.df[c].dropna().unique()):
                owners.setdefault(normalize(v), set()).add(c)
                if v != v.lower() and re.fullmatch(r"[\w'-]+", v):
                    cased.add(v)
        if len(_CATEGORY_VALUES) >= 16:  # few tables per process; forget the oldest
            _CATEGORY_VALUES.pop(next(iter(_CATEGORY_VALUES)))
        _CATEGORY_VALUES[key] = (owners, frozenset(cased))
    return _CATEGORY_VALUES[key]


class _Checker:
    """One prose text against one list of facts (see `check_prose`)."""

    def __init__(self, facts: list[Fact], table: Table, index: NameIndex):
        self.facts, self.table, self.index = facts, table, index
        noun = normalize(entity_noun(table))
        self.noun_words = {noun, normalize(plural(noun)), "row", "rows"}
        self.names = {normalize(f.text) for f in facts if f.kind == "name"}
        self.values = {(f.column, normalize(f.text)) for f in facts
                       if f.kind in ("cell", "filter")}
        self.group = any(f.kind == "count" for f in facts)
        cols = [c for c in table.columns if c != table.entity_column]
        self.units = {c: normalize(table.units.get(c) or "") for c in cols}
        unit_words = {w for u in self.units.values() for w in u.split()}
        # a column's own words only: everyday words for it ("heavy") are judgments
        self.terms = {c: column_own_words(table, c) - unit_words - PROSE_WORDS for c in cols}
        allowed = set(PROSE_WORDS) | self.noun_words | unit_words
        for ts in self.terms.values():
            allowed |= ts
        for f in facts:
            allowed |= set(normalize(f.text).split())
        self.allowed = allowed - _NEGATIONS

    def values_of(self, value: str) -> set[str]:
        """The columns of the table that hold category value `value` (normalized)."""
        return _category_values(self.table)[0].get(value, set())

    def cased_values(self) -> frozenset[str]:
        """Category values as the table writes them, with a capital letter ("IN", "WI")."""
        return _category_values(self.table)[1]

    def check(self, text: str) -> str | None:
        # every name or category value of the facts becomes one mark token, so that its words
        # ("ALLEN, IN", "brown, grey", "Helena-West Helena") are neither split nor read as
        # column words; the value is then checked against the clause's column
        self.fact_marks: dict[str, str] = {}
        marked = text
        texts = {f.text for f in self.facts
                 if f.kind in ("name", "cell", "filter") and f.number is None}
        for k, said in enumerate(sorted(texts, key=lambda x: -len(x))):
            pat = r"(?<![\w])" + re.escape(said) + r"(?!\w)"
            token = f"factmark{k}"
            new = re.sub(pat, f" {token} ", marked, flags=re.IGNORECASE)
            if new != marked:
                self.fact_marks[token] = said
                marked = new
        marked, self.marks = _column_marks(marked, self.table)
        # a category value written as the table writes it ("IN" for Indiana) but also a plain
        # word ("in") is not read as a mention; any left after the facts' marks is not a fact
        for tok in re.findall(r"[\w'-]+", marked):
            if tok in self.cased_values():
                return f'the prose says "{tok}", which the facts do not'
        stated = 0
        for sentence in re.split(r"[.;!?]+(?=\s|$)|\n", marked):
            previous: str | None = None
            for piece in re.split(r"[,():]", sentence):
                masked = mask_request(piece, self.index)
                tokens = _join_phrases(masked.text.split())
                known = self.allowed | set(masked.slots) | set(self.marks) | set(self.fact_marks)
                for t in tokens:
                    if t in _NEGATIONS or t not in known and t.rstrip("s") not in known:
                        return f'the prose says "{t}", which no fact states'
                for clause in _clauses(tokens):
                    named = self._named(clause, masked.slots)
                    if len(named) > 1:
                        words = join_words(sorted(col_words(self.table, c) for c in named))
                        return f"a clause of the prose names several columns ({words})"
                    col = next(iter(named)) if named else previous
                    previous = col
                    why, n = self._clause(clause, col, masked.slots)
                    if why:
                        return why
                    if named and not n:  # "has weight" with no weight: stated by nothing
                        return (f'the prose says "{self._words(clause, masked.slots)}" with no '
                                "value the facts state")
                    stated += n
        return None if stated else "the prose states none of the facts' values"

    def _words(self, clause: list[str], slots: dict) -> str:
        """A clause as the prose wrote it (marks and slots back to their words)."""
        out = []
        for t in clause:
            if t in self.marks:
                out.append(col_words(self.table, self.marks[t]))
            elif t in self.fact_marks:
                out.append(self.fact_marks[t])
            elif t in slots:
                out.append(str(slots[t].text))
            else:
                out.append(t.replace("_", " "))
        return " ".join(out)

    def _named(self, clause: list[str], slots: dict) -> set[str]:
        """The columns a clause names: by their words, else by a unit only one column has."""
        named = {self.marks[t] for t in clause if t in self.marks}
        for col, ts in self.terms.items():
            if any(t in ts or t.rstrip("s") in ts for t in clause if t not in slots):
                named.add(col)
        if named:
            return named
        by_unit = {c for c, u in self.units.items() if u and u in clause}
        return by_unit if len(by_unit) == 1 else set()

    def _clause(self, clause: list[str], col: str | None, slots: dict
                ) -> tuple[str | None, int]:
        """(why the clause fails, or None; how many values, not names, it states)."""
        thresholds = {op for op, ws in _THRESHOLD_WORDS.items() if any(w in clause for w in ws)}
        stats = {k for k, ws in _STAT_WORDS.items() if any(_says(clause, w) for w in ws)}
        if stats and not self.group:
            return f"the prose says {'/'.join(sorted(stats))} of a single row", 0
        n = numbers = 0
        for i, t in enumerate(clause):
            if t in self.fact_marks:
                why, is_value = self._fact_text(self.fact_marks[t], col)
                if why:
                    return why, 0
                n += is_value
                continue
            s = slots.get(t)
            if s is None:
                continue
            if s.kind == "entity":
                if normalize(s.text) not in self.names:
                    return f'the prose names "{s.text}", which the facts do not', 0
                continue
            elif s.kind == "value":
                v = normalize(str(s.value))
                # the clause's column, else the one column of the table that holds the value
                owners = {col} if col is not None else self.values_of(v) or {s.column}
                if len(owners) != 1 or (next(iter(owners)), v) not in self.values:
                    where = col_words(self.table, next(iter(owners))) if len(owners) == 1 \
                        else "a column"
                    return f'the prose says {where} "{s.text}", which the facts do not', 0
            else:
                why = self._number(clause, i, s, col, stats, thresholds)
                if why:
                    return why, 0
                numbers += 1
            n += 1
        if (stats or thresholds) and not numbers:  # "most of them have origin Japan"
            words = "/".join(sorted(stats | thresholds))
            return f"the prose says {words} with no number the facts state", 0
        return None, n

    def _fact_text(self, text: str, col: str | None) -> tuple[str | None, bool]:
        """A name or value the facts state: said of its own column, or of no other.

        Returns (why it fails or None, whether it states a value of the clause's column).
        """
        same = [f for f in self.facts if f.text == text]
        values = [f for f in same if f.kind != "name"]
        if col is not None and any(f.column == col for f in values):
            return None, True
        if any(f.kind == "name" for f in same):
            return None, False
        if col is not None:
            return (f'the prose says {col_words(self.table, col)} "{text}", which the facts '
                    "do not"), False
        owners = self.values_of(normalize(text)) | {f.column for f in values}
        if len(owners) == 1:
            return None, True
        return f'the prose says "{text}" without naming which column holds it', False

    def _number(self, clause: list[str], i: int, s: Any, col: str | None, stats: set[str],
                thresholds: set[str]) -> str | None:
        x = float(s.value)
        before = clause[i - 1] if i else ""
        after = clause[i + 1] if i + 1 < len(clause) else ""
        if before in self.noun_words and f"{before} {s.text}" in self.names:
            return None  # "row 12": a row's name
        if after in self.noun_words:
            if any(f.kind == "count" and f.number == x for f in self.facts):
                return None
            return f"the prose counts {s.text} {after}; the facts do not"
        if col is None:
            return f"the prose writes {s.text} without naming its column"
        if after and foreign_unit(after, self.table, col):
            return f"the prose writes {s.text} {after}: not a unit of {col_words(self.table, col)}"
        if "rangeand" in clause:
            kinds = {"min"} if i < clause.index("rangeand") else {"max"}
        elif before == "from":
            kinds = {"min"}
        elif before == "to" and "from" in clause[:i]:
            kinds = {"max"}
        elif thresholds:
            kinds = {"filter"}
        elif not self.group:
            kinds = {"cell", "filter"}
        elif len(stats) == 1:
            kinds = set(stats)
        elif not stats:
            kinds = {"same", "filter"}
        else:
            return f"the prose writes {s.text} with several statistics in one clause"
        for f in self.facts:
            if f.column != col or f.number is None or abs(f.number - x) > 1e-9:
                continue
            if f.kind == "filter":
                if "filter" in kinds and (f.op in thresholds if thresholds else f.op == "=="):
                    return None
            elif f.kind in kinds:
                return None
        what = "/".join(sorted(kinds))
        return (f"the prose writes {s.text} for {col_words(self.table, col)}, which is not "
                f"a {what} the facts state")


def check_prose(text: str, facts: list[Fact], table: Table,
                index: NameIndex | None = None) -> str | None:
    """Why `text` may not be shown as a summary of `facts`, or None when every claim checks.

    The rules are in the module docstring; each one can only stop the prose.
    """
    if not text or not text.strip():
        return "the prose is empty"
    return _Checker(facts, table, index or NameIndex(table)).check(text)
