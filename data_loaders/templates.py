"""Question phrasings: the template catalogue and the words that fill its slots.

Templates are plain format strings with named slots, grouped by question type; a template's id is
``"<qtype>/<n>"`` (``"lookup/0"``, ``"aggregate/7"``) and never changes meaning once published,
because `split.holdout_templates` and dataset ids refer to it. Nothing here knows a domain: the
slots are filled from a `Table`'s typed columns, aliases and units, so the same templates phrase
questions about cars, airports or anything else.

Slots: ``{entity}``, ``{a}``/``{b}`` (two entities), ``{col}`` (column words), ``{noun}`` /
``{nouns}`` (what one row is, e.g. "car"/"cars"), ``{value}`` (a formatted value with its unit),
``{more}`` ("higher"/"lower"), ``{most}`` ("highest"/"lowest"), ``{where_with}`` ("origin
Japan and model year 1976"), ``{where_is}`` ("origin is Japan and model year is 1976") and
``{where_adj}`` ("Japan 1976 model year", only for filters of category values). Templates are
only ever appended to a type's list, so published ids keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from data_loaders.naming import row_noun
from data_loaders.serialize import format_value
from data_loaders.table import Table


@dataclass(frozen=True)
class Template:
    """One phrasing of one question type.

    Attributes:
        id: Stable id ``"<qtype>/<n>"``.
        qtype: Question type (a key of `schema.TASK_OF_TYPE`).
        text: Format string over the slots listed in the module docstring.
        agg: For ``aggregate`` and ``group`` templates, the aggregate they ask for
            (count/mean/sum/min/max); for ``claim`` templates, the comparison they state
            (``==``, ``>``, ``<``; None means ``==``).
    """

    id: str
    qtype: str
    text: str
    agg: str | None = None


_PHRASINGS: dict[str, list[str | tuple[str, str]]] = {
    "lookup": [
        "What is the {col} of {entity}?",
        "What {col} does {entity} have?",
        "Tell me the {col} of {entity}.",
        "{entity}: what is its {col}?",
        "{entity} {col}?",
        "{col} for {entity}?",
        "How much {col} does {entity} have?",
        "Give me the {col} of {entity}.",
        "what's {entity}'s {col}",
        "{col} of {entity}?",
        "i need the {col} for {entity}",
        "look up the {col} of {entity}",
        "how about the {col} of {entity}?",
    ],
    "compare": [
        "Which has the {more} {col}: {a} or {b}?",
        "Between {a} and {b}, which one has a {more} {col}?",
        "Does {a} or {b} have the {more} {col}?",
        "Which {noun} has the {more} {col}, {a} or {b}?",
        "{a} or {b}: which one has the {more} {col}?",
        "Compare {a} and {b}: which has the {more} {col}?",
        "{a} vs {b}, {more} {col}?",
        "which one has more {col}, {a} or {b}?",
        "who has the {more} {col}: {a} or {b}?",
        "{a} or {b}, which is {more} on {col}?",
    ],
    "superlative": [
        "Which {noun} with {where_with} has the {most} {col}?",
        "Among {nouns} whose {where_is}, which has the {most} {col}?",
        "Of all {nouns} with {where_with}, which one has the {most} {col}?",
        "{nouns} with {where_with}: which has the {most} {col}?",
        "The {noun} with the {most} {col} among {nouns} with {where_with}?",
        "which {where_adj} {noun} has the {most} {col}?",
        "{most} {col} among {where_adj} {nouns}?",
        "the {where_adj} {noun} with the {most} {col}",
    ],
    "aggregate": [
        ("count", "How many {nouns} have {where_with}?"),
        ("count", "Count the {nouns} whose {where_is}."),
        ("count", "What is the number of {nouns} with {where_with}?"),
        ("mean", "What is the average {col} of {nouns} with {where_with}?"),
        ("mean", "Among {nouns} whose {where_is}, what is the mean {col}?"),
        ("sum", "What is the total {col} of {nouns} with {where_with}?"),
        ("sum", "Add up the {col} of all {nouns} whose {where_is}."),
        ("min", "What is the lowest {col} among {nouns} with {where_with}?"),
        ("min", "For {nouns} whose {where_is}, what is the minimum {col}?"),
        ("max", "What is the highest {col} among {nouns} with {where_with}?"),
        ("max", "For {nouns} whose {where_is}, what is the maximum {col}?"),
        ("count", "Number of {nouns} with {where_with}?"),
        ("mean", "Average {col} for {nouns} with {where_with}?"),
        ("sum", "Sum of the {col} of {nouns} with {where_with}?"),
        ("min", "Smallest {col} among {nouns} with {where_with}?"),
        ("max", "Largest {col} among {nouns} whose {where_is}?"),
        ("sum", "total {col} of the {where_adj} {nouns}"),
        ("min", "min {col} of {nouns} with {where_with}"),
        ("mean", "mean {col} of {where_adj} {nouns}?"),
    ],
    "claim": [
        "Is the {col} of {entity} {value}?",
        "Answer yes or no: {entity} has a {col} of {value}.",
        "Does {entity} have {col} {value}?",
        "Claim: the {col} of {entity} is {value}. Is this correct?",
        "Is it true that {entity} has a {col} of {value}?",
        "{entity} has {col} {value}, right?",
        ("==", "True or false: the {col} of {entity} is {value}."),
        (">", "Is the {col} of {entity} above {value}?"),
        ("<", "Does {entity} have a {col} below {value}?"),
        (">", "{entity} has more than {value} {col}, true?"),
        "{entity} has a {col} of {value}, correct?",
        "is {entity}'s {col} {value}?",
        (">", "{entity}'s {col} is over {value}, right?"),
        ("<", "is the {col} of {entity} under {value}?"),
        ("<", "{entity} has less than {value} {col}, yes?"),
    ],
    "summary_row": [
        "Summarize the row for {entity}.",
        "Describe {entity} in one sentence.",
        "Give a short summary of {entity}.",
        "Tell me about {entity}.",
        "What do we know about {entity}?",
        "info on {entity}",
        "what can you tell me about {entity}?",
        "{entity} overview",
    ],
    "summary_group": [
        "Summarize the {nouns} with {where_with}.",
        "Describe the {nouns} whose {where_is}.",
        "Give an overview of the {nouns} with {where_with}.",
        "Tell me about the {nouns} with {where_with}.",
    ],
    # Row-set questions: their answers are computed by the program (lists, rankings, groups)
    # and are not meant to be read off a context.
    "list": [
        "List the {nouns} with {where_with}.",
        "Which {nouns} have {where_with}?",
        "Name all {nouns} whose {where_is}.",
        "Show me the {nouns} with {where_with}.",
        "show all {where_adj} {nouns}",
    ],
    "top": [
        "What are the {k} {nouns} with the {most} {col}?",
        "Which {k} {nouns} have the {most} {col}?",
        "Among {nouns} with {where_with}, which {k} have the {most} {col}?",
        "{k} {nouns} with the {most} {col}?",
        "top {k} {nouns} by {col}",
        "top {k} {where_adj} {nouns} by {col}",
    ],
    "distinct": [
        "How many different {col} values are there?",
        "How many distinct {col} values do the {nouns} have?",
        "How many different {col} values do {nouns} with {where_with} have?",
        "how many unique {col} values are there?",
        "number of distinct {col} values",
    ],
    "group": [
        ("mean", "What is the average {col} for each {by}?"),
        ("mean", "Mean {col} by {by}?"),
        ("max", "What is the highest {col} for each {by}?"),
        ("min", "What is the lowest {col} per {by}?"),
        ("count", "How many {nouns} are there for each {by}?"),
        ("count", "Count the {nouns} by {by}."),
        ("mean", "Average {col} per {by}?"),
        ("sum", "Total {col} by {by}?"),
        ("count", "Number of {nouns} per {by}?"),
        ("mean", "avg {col} per {by}"),
        ("sum", "{col} total per {by}"),
    ],
}


def _build_catalogue() -> dict[str, Template]:
    out: dict[str, Template] = {}
    for qtype, phrasings in _PHRASINGS.items():
        for n, p in enumerate(phrasings):
            agg, text = p if isinstance(p, tuple) else (None, p)
            tid = f"{qtype}/{n}"
            out[tid] = Template(tid, qtype, text, agg)
    return out


TEMPLATES: dict[str, Template] = _build_catalogue()
"""Every template, keyed by id, in catalogue order."""


def templates_of(qtype: str, exclude: set[str] | frozenset[str] = frozenset()) -> list[Template]:
    """The templates of one question type, minus the ids in `exclude`."""
    return [t for t in TEMPLATES.values() if t.qtype == qtype and t.id not in exclude]


def col_words(table: Table, col: str) -> str:
    """How questions name a column: its alias if configured, else the name with ``_`` → space."""
    alias = table.display.get(col)
    if alias and alias != col:
        return alias
    return col.replace("_", " ").strip()


def entity_noun(table: Table, configured: str | None = None) -> str:
    """What one row of `table` is called in questions.

    `configured` wins, then the noun chosen when the table was loaded (``table.entity_noun``
    in the config, else read from the table name: see `data_loaders.describe`); a table built
    without one reads its name (``cars`` → ``car``, see `naming.row_noun`), else ``entry``.
    """
    return configured or table.noun or row_noun(table.name) or "entry"


def value_words(table: Table, col: str, value: Any, decimals: int) -> str:
    """A value as questions and answers show it: rounded, with the column's unit."""
    return format_value(value, table.units.get(col), decimals)


FILTER_OP_WORDS = {  # a filter comparison in words ("above 100 hp")
    "==": "", ">": "above ", "<": "below ", ">=": "at least ", "<=": "at most "}


def where_with(table: Table, where: list[dict], decimals: int) -> str:
    """A filter as a noun phrase: ``origin Japan and horsepower above 100 hp``."""
    parts = [
        f"{col_words(table, c['column'])} {FILTER_OP_WORDS[c['op']]}"
        f"{value_words(table, c['column'], c['value'], decimals)}"
        for c in where
    ]
    return " and ".join(parts)


def where_is(table: Table, where: list[dict], decimals: int) -> str:
    """A filter as a clause: ``origin is Japan and horsepower is above 100 hp``."""
    parts = [
        f"{col_words(table, c['column'])} is {FILTER_OP_WORDS[c['op']]}"
        f"{value_words(table, c['column'], c['value'], decimals)}"
        for c in where
    ]
    return " and ".join(parts)


def where_adj(table: Table, where: list[dict], decimals: int) -> str | None:
    """A filter of category values as words before the noun.

    ``Japan`` ("Japan cars"), ``6 cylinders``; None when a condition is a threshold (it has no
    such form).
    """
    parts = []
    for c in where:
        if c["op"] != "==":
            return None
        v = value_words(table, c["column"], c["value"], decimals)
        if isinstance(c["value"], str) and not any(ch.isdigit() for ch in v):
            parts.append(v)
        else:  # a number names nothing on its own: "6 cylinders", "1976 model year"
            parts.append(f"{v} {col_words(table, c['column'])}")
    return " ".join(parts) if parts else None


def join_words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
