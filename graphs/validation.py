"""Checks against the table: does a model's answer state what the table computes, is a claim true?

A question that reads as one of the dataset's programs (`table_program`: a lookup, a comparison
of two rows, a superlative or a count/mean/sum over a filter) is computed by the table
(`compute`), and `check_answer` marks a model's answer supported only when it states that
result: the same row for a "which" question, the same numbers (within tolerance), the same
value, and no other row, number or value of the column. A program that cannot run (an empty
cell, a tie, no row in the filter) is answered in plain words by `cannot_compute_reply`.

A free question that reads as no program cannot be checked exactly. Its answer is accepted as
*read from the rows* (``supported`` None, never True) only when everything it states can be
found in what was retrieved: every entity it names is one of the retrieved rows (or named in a
fact), every number matches a cell or a fact, and an answer with neither must be a whole cell
value (or yes/no, to a question that asks yes or no). Anything else, including text a table
cell tried to inject, is unsupported. Summaries are checked the same way (mode ``"summary"``).

`check_claim` decides a claim deterministically when it can be read as entity + column + value
("is it true that X has a <column> of 4?"); it returns None otherwise, and the validator
node asks the model instead and labels the verdict ``checked_by: "model"``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from data_loaders.mentions import NUMBER
from data_loaders.misreading import foreign_unit
from data_loaders.programs import OPS
from data_loaders.serialize import format_value
from data_loaders.templates import col_words
from graphs.config import ValidationConfig
from graphs.retrieval import (
    MAX_WORDS,
    MIN_WORDS,
    OP_WORDS,
    NameIndex,
    QueryParse,
    Retrieval,
    normalize,
    parse_query,
    target_columns,
    where_conditions,
)
from graphs.state import Verdict

YES_NO = frozenset({"yes", "no", "true", "false"})
_NUM = re.compile(r"^\d+(?:\.\d+)?$")
# A question that starts with one of these (or says "yes or no"/"true or false") can be answered
# yes/no; "How many ..." or "Which <row noun> ..." cannot.
_YES_NO_OPENERS = frozenset({
    "is", "are", "was", "were", "does", "do", "did", "has", "have", "had", "can", "could",
    "will", "would", "should", "claim", "true", "answer",
})


def verdict_label(verdict: dict | None) -> str:
    """A verdict in a few words, as the CLI, the demo and the chat UI show it."""
    if not verdict:
        return "no check"
    ok, by = verdict.get("supported"), verdict.get("checked_by")
    if ok is True:
        return "supported by the table"
    if ok is False:
        return "not supported by the table"
    if by == "model":
        return "judged by the model, not checked by the table"
    if by == "table":
        return "the table has no value to check it against"
    return "read from the rows, not computed by the table"


def asks_yes_no(parse: QueryParse | None) -> bool:
    """Whether a yes/no reply can answer the parsed question (True when nothing was parsed)."""
    if parse is None or not parse.tokens:
        return True
    text = " ".join(parse.tokens)
    return parse.tokens[0] in _YES_NO_OPENERS or "yes or no" in text or "true or false" in text


def _close(a: float, b: float, cfg: ValidationConfig) -> bool:
    return math.isclose(a, b, rel_tol=cfg.rel_tol, abs_tol=cfg.abs_tol)


def _line_numbers(line: str) -> list[float]:
    return [float(t) for t in normalize(line).split() if _NUM.match(t)]


@dataclass
class _Support:
    """What a retrieval lets an answer say."""

    rows: set[int]
    numbers: list[tuple[float, str]]  # (value, the line it comes from)
    texts: set[str]  # normalized whole text cells of the rows
    fact_text: str  # normalized facts, to find entity names they mention


def _support(r: Retrieval, rows: list[int] | None = None) -> _Support:
    """What the retrieval's rows (or only `rows` of them) and facts let an answer state."""
    t = r.table
    numbers: list[tuple[float, str]] = []
    texts: set[str] = set()
    assert t is not None
    rows = r.row_ids if rows is None else rows
    for rid in rows:
        line = t.row_text(rid)
        for v in t.df.iloc[rid].tolist():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if isinstance(v, bool):
                texts.add("yes" if v else "no")
            elif isinstance(v, int | float) or hasattr(v, "dtype"):
                try:
                    numbers.append((abs(float(v)), line))
                except (TypeError, ValueError):
                    texts.add(normalize(v))
            elif isinstance(v, pd.Timestamp):
                numbers += [(float(x), line) for x in (v.year, v.month, v.day)]
                texts.add(normalize(format_value(v)))
            else:
                texts.add(normalize(v))
    facts = list(dict.fromkeys(r.facts + r.support))
    for f in facts:
        numbers += [(x, f) for x in _line_numbers(f)]
    return _Support(set(r.row_ids), numbers, texts, " " + normalize(" ".join(facts)) + " ")


def check_answer(
    answer: str,
    retrieval: Retrieval,
    index: NameIndex,
    cfg: ValidationConfig | None = None,
    *,
    mode: str = "qa",
    computed: Computed | None = None,
) -> Verdict:
    """Whether `answer` states what the table computed, or at least what the rows say.

    Args:
        answer: The model's reply.
        retrieval: What the model was shown.
        index: Name lookups of the retrieval's table (to find entity names in the answer).
        cfg: Number tolerances.
        mode: ``"qa"`` (a short answer: must state a table value) or ``"summary"`` (free text:
            only the entities and numbers it states are checked).
        computed: The table's own result for the question (`compute`), when it reads as a
            program that runs: the answer must then state exactly that result.

    Returns:
        A `Verdict`: ``supported`` True only when the answer states the computed result; None
        when there is no computed result and everything the answer states is in the retrieved
        rows (read from the rows, not checked); False otherwise, with the reason.
    """
    cfg = cfg or ValidationConfig()
    text = answer.strip()
    if not text:
        return Verdict(
            supported=False, reason="the answer is empty", evidence=[], checked_by="table"
        )
    if retrieval.table is None or not retrieval.found:
        return Verdict(
            supported=False,
            reason="nothing was retrieved to support it",
            evidence=[],
            checked_by="table",
        )
    t = retrieval.table
    q = retrieval.parse
    # A question about named rows is answered by their values, not by a neighbour's.
    asked = [r for r in q.row_ids if r in retrieval.row_ids] if q is not None else []
    sup = _support(retrieval, asked or None)

    def unsupported(reason: str, facts: int = 0) -> Verdict:
        """Rejected, with the first retrieved rows (and ``facts`` fact lines) as evidence."""
        shown = [t.row_text(r) for r in retrieval.row_ids[:3]] + retrieval.facts[:facts]
        return Verdict(supported=False, reason=reason, evidence=shown, checked_by="table")

    if mode == "qa" and computed is not None and computed.answer is not None:
        mismatch = _mismatch(text, computed, index, cfg)
        if mismatch:
            return unsupported(f"{mismatch}; the table computes {computed.answer!r}")
        return Verdict(
            supported=True,
            reason=f"it states what the table computes ({computed.describe()})",
            evidence=computed.evidence(),
            checked_by="table",
        )

    if mode == "qa" and q is not None and len(q.entities) == 1 and not sup.fact_text.strip():
        # A lookup ("the <column> of X"): numbers must come from the named row's asked columns.
        cols = [c for c in q.column_names if c in t.columns_of("numeric")]
        rid = int(q.entities[0].value)
        if cols:
            line = t.row_text(rid)
            sup.numbers = [
                (abs(float(t.df.iloc[rid][c])), line) for c in cols if pd.notna(t.df.iloc[rid][c])
            ]
    p = parse_query(text, index)
    program = table_program(q) if mode == "qa" and q is not None else None
    if program is not None and program["op"] in ("compare", "superlative") and not p.entities:
        return unsupported("the question asks which row; the answer names none")
    evidence: list[str] = []
    bad_entities = []
    for m in p.entities:
        if int(m.value) in sup.rows:
            evidence.append(t.row_text(int(m.value)))
        elif f" {m.text} " not in sup.fact_text:
            bad_entities.append(t.entity_of(int(m.value)))
    if bad_entities:
        return unsupported(
            f"it names {', '.join(bad_entities)}, which is not in the retrieved rows"
        )
    bad_numbers = []
    for x in p.numbers:
        hits = [line for v, line in sup.numbers if _close(abs(x), v, cfg)]
        if hits:
            evidence.append(hits[0])
        else:
            bad_numbers.append(x)
    if bad_numbers:
        shown = ", ".join(format_value(x) for x in bad_numbers)
        return unsupported(f"the number(s) {shown} are not in the retrieved rows or facts", 2)
    if mode == "qa" and not p.entities and not p.numbers:
        norm = normalize(text)
        if norm in YES_NO or norm.split(" ")[0] in YES_NO and len(norm.split()) <= 2:
            if not asks_yes_no(q):
                return unsupported("it answers yes/no, but the question asks for a value")
        elif norm not in sup.texts:
            return unsupported("it states no value, name or number found in the retrieved rows")
        else:
            evidence += [
                t.row_text(r) for r in retrieval.row_ids if norm in normalize(t.row_text(r))
            ]
    if mode == "summary":
        states_cell = any(f" {v} " in f" {normalize(text)} " for v in sup.texts if v)
        if not (p.numbers or states_cell):
            return unsupported("it states no number or value of the rows it summarizes")
        reason = ("its numbers and names are in the rows it summarizes; its other words are "
                  "not checked")
    else:  # say where each stated value sits, so a value of the wrong column shows as such
        found = _where_found(text, p, retrieval, cfg)
        reason = "read from the rows, not computed by the table" + (
            f": {'; '.join(found)}" if found else ""
        )
    return Verdict(
        supported=None,
        reason=reason,
        evidence=list(dict.fromkeys(evidence))[:5],
        checked_by="rows",
    )


def _where_found(
    answer: str, p: QueryParse, retrieval: Retrieval, cfg: ValidationConfig
) -> list[str]:
    """For each number or cell value an answer states, the column and row it is in."""
    t = retrieval.table
    numeric = t.columns_of("numeric")
    asked = retrieval.parse.row_ids if retrieval.parse is not None else []
    rows = list(dict.fromkeys([r for r in asked if r in retrieval.row_ids] + retrieval.row_ids))
    out = []
    for x in p.numbers:
        for rid in rows:
            row = t.df.iloc[rid]
            col = next((c for c in numeric if pd.notna(row[c]) and _close(abs(x), abs(float(
                row[c])), cfg)), None)
            if col is not None:
                value = format_value(row[col], t.units.get(col))
                out.append(f"{value} is the {col_words(t, col)} of {t.entity_of(rid)}")
                break
    if not p.numbers and not p.entities:
        norm = normalize(answer)
        for rid in rows:
            row = t.df.iloc[rid]
            col = next((c for c in t.columns if c != t.entity_column and pd.notna(row[c])
                        and normalize(format_value(row[c])) == norm), None)
            if col is not None:
                out.append(f"{format_value(row[col])} is the {col_words(t, col)} of "
                           f"{t.entity_of(rid)}")
                break
    return out


@dataclass
class ClaimResult:
    """A claim decided from the table."""

    true: bool | None  # None: the cell is empty, so the claim cannot be decided
    answer: str  # the reply, e.g. "Yes: the table gives <column> 130 for X."
    verdict: Verdict


# Words that turn a filter around; a question holding one is not read as a program.
_NEGATIONS = frozenset({"not", "outside", "except", "excluding", "besides", "without", "non",
                        "isnt", "arent", "doesnt", "dont", "didnt", "wasnt", "werent", "never"})


def _first_words(table: Any) -> set[str]:
    """The first word of each column's words ("fuel" of "fuel economy")."""
    return {normalize(col_words(table, c)).split()[0] for c in table.columns
            if c != table.entity_column and normalize(col_words(table, c))}


def _asks_for_row(tokens: list[str], table: Any) -> bool:
    """Whether a superlative question asks which row ("which <noun> has the highest ...").

    "What is the maximum <column> ..." , "largest <column> among ..." and "how high ..." ask
    for the value instead; "what <noun> ..." asks for a row.
    """
    from data_loaders.naming import plural
    from data_loaders.templates import entity_noun

    noun = entity_noun(table)
    if tokens and tokens[0] in ("which", "who"):
        return True
    if len(tokens) > 1 and tokens[0] in MAX_WORDS + MIN_WORDS and tokens[1] in _first_words(table):
        return False  # "largest fuel economy among ...": an extreme word before a measure
    for i, tok in enumerate(tokens):
        if tok in ("what", "whats"):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            return nxt in {noun, plural(noun), "one", "row", "entry"}
        if tok == "how":
            return False
    return True
_HIGHER = frozenset({"higher", "more", "larger", "bigger", "greater", "heavier", "faster",
                     "longer"})
_LOWER = frozenset({"lower", "less", "fewer", "smaller", "lighter", "slower", "shorter"})


def table_program(parse: QueryParse, decimals: int = 2) -> dict | None:
    """The dataset program (`data_loaders.programs`) a question reads as, or None.

    Reads the four question shapes the QA node answers: a lookup (one entity, one column), a
    comparison of two entities on a column ("which has the higher ...", "... heavier ..."), a
    superlative over a filtered group and a count, mean or sum over one. Anything less clear
    (no filter for a group question, two columns, an unknown direction) gives None.
    """
    t, p = parse.table, parse
    if set(p.tokens) & _NEGATIONS:  # "outside the usa", "not from Japan": filters read as ==
        return None
    where = where_conditions(p.filters)
    if _unread_numbers(p, where):  # a number no filter was read from
        return None
    if any(_unit_after(p.tokens, c["value"], t, c["column"]) for c in where):
        return None  # "weigh more than 5 kg" over a column in grams
    filter_cols = {f.column for f in p.filters}
    numeric = [c for c in target_columns(p) if c not in filter_cols]
    rows = p.row_ids
    if len(rows) == 1 and not where and not p.extreme:
        cols = [c for c in p.column_names if c != t.entity_column]
        if len(cols) != 1:
            return None
        return {"op": "lookup", "entity": t.entity_of(rows[0]), "row_id": rows[0],
                "column": cols[0], "decimals": decimals}
    if len(rows) == 2 and not where and len(numeric) == 1:
        words = set(p.tokens)
        direction = p.extreme or ("max" if words & _HIGHER else "min" if words & _LOWER else None)
        if direction is None or (words & _HIGHER and words & _LOWER):
            return None
        return {"op": "compare", "entities": [t.entity_of(r) for r in rows], "row_ids": rows,
                "column": numeric[0], "direction": direction, "decimals": decimals}
    if rows or not where:
        return None
    if p.extreme and len(numeric) == 1:
        if not _asks_for_row(p.tokens, t):  # "what is the maximum <column> ...": a value
            return {"op": "aggregate", "agg": p.extreme, "column": numeric[0], "where": where,
                    "decimals": decimals}
        return {"op": "superlative", "where": where, "column": numeric[0],
                "direction": p.extreme, "decimals": decimals}
    if p.agg == "count" and set(p.tokens) & {"different", "distinct", "unique"}:
        return None  # "how many different origins ...": no distinct count on this path
    if p.agg == "count" and not numeric:
        return {"op": "aggregate", "agg": "count", "where": where, "decimals": decimals}
    if p.agg in ("mean", "sum") and len(numeric) == 1:
        return {"op": "aggregate", "agg": p.agg, "column": numeric[0], "where": where,
                "decimals": decimals}
    return None


def _unit_after(tokens: list[str], value: Any, table: Any, col: str) -> bool:
    """Whether the query writes `value` with a unit other than `col`'s (`foreign_unit`)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return False
    for i, tok in enumerate(tokens[:-1]):
        if NUMBER.match(tok) and abs(float(tok) - x) < 1e-9 and foreign_unit(
                tokens[i + 1], table, col):
            return True
    return False


def _unread_numbers(p: QueryParse, where: list[dict]) -> list[float]:
    """Numbers of the query that no filter uses (outside entity names and column words)."""
    inside = {i for m in (*p.entities, *p.columns) for i in range(m.start, m.end)}
    used = []
    for c in where:
        try:
            used.append(float(c["value"]))
        except (TypeError, ValueError):
            pass
    return [float(tok) for i, tok in enumerate(p.tokens)
            if i not in inside and NUMBER.match(tok)
            and not any(abs(float(tok) - u) < 1e-9 for u in used)]


@dataclass
class Computed:
    """What the table computes for a question that reads as a dataset program."""

    table: Any  # data_loaders.table.Table
    program: dict
    answer: str | None  # the result as the dataset states it; None when the program cannot run
    error: str | None = None  # why it cannot run (an empty cell, a tie, no matching row)

    def describe(self) -> str:
        """The program in words and as pandas, e.g. ``lookup: df.loc[...].item()``."""
        from data_loaders.programs import ProgramError, pandas_expr

        try:
            return f"{self.program['op']}: {pandas_expr(self.table, self.program)}"
        except ProgramError:
            return self.program["op"]

    def evidence(self) -> list[str]:
        """The program and the rows it reads, for the verdict's evidence."""
        from data_loaders.programs import ProgramError, required_rows

        try:
            rows = required_rows(self.table, self.program)
        except ProgramError:
            rows = []
        return [f"program: {self.describe()}"] + [self.table.row_text(r) for r in rows[:4]]


def compute(parse: QueryParse, decimals: int = 2) -> Computed | None:
    """Run the program the question reads as (`table_program`); None when it reads as none."""
    from data_loaders.programs import ProgramError, run_program

    program = table_program(parse, decimals)
    if program is None:
        return None
    try:
        return Computed(parse.table, program, run_program(parse.table, program))
    except ProgramError as e:  # an empty cell, a tie, no row in the filter
        return Computed(parse.table, program, None, str(e))


def _mismatch(answer: str, computed: Computed, index: NameIndex, cfg: ValidationConfig) -> str:
    """Why `answer` does not state the computed result ("" when it does)."""
    program, expected = computed.program, computed.answer or ""
    got, want = parse_query(answer, index), parse_query(expected, index)
    t = computed.table
    named, wanted = set(got.row_ids), set(want.row_ids)
    if program["op"] in ("compare", "superlative"):
        if named != wanted:
            return "it does not name the row the table computes" if named else "it names no row"
    else:  # a value: the answer may name the row it is about, and no other
        allowed = wanted | ({program["row_id"]} if "row_id" in program else set())
        if named - allowed:
            return f"it names {', '.join(t.entity_of(r) for r in sorted(named - allowed))}"
    extra = [x for x in got.numbers if not any(_close(x, y, cfg) for y in want.numbers)]
    if extra:
        return f"it states {', '.join(format_value(x) for x in extra)}"
    missing = [y for y in want.numbers if not any(_close(x, y, cfg) for x in got.numbers)]
    if missing:
        return f"it does not state {', '.join(format_value(y) for y in missing)}"
    if not want.numbers and not wanted:  # a text value, e.g. a category
        if f" {normalize(expected)} " not in f" {normalize(answer)} ":
            return "it does not state the value"
        col = program.get("column")
        others = {normalize(m.value) for m in got.values if m.column == col}
        if others - {normalize(expected)}:
            return "it states another value of the column too"
    return ""


def cannot_compute_reply(computed: Computed) -> tuple[str, bool]:
    """A plain reply for a program that cannot run, and whether it states a table fact.

    An empty cell is a fact of the table ("the table has no <column> value for X"), and so is a
    tie; anything else (no row in the filter, a name that is not unique) names what was not
    understood.
    """
    t, p, err = computed.table, computed.program, computed.error or ""
    col = p.get("column")
    words = col_words(t, col) if col else ""
    if "has no value in column" in err:
        rows = [p["row_id"]] if "row_id" in p else p.get("row_ids", [])
        empty = [t.entity_of(r) for r in rows if pd.isna(t.df.iloc[r][col])]
        if empty:
            names = " or ".join(empty)
            tail = f", so {' and '.join(p['entities'])} cannot be compared" if (
                p["op"] == "compare") else ""
            return f"The table has no {words} value for {names}{tail}.", True
    if " tie on " in err:
        a, b = p["entities"]
        value = format_value(t.df.iloc[p["row_ids"][0]][col], t.units.get(col))
        return f"{a} and {b} tie on {words}: both have {value}.", True
    if "no row in the filter has a value" in err:
        return f"The table has no {words} value for any row that matches.", True
    if "no row matches the filter" in err:
        where = " and ".join(f"{c['column']} {c['op']} {c['value']}" for c in p["where"])
        return f"No row of the table matches the filter {where}.", True
    return f"The table cannot compute this ({p['op']}): {err}.", False


def check_claim(parse: QueryParse, cfg: ValidationConfig | None = None) -> ClaimResult | None:
    """Decide a claim about one entity's value, or return None when it cannot be read that way.

    Readable claims name exactly one entity and either a categorical value ("... is from <value>")
    or a column plus a number ("... has 4 <column>", "is the <column> of X 130 <unit>?").
    """
    cfg = cfg or ValidationConfig()
    if len(parse.entities) != 1:
        return None
    t = parse.table
    rid = int(parse.entities[0].value)
    row = t.df.iloc[rid]
    entity = t.entity_of(rid)
    cols = [c for c in parse.column_names if c != t.entity_column]
    numeric = set(t.columns_of("numeric"))
    claimed: Any
    filters = [f for f in parse.filters if f.op == "==" and f.column not in numeric]
    if parse.values and (not cols or parse.values[0].column in cols):
        col, claimed = parse.values[0].column, parse.values[0].value
        actual = row[col]
        true = pd.notna(actual) and normalize(actual) == normalize(claimed)
    elif filters:  # "does X have <column> 4?" (a categorical column holding numbers)
        col, claimed = filters[0].column, filters[0].value
        actual = row[col]
        true = pd.notna(actual) and normalize(format_value(actual)) == normalize(
            format_value(claimed)
        )
    else:
        if not cols or not parse.numbers:
            return None
        col, claimed = cols[0], parse.numbers[-1]
        if _unit_after(parse.tokens, claimed, t, col):  # "weighs 2 tons" of a column in lbs
            return None
        actual = row[col]
        op = _op_before(parse.tokens, claimed)
        if col in numeric and not pd.isna(actual) and op != "==":  # "is it under 2000 lbs?"
            true = bool(OPS[op](float(actual), float(claimed)))
            shown = format_value(actual, t.units.get(col))
            said = f"{_OP_SAID[op]} {format_value(claimed, t.units.get(col))}"
            words = col_words(t, col)
            answer = (f"{'Yes' if true else 'No'}: the table gives {words} {shown} for {entity}, "
                      f"which is {'' if true else 'not '}{said}.")
            return ClaimResult(true, answer, Verdict(
                supported=true, reason=f"{words} of {entity} is {shown} in the table",
                evidence=[t.row_text(rid)], checked_by="table"))
        if col in numeric and not pd.isna(actual):
            true = _close(float(actual), float(claimed), cfg)
        elif col in t.columns_of("categorical") or pd.isna(actual):  # "is the <column> of X 4?"
            true = normalize(format_value(actual)) == normalize(format_value(claimed))
        else:
            return None
    unit = t.units.get(col)
    words = col_words(t, col)
    if pd.isna(actual):  # neither true nor false: say what the table lacks
        return ClaimResult(None, f"The table has no {words} value for {entity}, so it cannot "
                           "say whether the claim is true.", Verdict(
                               supported=None,
                               reason=f"the {words} cell of {entity} is empty",
                               evidence=[t.row_text(rid)], checked_by="table"))
    shown = format_value(actual, unit)
    if true:
        answer = f"Yes: the table gives {words} {shown} for {entity}."
    else:
        answer = (
            f"No: the table gives {words} {shown} for {entity}, not {format_value(claimed, unit)}."
        )
    verdict = Verdict(
        supported=bool(true),
        reason=f"{words} of {entity} is {shown} in the table",
        evidence=[t.row_text(rid)],
        checked_by="table",
    )
    return ClaimResult(bool(true), answer, verdict)


_OP_SAID = {">": "above", "<": "below", ">=": "at least", "<=": "at most"}


def _op_before(tokens: list[str], number: float) -> str:
    """The comparison words right before `number` in a claim ("under 2000" → "<"), else "=="."""
    for i, tok in enumerate(tokens):
        try:
            if float(tok) != number:
                continue
        except ValueError:
            continue
        for op, phrases in OP_WORDS.items():
            for phrase in phrases:
                ws = phrase.split()
                if tokens[max(0, i - len(ws)) : i] == ws:
                    return op
    return "=="


def read_yes_no(answer: str) -> bool | None:
    """The yes/no a model's claim check starts with (None when it says neither)."""
    words = normalize(answer).split()
    if not words:
        return None
    if words[0] in ("yes", "true", "correct"):
        return True
    if words[0] in ("no", "false", "incorrect"):
        return False
    return None
