"""The student reads, the table computes: a request becomes a program, the program an answer.

`Programmer.read` masks the request's mentions (`data_loaders.program_text.mask_request`),
asks the student for a one-line program over the compact schema (its decoding kept to the
language's words, the table's columns and the request's slots with ``program.constrain``),
and binds it to the table.
A program that does not parse or bind gets one repair (the error goes back into the prompt),
then the fallback model if one is configured. The program's op gives the route, so the same
generation routes the request. The student's lowest token probability is its confidence: under
``program.min_confidence`` the graph asks back ("Do you mean ...?") instead of answering.

`run_reading` executes a bound program and words the reply from what it computed, saying what
was computed (entity, column, filter); the verdict is ``supported`` only for the value the
program computed, and an empty cell is said as such. `plain_failure` words what was not
understood and offers the closest names and columns.

Every reading is a plain dict in the graph state (``program``), so checkpointers store it.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel

from data_loaders.mentions import NameIndex, mention_score, normalize
from data_loaders.misreading import (
    contradictions,
    judgment_words,
    ungrounded_columns,
    unused_mentions,
)
from data_loaders.naming import plural
from data_loaders.program_text import (
    WORD_NUMBER,
    ProgramSyntaxError,
    bind,
    mask_request,
    parse_text,
    program_messages,
    program_words,
    route_of,
)
from data_loaders.programs import (
    SUMMARY_OPS,
    ProgramError,
    index_for,
    pandas_expr,
    run_program,
)
from data_loaders.prose import (
    check_prose,
    facts_text,
    mask_facts,
    prose_messages,
    summary_facts,
    unmask,
)
from data_loaders.serialize import format_value
from data_loaders.table import Table
from data_loaders.templates import col_words, entity_noun, join_words, where_with
from graphs.chat_model import from_chat_dicts
from graphs.config import ProgramConfig
from graphs.state import Verdict
from graphs.validation import Computed, cannot_compute_reply

log = logging.getLogger(__name__)

TASK_ROUTE = {"qa": "qa", "validate": "validator", "summarize": "summarizer"}
AGG_WORDS = {"mean": "average", "sum": "total", "min": "lowest", "max": "highest"}


def _generate(model: BaseChatModel, messages: list[dict], max_new: int,
              words: set[str] | None = None) -> tuple[str, float | None]:
    """The model's program line and its lowest token probability (None if it cannot say).

    With `words`, a local model's decoding keeps to them (`graphs.chat_model.WordsOnly`).
    """
    scored = getattr(model, "generate_scored", None)
    if scored is not None:
        kw: dict[str, Any] = {}
        if words is not None and "allowed_words" in inspect.signature(scored).parameters:
            kw = {"allowed_words": words, "number": WORD_NUMBER}
        text, probs = scored(from_chat_dicts(messages), max_new_tokens=max_new, **kw)
        return text, (min(probs) if probs else 0.0)
    reply = model.with_config(tags=["distillgraph:program"]).invoke(from_chat_dicts(messages))
    text = reply.text if not isinstance(reply.content, str) else reply.content
    return text.strip(), None


def describe(spec: dict, table: Table) -> str:
    """What a program computes, in words: ``the horsepower of ford pinto``."""
    op = spec["op"]
    noun = entity_noun(table)
    nouns = plural(noun)
    col = col_words(table, spec["column"]) if spec.get("column") else ""
    where = spec.get("where") or []
    among = f" with {where_with(table, where, spec.get('decimals', 2))}" if where else ""
    most = "highest" if spec.get("direction") == "max" else "lowest"
    if op == "lookup":
        return f"the {col} of {spec['entity']}"
    if op == "claim":
        cmp = {"==": "", ">": "more than ", "<": "less than ", ">=": "at least ",
               "<=": "at most "}[spec.get("cmp", "==")]
        return f"whether the {col} of {spec['entity']} is {cmp}{spec['value']}"
    if op == "compare":
        a, b = spec["entities"]
        return f"which of {a} and {b} has the {'higher' if most == 'highest' else 'lower'} {col}"
    if op == "superlative":
        return f"the {noun} with the {most} {col} among {nouns}{among or ''}".rstrip()
    if op == "aggregate":
        if spec["agg"] == "count":
            return f"the number of {nouns}{among}"
        return f"the {AGG_WORDS[spec['agg']]} {col} of {nouns}{among}"
    if op == "list":
        return f"the {nouns}{among}"
    if op == "top":
        return f"the {spec['k']} {nouns}{among} with the {most} {col}"
    if op == "distinct":
        return f"the number of different {col} values among {nouns}{among}"
    if op == "group":
        by = col_words(table, spec["by"])
        what = f"number of {nouns}" if spec["agg"] == "count" else f"{AGG_WORDS[spec['agg']]} {col}"
        return f"the {what} by {by}{(' among ' + nouns + among) if among else ''}"
    if op == "summary_row":
        return f"a summary of {spec['entity']}"
    if op == "summary_group":
        return f"a summary of the {nouns}{among}"
    return op


class Programmer:
    """Reads requests into table programs with the student (and the fallback model)."""

    def __init__(
        self,
        student: BaseChatModel,
        indexes: Sequence[NameIndex],
        config: ProgramConfig,
        fallback: Callable[[], BaseChatModel | None] | None = None,
        fallback_name: str = "fallback",
    ):
        self.student = student
        self.indexes = list(indexes)
        self.config = config
        self.fallback = fallback
        self.fallback_name = fallback_name
        self._active: bool | None = None
        self._lock = threading.Lock()

    # ---- is the student a program writer? --------------------------------------------------

    def active(self) -> bool:
        """Whether programs are used: ``mode`` on, or auto and the student passes the probe."""
        if self.config.mode != "auto":
            return self.config.mode == "always"
        if self._active is None:
            with self._lock:
                if self._active is None:
                    self._active = self._probe()
        return self._active

    def _probe(self) -> bool:
        """Ask for the program of one plain lookup made from the first table's first row."""
        index = self.indexes[0] if self.indexes else None
        if index is None or not hasattr(self.student, "generate_scored"):
            return False  # auto probes local students only; set mode: always for an endpoint
        t = index.table
        numeric = [c for c in t.columns_of("numeric") if c != t.entity_column]
        if t.entity_column is None or not numeric or t.df.empty:
            return False
        for row in range(min(len(t.df), 20)):
            name = t.entity_of(row)
            if normalize(name) in index.names and normalize(name) not in index.shared:
                break
        else:
            return False
        col = numeric[0]
        masked = mask_request(f"What is the {col_words(t, col)} of {name}?", index)
        try:
            text, _ = _generate(self.student, program_messages(t, masked), 24)
            spec = bind(parse_text(text), masked, index)
        except ProgramError as e:
            log.info("program probe: the student does not write programs (%s)", e)
            return False
        except Exception as e:  # a model that cannot generate at all
            log.info("program probe failed: %s", e)
            return False
        ok = spec.get("op") == "lookup" and spec.get("column") == col and spec["row_id"] == row
        log.info("program probe: %s", "passed" if ok else f"wrong program {text!r}")
        return ok

    # ---- reading ---------------------------------------------------------------------------

    def pick_index(self, query: str) -> NameIndex:
        """The table the request is about: the most entity, value and column mentions."""
        tokens = normalize(query).split()
        return max(self.indexes, key=lambda ix: mention_score(ix.find(tokens, query)))

    def read(self, query: str) -> dict[str, Any]:
        """The reading of one request: program text, bound spec or error, confidence, route.

        Returns:
            A dict with ``table``, ``masked``, ``text``, ``spec`` (None when it failed),
            ``error``, ``confidence``, ``by`` (who wrote it), ``attempts`` and ``task``.
        """
        index = self.pick_index(query)
        t = index.table
        masked = mask_request(query, index)
        out: dict[str, Any] = {"table": t.name, "masked": masked.text, "attempts": 0,
                               "spec": None, "error": None, "task": None, "confidence": None,
                               "judgment": judgment_words(masked)}
        models: list[tuple[str, BaseChatModel]] = [("student", self.student)]
        tries = 2 if self.config.repair else 1
        text, error = "", None
        words = program_words(t, masked) if self.config.constrain else None
        for who, model in models:
            for attempt in range(tries):
                msgs = program_messages(t, masked, error, text) if attempt else program_messages(
                    t, masked
                )
                text, conf = _generate(model, msgs, self.config.max_new_tokens, words)
                out["attempts"] += 1
                out.update(text=text, confidence=conf, by=who)
                try:
                    parsed = parse_text(text)
                    out["task"] = TASK_ROUTE[route_of(parsed.op)]
                    out["spec"] = bind(parsed, masked, index)
                    out["error"] = None
                    left = unused_mentions(text, masked, t)
                    clash = contradictions(text, masked, t)
                    unnamed = ungrounded_columns(text, masked, t)
                    out["unused"] = left
                    out["contradicts"] = clash
                    out["unnamed"] = unnamed
                    if not (left or clash or unnamed) or attempt == tries - 1:
                        return out  # still misread after the repair: the graph asks back
                    error = (f"the program leaves out {', '.join(left)} of the request" if left
                             else clash[0] if clash
                             else f"the request never names {', '.join(unnamed)}")
                    continue
                except ProgramSyntaxError as e:
                    error = str(e)
                except ProgramError as e:
                    error = str(e)
                out["error"] = error
            fb = self.fallback() if (self.fallback and who == "student") else None
            if fb is not None:
                models.append((f"fallback:{self.fallback_name}", fb))
        return out

    def write_prose(self, spec: dict, index: NameIndex) -> dict[str, Any]:
        """The student's prose for a summary program, checked against the table's facts.

        The student sees the facts as slots (`data_loaders.prose.mask_facts`) and writes prose
        over them; the table fills the slots in, and the filled-in prose is checked.

        Returns ``{"text", "why", "facts"}``: ``why`` is None when every number, name and
        value in the prose is one of the facts (`data_loaders.prose.check_prose`), else why the
        prose may not be shown. One try: prose that fails is not shown, the table's own
        sentences are.
        """
        table = index.table
        try:
            facts = summary_facts(table, spec)
        except ProgramError as e:
            return {"text": "", "why": str(e), "facts": []}
        lines = facts_text(table, facts).splitlines()
        try:
            text, _ = _generate(self.student, prose_messages(table, facts),
                                self.config.prose_max_new_tokens)
        except Exception as e:  # a model that cannot generate: the table's sentences stand
            log.info("summary prose failed: %s", e)
            return {"text": "", "why": f"the student wrote no prose ({e})", "facts": lines}
        text = unmask(text.strip(), mask_facts(facts)[1])
        return {"text": text, "why": check_prose(text, facts, table, index), "facts": lines}

    def index_of(self, table_name: str) -> NameIndex:
        """The `NameIndex` of a table by name."""
        for ix in self.indexes:
            if ix.table.name == table_name:
                return ix
        raise KeyError(table_name)


# --------------------------------------------------------------------------------------------
# Running a reading and wording the reply
# --------------------------------------------------------------------------------------------


def _evidence(reading: dict, table: Table) -> list[str]:
    spec = reading["spec"]
    lines = [f"program: {reading['text']}"]
    try:
        lines.append(f"pandas: {pandas_expr(table, spec)}")
    except (KeyError, ProgramError):
        pass
    return lines


def _value_of(table: Table, row: int, col: str, decimals: int) -> str:
    return format_value(index_for(table).cell(row, col), table.units.get(col), decimals)


def _word(spec: dict, answer: str, table: Table) -> str:
    """The reply sentence for a computed answer."""
    op, d = spec["op"], spec.get("decimals", 2)
    what = describe(spec, table)
    if op == "lookup":
        return f"The {what.removeprefix('the ')} is {answer}."
    if op == "claim":
        actual = _value_of(table, spec["row_id"], spec["column"], d)
        col = col_words(table, spec["column"])
        if answer == "yes":
            return f"Yes: the {col} of {spec['entity']} is {actual}."
        return f"No: the {col} of {spec['entity']} is {actual}, so the claim ({spec['value']}) " \
               "does not hold."
    if op == "compare":
        (a, b), (ra, rb) = spec["entities"], spec["row_ids"]
        col = spec["column"]
        return (f"{answer} has the {'higher' if spec['direction'] == 'max' else 'lower'} "
                f"{col_words(table, col)} ({a}: {_value_of(table, ra, col, d)}, "
                f"{b}: {_value_of(table, rb, col, d)}).")
    if op == "superlative":
        row = index_for(table).entity_row(answer)
        return (f"{answer} has the {'highest' if spec['direction'] == 'max' else 'lowest'} "
                f"{col_words(table, spec['column'])} "
                f"({_value_of(table, row, spec['column'], d)}){_among(spec, table)}.")
    if op in SUMMARY_OPS:
        return answer
    return f"{what[0].upper()}{what[1:]}: {answer}."


def _among(spec: dict, table: Table) -> str:
    where = spec.get("where") or []
    if not where:
        return f" among all {plural(entity_noun(table))}"
    nouns = plural(entity_noun(table))
    return f" among {nouns} with {where_with(table, where, spec.get('decimals', 2))}"


def run_reading(reading: dict, table: Table) -> dict[str, Any]:
    """Execute a bound reading; the node output (answer, verdict, answered_by).

    The verdict is supported exactly when the reply states what the program computed, or a
    fact of the table that stops it (an empty cell, a tie, no matching row), worded by
    `graphs.validation.cannot_compute_reply` as on the graph's other path.
    """
    spec = reading["spec"]
    what = describe(spec, table)
    evidence = _evidence(reading, table)
    try:
        answer = run_program(table, spec)
    except ProgramError as e:
        msg = str(e)
        reply, is_fact = cannot_compute_reply(Computed(table, spec, None, msg))
        if is_fact:  # an empty cell, a tie, no matching row: facts of the table
            return {
                "answer": reply,
                "verdict": Verdict(supported=True, reason=f"computed by the table: {what}: {msg}",
                                   evidence=evidence, checked_by="table"),
                "answered_by": "program",
            }
        return {
            "answer": f"I read this as {what}, but the table cannot compute it: {msg}.",
            "verdict": Verdict(supported=False, reason=f"the program did not run: {msg}",
                               evidence=evidence, checked_by="table"),
            "answered_by": "program (failed)",
        }
    if reading.get("judgment"):  # "what is unusual about X": facts, not the answer
        words = join_words([f'"{w}"' for w in reading["judgment"]])
        return {
            "answer": f"The table holds facts, not reasons or judgments ({words}). What it "
                      f"computes: {_word(spec, answer, table)}",
            "verdict": Verdict(
                supported=None,
                reason=f"the request asks for a reason or judgment ({words}); the facts shown "
                       "are computed by the table but do not answer it",
                evidence=evidence, checked_by="rows"),
            "answered_by": "program (facts for a free question)",
        }
    return {
        "answer": _word(spec, answer, table),
        "verdict": Verdict(supported=True if spec["op"] != "claim" else answer == "yes",
                           reason=f"computed by the table from the student's program: {what}",
                           evidence=evidence, checked_by="table"),
        "answered_by": "program",
    }


def ask_back(reading: dict, table: Table) -> dict[str, Any]:
    """The reply when the student is unsure of its program: ask before answering."""
    what = describe(reading["spec"], table)
    if reading.get("unused"):
        why = f"its program leaves out {', '.join(reading['unused'])} of the request"
    elif reading.get("contradicts"):
        why = reading["contradicts"][0]
    elif reading.get("unnamed"):
        why = f"the request never names {', '.join(reading['unnamed'])}"
    else:
        why = f"its lowest token probability was {reading['confidence']:.2f}"
    return {
        "answer": f"Do you mean {what}? Reply 'yes' to get it, or rephrase the question.",
        "verdict": Verdict(
            supported=None,
            reason=f"the student was unsure of its reading ({why}); nothing was answered",
            evidence=_evidence(reading, table),
            checked_by="model",
        ),
        "answered_by": "program (asked back)",
    }


def plain_failure(reading: dict, index: NameIndex, query: str) -> dict[str, Any]:
    """The reply when no program could be read: what was not understood, and close names."""
    t = index.table
    tokens = normalize(query).split()
    words = [w for w in tokens if len(w) > 3]
    col_words_all = {normalize(col_words(t, c)): c for c in t.columns if c != t.entity_column}
    close_cols = []
    for w in words:
        for hit in difflib.get_close_matches(w, list(col_words_all), n=1, cutoff=0.75):
            close_cols.append(col_words(t, col_words_all[hit]))
    names = [k for k, v in index.names.items() if v[0] == "entity"]
    close_names = []
    text = " ".join(tokens)
    for hit in difflib.get_close_matches(text, names, n=3, cutoff=0.0)[:3]:
        close_names.append(t.entity_of(int(index.names[hit][2])))
    suggestion = []
    if close_cols:
        suggestion.append(f"columns like {join_words(list(dict.fromkeys(close_cols)))}")
    if close_names and not reading.get("spec"):
        suggestion.append(f"{plural(entity_noun(t))} like {join_words(close_names)}")
    hint = f" Did you mean {' or '.join(suggestion)}?" if suggestion else ""
    err = reading.get("error") or "no program"
    known = join_words([col_words(t, c) for c in t.columns if c != t.entity_column])
    return {
        "answer": f"I could not read this as a question about the table {t.name} ({err})."
        f"{hint} Its columns are {known}.",
        "verdict": Verdict(supported=False, reason=f"not understood: {err}",
                           evidence=[f"program: {reading.get('text', '')}"] if reading.get("text")
                           else [], checked_by="table"),
        "answered_by": "none",
    }
