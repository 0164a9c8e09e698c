"""The program language the student writes: masked requests in, one-line programs out.

The student's job is to understand a request; the table's job is to compute. So the student
never copies a name or a number: `mask_request` replaces every mention the table's
`NameIndex` finds with a slot (entities ``E1``, ``E2``; categorical values ``C1`` with their
column; numbers ``V1``), and the program refers to the slots::

    what is the horsepower of E1              -> lookup E1 Horsepower
    which is heavier, E1 or E2                -> compare E1 E2 Weight_in_lbs max
    which C1 car gets the best gas mileage    -> superlative Miles_per_Gallon max where C1
    average horsepower of cars with cylinders V1  -> aggregate mean Horsepower where Cylinders == V1
    E1 has V1 cylinders right                 -> claim E1 Cylinders == V1
    tell me about E1                          -> summary_row E1
    top V1 heaviest cars                      -> top V1 Weight_in_lbs max
    mean horsepower by origin                 -> group mean Horsepower by Origin

Grammar (one line, tokens separated by spaces)::

    lookup E COL | claim E COL CMP S | compare E E COL DIR | summary_row E
    superlative COL DIR [WHERE] | aggregate AGG [COL] [WHERE] | summary_group WHERE
    list [WHERE] | top K COL DIR [WHERE] | distinct COL [WHERE] | group AGG [COL] by COL [WHERE]
    WHERE := where COND (and COND)* ;  COND := C | COL CMP V
    CMP := == > < >= <= ;  DIR := max | min ;  AGG := count mean sum min max ;  K := V | 1..100

COL is a column identifier from the schema (`column_id`). `program_messages` builds the prompt
(the compact schema, the mention slots and the masked request); `to_text` writes a dataset
program (`data_loaders.programs`) in this language, so ``prepare`` can store the training
target; `parse_text` reads the student's line and `bind` turns it back into a dataset program
that `run_program` executes, raising `ProgramError` with a message that names what is wrong
(the graph feeds it back to the student for one repair). `route_of` derives the agent's route
from the op, so the same generation routes the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_loaders.mentions import NUMBER, NameIndex, normalize
from data_loaders.programs import AGGS, OPS, ProgramError
from data_loaders.serialize import format_value
from data_loaders.table import Table
from data_loaders.templates import col_words, entity_noun

PROGRAM_SYSTEM = (
    "Write the program that answers the request over the table. Use only the columns listed "
    "and the mention slots (E entities, C category values, V numbers). Reply with the program "
    "only."
)
OP_ROUTE = {
    "lookup": "qa",
    "compare": "qa",
    "superlative": "qa",
    "aggregate": "qa",
    "list": "qa",
    "top": "qa",
    "distinct": "qa",
    "group": "qa",
    "claim": "validate",
    "summary_row": "summarize",
    "summary_group": "summarize",
}
DIRECTIONS = ("max", "min")
_SLOT = re.compile(r"^([ECV])(\d+)$")
_GLUED_UNIT = re.compile(r"^(\d+(?:\.\d+)?)([a-z]+)$")  # "50mm"; never "f250" or "4v9"
_NEGATIVE = re.compile(r"(?<![\w.])-(\d+(?:\.\d+)?)\b")


class ProgramSyntaxError(ProgramError):
    """The student's line is not a program of this language."""


# --------------------------------------------------------------------------------------------
# Mentions -> slots
# --------------------------------------------------------------------------------------------


@dataclass
class Slot:
    """One mention of the request, replaced by its slot name in the masked text."""

    name: str  # "E1", "C2", "V1"
    kind: str  # "entity", "value" or "number"
    column: str | None  # the entity column, the value's column, None for numbers
    value: Any  # row id (entity), cell value (value), float (number)
    text: str  # the normalized words of the request


@dataclass
class Masked:
    """A request with its mentions replaced by slots."""

    text: str
    slots: dict[str, Slot] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Slot]:
        """The slots of one kind, in request order."""
        return [s for s in self.slots.values() if s.kind == kind]


def mask_request(request: str, index: NameIndex) -> Masked:
    """Replace the entity, categorical-value and number mentions of `request` with slots.

    The same entity, value or number mentioned twice gets the same slot. Column words stay.
    A number glued to a word ("50mm", "5kg") is a number slot followed by that word.
    """
    tokens = normalize(request).split()
    # normalize drops '-': remember which numbers the request writes as negative ("-90.67").
    negative = [m.group(1) for m in _NEGATIVE.finditer(request.replace(",", ""))]
    matches = [m for m in index.find(tokens, request) if m.kind in ("entity", "value")]
    by_start = {m.start: m for m in matches}
    out: list[str] = []
    slots: dict[str, Slot] = {}
    seen: dict[tuple, str] = {}
    counts = {"E": 0, "C": 0, "V": 0}

    def slot(prefix: str, kind: str, column: str | None, value: Any, text: str) -> str:
        if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar -> Python
            value = value.item()
        key = (kind, column, value if kind != "number" else float(value))
        if key not in seen:
            counts[prefix] += 1
            name = f"{prefix}{counts[prefix]}"
            seen[key] = name
            slots[name] = Slot(name, kind, column, value, text)
        return seen[key]

    i = 0
    while i < len(tokens):
        m = by_start.get(i)
        if m is not None:
            prefix = "E" if m.kind == "entity" else "C"
            out.append(slot(prefix, m.kind, m.column, m.value, m.text))
            i = m.end
            continue
        tok = tokens[i]
        glued = _GLUED_UNIT.match(tok)
        if glued:  # "50mm", "5kg": the number, then its unit as a word
            value = float(glued.group(1))
            out.append(slot("V", "number", None, value, glued.group(1)))
            out.append(glued.group(2))
            i += 1
            continue
        if NUMBER.match(tok):
            value = float(tok)
            if negative and negative[0] == tok:
                negative.pop(0)
                value = -value
            out.append(slot("V", "number", None, value, tok))
        else:
            out.append(tok)
        i += 1
    return Masked(" ".join(out), slots)


# --------------------------------------------------------------------------------------------
# The prompt
# --------------------------------------------------------------------------------------------


def column_id(col: str) -> str:
    """A column's identifier in programs: its name with runs of non-word characters as ``_``."""
    return re.sub(r"\W+", "_", str(col)).strip("_") or "col"


def program_words(table: Table, masked: Masked) -> set[str]:
    """Every word a program over `table` for this request may use (constrained decoding).

    The ops, aggregates, directions, comparisons and joining words of the language, the
    table's own column ids and the request's own slots; a row count of ``top`` may also be a
    plain number (`WORD_NUMBER`).
    """
    words = set(OP_ROUTE) | set(AGGS) | set(DIRECTIONS) | set(OPS) | {"where", "and", "by"}
    words |= {column_id(c) for c in _program_columns(table)}
    return words | set(masked.slots)


WORD_NUMBER = re.compile(r"^\d{1,3}$")  # a plain row count ("top 3 ...")


def _program_columns(table: Table) -> list[str]:
    return [c for c in table.columns if c != table.entity_column]


def schema_text(table: Table) -> str:
    """The compact schema: row noun, then each column's id, words and unit, categories marked.

    ``table cars, one row per car: Miles_per_Gallon (fuel economy, mpg); Cylinders; ...;
    Origin (category)``
    """
    cats = set(table.columns_of("categorical"))
    parts = []
    for col in _program_columns(table):
        cid = column_id(col)
        notes = []
        words = col_words(table, col)
        if normalize(words) != normalize(cid.replace("_", " ")):
            notes.append(words)
        unit = table.units.get(col)
        if unit:
            notes.append(unit)
        if col in cats:
            notes.append("category")
        parts.append(f"{cid} ({', '.join(notes)})" if notes else cid)
    noun = entity_noun(table)
    return f"table {table.name}, one row per {noun}: " + "; ".join(parts)


def mentions_text(masked: Masked, table: Table) -> str:
    """``E1 car, C1 Origin, V1 number`` (``none`` without mentions)."""
    noun = entity_noun(table)
    parts = []
    for s in masked.slots.values():
        if s.kind == "entity":
            parts.append(f"{s.name} {noun}")
        elif s.kind == "value":
            parts.append(f"{s.name} {column_id(s.column)}")
        else:
            parts.append(f"{s.name} number")
    return ", ".join(parts) or "none"


def program_messages(
    table: Table, masked: Masked, error: str | None = None, previous: str | None = None
) -> list[dict[str, str]]:
    """The chat messages asking for a program (a repair prompt with `error` and `previous`)."""
    user = (
        f"{schema_text(table)}\nmentions: {mentions_text(masked, table)}\n"
        f"request: {masked.text}"
    )
    if error is not None:
        user += f"\nyour program: {previous}\nerror: {error}\nwrite a corrected program"
    return [{"role": "system", "content": PROGRAM_SYSTEM}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------------------------
# Dataset program -> text (training targets)
# --------------------------------------------------------------------------------------------


def _entity_slot(masked: Masked, row: int) -> str | None:
    for s in masked.of_kind("entity"):
        if int(s.value) == int(row):
            return s.name
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal values: numbers as the request shows them (to 2 decimals, the shown rounding)."""
    try:
        return abs(float(a) - float(b)) <= 0.005 + 1e-9
    except (TypeError, ValueError):
        return normalize(str(a)) == normalize(str(b))


def _value_ref(masked: Masked, column: str, value: Any) -> str | None:
    """The slot a condition's value is written with: a category slot of that column, or a number."""
    for s in masked.of_kind("value"):
        if s.column == column and _same(s.value, value):
            return s.name
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        for s in masked.of_kind("number"):
            if _same(s.value, value):
                return s.name
    return None


def _where_text(masked: Masked, where: list[dict]) -> str | None:
    conds = []
    for c in where:
        ref = _value_ref(masked, c["column"], c["value"])
        if ref is None:
            return None
        if ref.startswith("C") and c["op"] == "==":
            conds.append(ref)
        elif ref.startswith("V"):
            conds.append(f"{column_id(c['column'])} {c['op']} {ref}")
        else:
            return None
    return ("where " + " and ".join(conds)) if conds else ""


def to_text(program: dict, masked: Masked) -> str | None:
    """`program` in the program language over `masked`'s slots; None when a mention is missing.

    None means the request does not show every name or number the program needs as a mention
    the table's index finds (the pair cannot teach the program language).
    """
    op = program["op"]
    col = program.get("column")
    c = column_id(col) if col else None

    def join(*parts: str | None) -> str:
        return " ".join(p for p in parts if p)

    if op in ("lookup", "claim", "summary_row"):
        e = _entity_slot(masked, program["row_id"])
        if e is None:
            return None
        if op == "lookup":
            return f"lookup {e} {c}"
        if op == "summary_row":
            return f"summary_row {e}"
        ref = _value_ref(masked, col, program.get("raw"))
        if ref is None:
            return None
        return f"claim {e} {c} {program.get('cmp', '==')} {ref}"
    if op == "compare":
        es = [_entity_slot(masked, r) for r in program["row_ids"]]
        if None in es or es[0] == es[1]:
            return None
        return f"compare {es[0]} {es[1]} {c} {program['direction']}"
    where = _where_text(masked, program.get("where") or [])
    if where is None:
        return None
    if op == "superlative":
        return join("superlative", c, program["direction"], where)
    if op == "aggregate":
        return join("aggregate", program["agg"], c if program["agg"] != "count" else None, where)
    if op == "summary_group":
        return join("summary_group", where) if where else None
    if op == "list":
        return join("list", where)
    if op == "distinct":
        return join("distinct", c, where)
    if op == "group":
        by = column_id(program["by"])
        return join("group", program["agg"], c if program["agg"] != "count" else None, "by", by,
                    where)
    if op == "top":
        k = _value_ref(masked, "", program["k"]) or str(program["k"])
        return join("top", k, c, program["direction"], where)
    return None


# --------------------------------------------------------------------------------------------
# Text -> dataset program (serving)
# --------------------------------------------------------------------------------------------


@dataclass
class Parsed:
    """A syntactically valid program line, before its slots and columns are resolved."""

    op: str
    entities: list[str] = field(default_factory=list)
    column: str | None = None
    by: str | None = None
    direction: str | None = None
    agg: str | None = None
    cmp: str | None = None
    value: str | None = None  # the claimed value's slot
    k: str | None = None
    where: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    text: str = ""


class _Tokens:
    def __init__(self, text: str):
        self.items = text.split()
        self.i = 0

    def next(self, what: str) -> str:
        if self.i >= len(self.items):
            raise ProgramSyntaxError(f"the program ends where {what} was expected")
        tok = self.items[self.i]
        self.i += 1
        return tok

    def peek(self) -> str | None:
        return self.items[self.i] if self.i < len(self.items) else None

    def done(self) -> bool:
        return self.i >= len(self.items)


def _expect(tok: str, allowed: tuple[str, ...], what: str) -> str:
    if tok not in allowed:
        raise ProgramSyntaxError(f"{tok!r} is not {what}; use one of {', '.join(allowed)}")
    return tok


def _slot_token(tok: str, kinds: str, what: str) -> str:
    m = _SLOT.match(tok)
    if m is None or m.group(1) not in kinds:
        raise ProgramSyntaxError(f"{tok!r} is not {what}")
    return tok


def parse_text(text: str) -> Parsed:
    """Read one program line (the first line of the model's reply); `ProgramSyntaxError` if bad."""
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    if not line:
        raise ProgramSyntaxError("the program is empty")
    t = _Tokens(line)
    op = t.next("an op")
    if op not in OP_ROUTE:
        raise ProgramSyntaxError(f"unknown op {op!r}; use one of {', '.join(OP_ROUTE)}")
    p = Parsed(op=op, text=line)
    if op in ("lookup", "claim", "summary_row"):
        p.entities = [_slot_token(t.next("an entity"), "E", "an entity slot (E1, E2, ...)")]
        if op != "summary_row":
            p.column = t.next("a column")
        if op == "claim":
            p.cmp = _expect(t.next("a comparison"), tuple(OPS), "a comparison")
            p.value = _slot_token(t.next("a value"), "CV", "a value slot (C1, V1, ...)")
    elif op == "compare":
        p.entities = [_slot_token(t.next("an entity"), "E", "an entity slot") for _ in range(2)]
        p.column = t.next("a column")
        p.direction = _expect(t.next("max or min"), DIRECTIONS, "a direction")
    elif op == "superlative":
        p.column = t.next("a column")
        p.direction = _expect(t.next("max or min"), DIRECTIONS, "a direction")
    elif op in ("aggregate", "group"):
        p.agg = _expect(t.next("an aggregate"), AGGS, "an aggregate")
        nxt = t.peek()
        if p.agg != "count" and nxt not in (None, "where", "by"):
            p.column = t.next("a column")
        if op == "group":
            _expect(t.next("'by'"), ("by",), "'by'")
            p.by = t.next("a column to group by")
    elif op == "top":
        p.k = t.next("how many rows")
        p.column = t.next("a column")
        p.direction = _expect(t.next("max or min"), DIRECTIONS, "a direction")
    elif op == "distinct":
        p.column = t.next("a column")
    if not t.done():
        _expect(t.next("where"), ("where",), "'where' (or the end of the program)")
        while True:
            tok = t.next("a condition")
            if _SLOT.match(tok) and tok.startswith("C"):
                p.where.append((tok, None, None))
            else:
                cmp = _expect(t.next("a comparison"), tuple(OPS), "a comparison")
                val = _slot_token(t.next("a value"), "VC", "a value slot (V1, C1, ...)")
                p.where.append((tok, cmp, val))
            if t.done():
                break
            _expect(t.next("and"), ("and",), "'and' (or the end of the program)")
    if op == "summary_group" and not p.where:
        raise ProgramSyntaxError("summary_group needs a 'where' naming the group")
    return p


def _column(table: Table, ident: str) -> str:
    ids = {column_id(c).lower(): c for c in _program_columns(table)}
    col = ids.get(ident.lower())
    if col is None:
        known = ", ".join(column_id(c) for c in _program_columns(table))
        raise ProgramError(f"unknown column {ident!r}; the columns are {known}")
    return col


def _slot(masked: Masked, name: str) -> Slot:
    s = masked.slots.get(name)
    if s is None:
        have = ", ".join(masked.slots) or "none"
        raise ProgramError(f"the request has no mention {name} (its mentions: {have})")
    return s


def _entity(masked: Masked, index: NameIndex, name: str) -> tuple[str, int]:
    s = _slot(masked, name)
    if s.kind != "entity":
        raise ProgramError(f"{name} is not an entity")
    rows = index.shared.get(s.text)
    if rows:
        raise ProgramError(f"{s.text!r} names {len(rows)} rows ({', '.join(map(str, rows))})")
    row = int(s.value)
    return index.table.entity_of(row), row


def _numeric_column(table: Table, col: str) -> None:
    if col not in table.columns_of("numeric"):
        raise ProgramError(f"column {column_id(col)!r} is not numeric")


def _cond(table: Table, masked: Masked, cond: tuple[str, str | None, str | None]) -> dict:
    first, cmp, ref = cond
    if cmp is None:
        s = _slot(masked, first)
        if s.kind != "value":
            raise ProgramError(f"{first} is not a category value")
        return {"column": s.column, "op": "==", "value": s.value}
    col = _column(table, first)
    s = _slot(masked, ref)
    if s.kind == "value":
        if s.column != col or cmp != "==":
            raise ProgramError(f"{ref} is a value of {column_id(s.column)}, not of {first}")
        return {"column": col, "op": "==", "value": s.value}
    if s.kind != "number":
        raise ProgramError(f"{ref} is not a number")
    if cmp != "==":
        _numeric_column(table, col)
    value = s.value
    series = table.df[col]
    if cmp == "==" and pd.api.types.is_integer_dtype(series.dtype) and float(value).is_integer():
        value = int(value)
    return {"column": col, "op": cmp, "value": value}


def bind(parsed: Parsed, masked: Masked, index: NameIndex, decimals: int = 2) -> dict:
    """Resolve a parsed program's slots and columns into a dataset program for `run_program`.

    Raises:
        ProgramError: an unknown column or slot, a slot of the wrong kind, an entity name that
            several rows share, or a non-numeric column where a number is needed.
    """
    table = index.table
    p = parsed
    prog: dict[str, Any] = {"op": p.op, "decimals": decimals}
    if p.column is not None:
        prog["column"] = _column(table, p.column)
    if p.op in ("lookup", "claim", "summary_row"):
        prog["entity"], prog["row_id"] = _entity(masked, index, p.entities[0])
    if p.op == "claim":
        s = _slot(masked, p.value)
        col = prog["column"]
        if s.kind == "value":
            if s.column != col:
                raise ProgramError(f"{p.value} is a value of {column_id(s.column)}, not {p.column}")
            raw = s.value
        elif s.kind == "number":
            raw = s.value
            if p.cmp != "==" or not pd.api.types.is_numeric_dtype(table.df[col].dtype):
                _numeric_column(table, col)
        else:
            raise ProgramError(f"{p.value} is not a value")
        prog.update(cmp=p.cmp, raw=raw, value=format_value(raw, table.units.get(col), decimals))
    if p.op == "compare":
        pairs = [_entity(masked, index, e) for e in p.entities]
        if pairs[0][1] == pairs[1][1]:
            raise ProgramError("a comparison needs two different entities")
        prog["entities"] = [n for n, _ in pairs]
        prog["row_ids"] = [r for _, r in pairs]
    if p.direction is not None:
        prog["direction"] = p.direction
    if p.op in ("compare", "superlative", "top") or (p.op in ("aggregate", "group")
                                                       and p.agg != "count"):
        if "column" not in prog:
            raise ProgramError(f"{p.op} {p.agg or ''} needs a column".replace("  ", " "))
        _numeric_column(table, prog["column"])
    if p.agg is not None:
        prog["agg"] = p.agg
        prog.setdefault("column", None)
    if p.by is not None:
        prog["by"] = _column(table, p.by)
    if p.k is not None:
        if _SLOT.match(p.k):
            s = _slot(masked, p.k)
            if s.kind != "number" or not float(s.value).is_integer():
                raise ProgramError(f"{p.k} is not a whole number of rows")
            prog["k"] = int(s.value)
        elif p.k.isdigit():
            prog["k"] = int(p.k)
        else:
            raise ProgramError(f"{p.k!r} is not a number of rows")
    if p.op not in ("lookup", "claim", "summary_row", "compare"):
        prog["where"] = [_cond(table, masked, c) for c in p.where]
        prog["evidence"] = "facts"
    if p.op == "summary_row":
        prog["columns"] = [c for c in _program_columns(table) if c not in table.entity_parts]
    if p.op == "summary_group":
        used = {c["column"] for c in prog["where"]}
        prog["columns"] = [c for c in table.columns_of("numeric") if c not in used]
        prog["noun"] = entity_noun(table)
    return prog


def route_of(op: str) -> str:
    """The agent's task for a program op (qa, validate or summarize)."""
    return OP_ROUTE[op]


def read_program(text: str, masked: Masked, index: NameIndex, decimals: int = 2) -> dict:
    """`parse_text` then `bind`: the dataset program a model's line stands for."""
    return bind(parse_text(text), masked, index, decimals)


# --------------------------------------------------------------------------------------------
# Reading a model's programs over a dataset's tables
# --------------------------------------------------------------------------------------------


@dataclass
class Executed:
    """What running one model line gave: the answer (None when it failed) and why not."""

    text: str
    program: dict | None
    answer: str | None
    error: str | None


class ProgramReader:
    """Masks requests, reads program lines and runs them, over a fixed set of tables."""

    def __init__(self, tables: list[Table], decimals: int = 2):
        self.indexes = {t.name: NameIndex(t) for t in tables}
        self.decimals = decimals

    def index(self, table_name: str) -> NameIndex:
        """The `NameIndex` of a table by name."""
        try:
            return self.indexes[table_name]
        except KeyError:
            raise ProgramError(f"no table named {table_name!r}") from None

    def mask(self, table_name: str, request: str) -> Masked:
        """`mask_request` over the named table."""
        return mask_request(request, self.index(table_name))

    def run(self, table_name: str, request: str, text: str) -> Executed:
        """Read `text` as a program for `request` and run it; errors are returned, not raised."""
        from data_loaders.programs import run_program

        index = self.index(table_name)
        masked = mask_request(request, index)
        try:
            prog = read_program(text, masked, index, self.decimals)
            return Executed(text, prog, run_program(index.table, prog), None)
        except ProgramError as e:
            return Executed(text, None, None, str(e))


def dataset_tables(data_dir: str | Path) -> list[Table]:
    """Load the tables a dataset was built from, as ``prepare`` read them (its manifest).

    Raises:
        InputError: the manifest is missing, a source file is gone, or its content changed.
    """
    import json

    from data_loaders.config import TableConfig
    from data_loaders.errors import InputError
    from data_loaders.loaders import load_table

    manifest = Path(data_dir) / "manifest.json"
    if not manifest.is_file():
        raise InputError(f"{manifest}: not found; make the dataset with `distillgraph prepare`")
    m = json.loads(manifest.read_text(encoding="utf-8"))
    cfg = TableConfig(**((m.get("config") or {}).get("table") or {}))
    tables = []
    for src in m.get("sources", []):
        t = load_table(src["source"], cfg)
        if t.content_hash != src.get("content_hash"):
            raise InputError(
                f"{src['source']}: the table changed since `distillgraph prepare` built "
                f"{data_dir} (hash {t.content_hash} != {src.get('content_hash')}); re-run prepare"
            )
        tables.append(t)
    return tables
