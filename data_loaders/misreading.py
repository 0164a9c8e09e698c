"""Signs that a program misreads its request, found by comparing the two without a model.

A misread program still runs, and what it computes is a true fact about the table, just not the
one asked for. So before the graph answers from a student's program it checks the program
against the request's own words; each function returns what it found, worded for the repair
prompt and the ask-back reply (empty: nothing found):

- `unused_mentions`: a mention slot of the request the program leaves out;
- `contradictions`: the request's words say the opposite direction ("above" read as ``<``,
  "lowest" as ``max``), another aggregate ("average" read as ``sum``, an aggregate it never
  says, "which" read as a number, "how many different" read as anything but ``distinct``),
  a summary where the program is another op (or the reverse), several rows ("which 4 have
  the highest ...") where the program picks one, or another unit ("more than 5 kg" compared
  with a column in g: `foreign_unit`); the words count with one typo ("avreage");
- `ungrounded_columns`: a column of the program the request never names, by the column's
  own words, its unit, a category value of it, or an everyday word for the same measure
  (``measure_words.json``: "heavy" names a weight column, "mileage" a fuel economy one);
- `judgment_words`: the request asks why, or for a judgment ("what is unusual about X"): the
  facts a program computes are shown, never as the answer.

Every check is one-sided: it can only stop an answer (the graph repairs once, then asks back),
never make one. Every gold program of our datasets passes all of them (tested over five tables).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from pathlib import Path

from data_loaders.columns import name_words
from data_loaders.mentions import NUMBER, normalize
from data_loaders.program_text import Masked, column_id, parse_text
from data_loaders.programs import ProgramError
from data_loaders.table import Table
from data_loaders.templates import col_words, entity_noun

_MEASURE_WORDS = Path(__file__).with_name("measure_words.json")
# Words too common to name a column by themselves ("Weight_in_lbs" is named by "weight", "lbs").
_FILLER = frozenset(
    "a an the of and or is are in on at to for with by per no num nr id value values count "
    "number amount total".split()
)


def column_own_words(table: Table, col: str) -> set[str]:
    """The words of a column's name (``_`` and camelCase split), display words and unit."""
    words: set[str] = set(name_words(col))
    for text in (col_words(table, col), table.display_name(col), table.units.get(col) or ""):
        words.update(normalize(text).split())
    return {w for w in words if len(w) > 1 and w not in _FILLER and not NUMBER.match(w)}


@functools.cache
def _groups() -> tuple[frozenset[str], ...]:
    data = json.loads(_MEASURE_WORDS.read_text(encoding="utf-8"))
    return tuple(frozenset(g) for g in data["groups"])


def column_terms(table: Table, col: str) -> set[str]:
    """Every word that names `col` in a request: its own words plus their everyday groups."""
    own = column_own_words(table, col)
    terms = set(own)
    for group in _groups():
        if group & own:
            terms |= group
    return terms


def _names(token: str, terms: set[str]) -> bool:
    """Whether a request token is one of `terms`, a plural of one, or a close inflection/typo.

    Close: the same first five letters and lengths within two ("weighs" for "weight",
    "horsepwer" for "horsepower"), as `NameIndex` matches inflected column words; or the same
    first letter and a difflib ratio of 0.8 or more ("cylidners"; "height" never names weight).
    """
    if token in terms or token.rstrip("s") in terms:
        return True
    if len(token) < 5:
        return False
    return any(len(t) >= 5 and (t[:5] == token[:5] and abs(len(t) - len(token)) <= 2
                                or t[0] == token[0] and _close(t, token))
               for t in terms)


def _close(a: str, b: str) -> bool:
    """One or two slips apart ("cylidners", "orign"), by difflib's similarity ratio."""
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def ungrounded_columns(text: str, masked: Masked, table: Table) -> list[str]:
    """The columns a program uses that the request never names (column ids, program order).

    A column is named by a request word in `column_terms`, or by a category-value mention of
    it (``C1`` for "japanese" names the origin column). Entity names never name a column.
    A program that does not parse is not judged here (the parser says what is wrong).
    """
    try:
        p = parse_text(text)
    except ProgramError:
        return []
    cols = [c for c in (p.column, p.by) if c]
    cols += [first for first, cmp, _ in p.where if cmp is not None]
    by_id = {column_id(c).lower(): c for c in table.columns}
    named_by_slot = {s.column for s in masked.slots.values() if s.kind == "value"}
    tokens = [t for t in masked.text.split() if t not in masked.slots]
    out = []
    for ident in dict.fromkeys(cols):
        col = by_id.get(ident.lower())
        if col is None or col in named_by_slot:
            continue  # an unknown column is the binder's error, not a misreading
        terms = column_terms(table, col)
        if not any(_names(t, terms) for t in tokens):
            out.append(column_id(col))
    return out


def unused_mentions(text: str, masked: Masked, table: Table) -> list[str]:
    """Mention slots a program leaves out: a sign it misread the request.

    Numbers that belong to a column's own words or unit ("0-60 mph time") are not counted.
    """
    used = set(text.split())
    words = _column_number_words(table)
    out = []
    for name, s in masked.slots.items():
        if name in used:
            continue
        if s.kind == "number" and s.text in words:
            continue
        out.append(name)
    return out


def _own_words(table: Table | None) -> set[str]:
    if table is None:
        return set()
    return set().union(*(column_own_words(table, c) for c in table.columns))


def _column_number_words(table: Table) -> set[str]:
    words = set()
    for col in table.columns:
        words.update(normalize(col_words(table, col)).split())
        words.update(normalize(table.units.get(col) or "").split())
    return words


_UP_THRESHOLD = ("above", "over", "more than", "greater than", "higher than", "at least")
_DOWN_THRESHOLD = ("below", "under", "less than", "fewer than", "lower than", "at most")
_UP_EXTREME = ("highest", "most", "largest", "biggest", "greatest", "heaviest", "longest",
               "maximum", "max", "top")
_DOWN_EXTREME = ("lowest", "least", "smallest", "fewest", "lightest", "shortest", "minimum",
                 "min")
# The three aggregates a request names outright; min and max go by the extreme words above.
_AGG_WORDS = {
    "mean": ("average", "avg", "mean"),
    "sum": ("total", "sum", "combined", "altogether", "add up"),
    "count": ("how many", "number", "count"),
}
_SUMMARY_WORDS = ("summarize", "summarise", "summary", "describe", "overview", "tell me about",
                  "know about", "tell me everything")
_ROW_WORDS = ("which", "who")  # ask for a row by name, not for a number
# Words that exclude rows: the program language has no "not equal", so a program that keeps
# the rows equal to a value the request excludes ("outside the usa") misreads it.
_EXCLUDING = ("not", "outside", "except", "excluding", "other than", "apart from", "besides",
              "non")
# Words that ask for a breakdown by a column; a `group` program without one misreads.
_BREAKDOWN = ("by", "per", "each", "every", "breakdown", "broken down", "split", "across",
              "grouped", "group", "groups", "for all")
_SEVERAL = re.compile(r"\b(?:top|which|what|the|first|last|name|list)\s+(V\d+)\b|\b(V\d+)\s+(?:"
                      + "|".join(_UP_EXTREME + _DOWN_EXTREME) + r")\b")


def _says(text: str, words: tuple[str, ...]) -> bool:
    """Whether `text` says one of `words`; a one-word entry of 6+ letters also as a typo."""
    if any(re.search(rf"\b{re.escape(w)}\b", text) for w in words):
        return True
    long = {w for w in words if " " not in w and len(w) >= 6}
    return bool(long) and any(len(t) >= 5 and any(t[0] == w[0] and _close(t, w) for w in long)
                              for t in text.split())


def contradictions(text: str, masked: Masked, table: Table | None = None) -> list[str]:
    """Where a program contradicts the request's own words.

    Only unambiguous words count: a request that says "above" (and never "below") read with
    ``<``; "lowest" (and never a word for the highest) read with ``max``; exactly one of
    "average", "total", "how many" read with another of ``mean``/``sum``/``count``; an
    aggregate ``mean``/``sum``/``count`` the request never says, or ``min``/``max`` where it
    names no extreme; "which"/"who" (or "the <row noun> with the highest ...") read as a
    number; "how many different" read as anything
    but ``distinct``; a summary request read as another op, or a count read as a summary; a
    number of rows ("which 4 ...", "top 3", "5 most ...") read as one row (``superlative``);
    with `table`, a number written in another unit than its column's (`foreign_unit`); two
    values of one column both required of a row ("males vs females" read as ``where C1 and
    C2``), or the rows equal to a value kept where the request excludes them ("outside",
    "except", "not"); a breakdown (``group``) the request never asks for (no "by", "per",
    "each", ...). With
    `table`, a column's own words ("total points", "0-60 mph time") name no aggregate and no
    row count. The graph treats a contradiction like a misreading: one repair, then it asks
    back.
    """
    req = masked.text
    up_t, down_t = _says(req, _UP_THRESHOLD), _says(req, _DOWN_THRESHOLD)
    up_x, down_x = _says(req, _UP_EXTREME), _says(req, _DOWN_EXTREME)
    toks = text.split()
    op = toks[0] if toks else ""
    out = []
    cmps = set(toks) & {">", ">=", "<", "<="}
    if up_t and not down_t and cmps & {"<", "<="}:
        out.append("the request says above/more than but the program compares with <")
    if down_t and not up_t and cmps & {">", ">="}:
        out.append("the request says below/less than but the program compares with >")
    if op == "claim" and "==" in toks and (up_t or down_t):
        out.append("the request states a comparison but the program claims equality")
    dirs = set(toks) & {"max", "min"}
    if up_x and not down_x and dirs == {"min"}:
        out.append("the request asks for the highest but the program takes min")
    if down_x and not up_x and dirs == {"max"}:
        out.append("the request asks for the lowest but the program takes max")
    own = _own_words(table)
    plain = re.sub(r"\bsum up\b|\bsummar\w*", " ", req)
    if own:  # a column's own words ("total points") name no aggregate
        # "number of cylinders" names the cylinders column, not a count
        alts = "|".join(sorted(map(re.escape, own), key=len, reverse=True))
        if alts:
            plain = re.sub(rf"\bnumber of (?=(?:{alts})\b)", " ", plain)
        plain = " ".join(w for w in plain.split() if w not in own)
    said = [agg for agg, words in _AGG_WORDS.items() if _says(plain, words)]
    agg = toks[1] if op in ("aggregate", "group") and len(toks) > 1 else None
    if agg in _AGG_WORDS and agg not in said:
        out.append(f"the request asks for the {_AGG_WORDS[said[0]][0]} but the program takes "
                   f"{agg}" if len(said) == 1 else f"the program takes {agg} but the request "
                   f"never says {_AGG_WORDS[agg][0]!r} or the like")
    if said == ["count"] and agg in ("min", "max"):
        out.append(f"the request asks how many but the program takes {agg}")
    if agg in ("min", "max") and not (up_x or down_x or _says(req, ("best", "worst"))):
        out.append(f"the program takes {agg} but the request names no highest or lowest")
    if (_says(req, _ROW_WORDS) or _asks_for_a_row(req, table)) and op in (
            "aggregate", "distinct", "group"):
        out.append("the request asks which, but the program computes a number")
    if "count" in said and _says(req, ("different", "distinct", "unique")) and op != "distinct":
        out.append(f"the request asks how many different values, but the program is a {op}")
    summary = _says(req, _SUMMARY_WORDS)
    if summary and not op.startswith("summary"):
        out.append(f"the request asks for a summary but the program is a {op}")
    if op.startswith("summary") and said:
        out.append(f"the request asks for the {_AGG_WORDS[said[0]][0]}, not a summary")
    if table is not None:
        out += _unit_clashes(text, masked, table)
    out += _filter_clashes(toks, masked)
    if op == "group" and not _says(req, _BREAKDOWN):
        out.append("the program breaks the rows down by a column but the request asks for no "
                   "breakdown (by, per, each)")
    if op == "superlative":
        skip = _column_number_words(table) if table is not None else set()
        for m in _SEVERAL.finditer(req):
            name = m.group(1) or m.group(2)
            after = req[m.end():].split()[:1] if m.group(1) else []
            if after and _names(after[0], skip | own):
                continue  # "the V1 cylinders car": a filter value before its column's words
            slot = masked.slots.get(name)
            if slot is not None and slot.kind == "number" and slot.text not in skip \
                    and float(slot.value).is_integer() and 1 < slot.value <= 100:
                out.append(f"the request asks for {slot.text} rows but the program picks one")
                break
    return out


def _asks_for_a_row(req: str, table: Table | None) -> bool:
    """A row named by its noun and an extreme: "the car with the highest weight ..."."""
    if table is None:
        return False
    noun = re.escape(normalize(entity_noun(table)))
    extremes = "|".join(map(re.escape, _UP_EXTREME + _DOWN_EXTREME))
    return re.search(rf"\b{noun} (?:with|that has|having|which has) (?:the )?(?:{extremes})\b",
                     req) is not None


def _filter_clashes(toks: list[str], masked: Masked) -> list[str]:
    """A filter no row can meet, or one that keeps the rows the request excludes."""
    if "where" not in toks:
        return []
    where = toks[toks.index("where") + 1:]
    values = [masked.slots[t] for t in where if t in masked.slots
              and masked.slots[t].kind == "value"]
    out = []
    by_col: dict[str, set] = {}
    for s in values:
        by_col.setdefault(s.column, set()).add(str(s.value))
    for col, vals in by_col.items():
        if len(vals) > 1:
            out.append(f"the program keeps rows whose {col} is both {' and '.join(sorted(vals))}"
                       "; a row has one")
    if values and _says(masked.text, _EXCLUDING):
        out.append("the request excludes rows, but the program keeps the rows equal to "
                   f"{values[0].text}")
    return out


# Words that ask for a reason or a judgment, which no program computes ("what is unusual
# about X", "why is X so slow", "is X a good buy"): the table can state facts about X, not
# answer these.
_JUDGMENT = ("why", "unusual", "special", "interesting", "surprising", "notable", "noteworthy",
             "weird", "strange", "odd", "recommend", "should", "worth", "reliable", "good",
             "bad", "opinion")


def judgment_words(masked: Masked) -> list[str]:
    """The words of a request that ask for a reason or a judgment (see `_JUDGMENT`)."""
    words = set(masked.text.split())
    return [w for w in _JUDGMENT if w in words]


# Unit words, grouped by unit ("kg" and "kilograms" are one unit). "in" and "m" are left out:
# after a number they are as often a preposition or a million as inches or metres.
_UNITS = (
    ("mg", "milligram", "milligrams"), ("g", "gram", "grams", "gr"),
    ("kg", "kgs", "kilo", "kilos", "kilogram", "kilograms"), ("lb", "lbs", "pound", "pounds"),
    ("oz", "ounce", "ounces"), ("ton", "tons", "tonne", "tonnes", "t"),
    ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    ("meter", "meters", "metre", "metres"), ("km", "kilometer", "kilometers", "kilometre"),
    ("inch", "inches"), ("ft", "foot", "feet"), ("mi", "mile", "miles"),
    ("s", "sec", "secs", "second", "seconds"), ("min", "mins", "minute", "minutes"),
    ("h", "hr", "hrs", "hour", "hours"), ("mph",), ("kph", "kmh"), ("hp", "horsepower"),
    ("kw", "kilowatt", "kilowatts"), ("mpg",), ("usd", "dollar", "dollars", "$"),
    ("eur", "euro", "euros"), ("percent", "pct"), ("cc",), ("l", "liter", "liters", "litre"),
)
_UNIT_OF = {w: i for i, group in enumerate(_UNITS) for w in group}


def foreign_unit(word: str | None, table: Table, col: str) -> bool:
    """Whether `word`, written right after a number, is a unit other than `col`'s own.

    `col`'s unit is its configured unit, else a unit word of its name ("body_mass_g": g). A
    word of another column's unit is foreign too ("351 cu in" for horsepower). A column with
    no unit at all is otherwise never judged ("5 kg" for an unlabelled weight may be right).
    """
    own = normalize(table.units.get(col) or "").split() or name_words(col)
    if word and word not in own and any(  # another column's unit: "351 cu in" for horsepower
            word in normalize(u).split() for c, u in table.units.items() if u and c != col):
        return True
    said = _UNIT_OF.get(word or "")
    if said is None:
        return False
    units = {_UNIT_OF[w] for w in own if w in _UNIT_OF}
    return bool(units) and said not in units


def _unit_clashes(text: str, masked: Masked, table: Table) -> list[str]:
    """Numbers the program compares with a column in another unit than the request gives."""
    try:
        p = parse_text(text)
    except ProgramError:
        return []
    by_id = {column_id(c).lower(): c for c in table.columns}
    pairs = [(first, ref) for first, cmp, ref in p.where if cmp is not None]
    if p.op == "claim" and p.value:
        pairs.append((p.column, p.value))
    words = masked.text.split()
    out = []
    for ident, ref in pairs:
        col = by_id.get(str(ident).lower())
        if col is None or ref not in words:
            continue
        i = words.index(ref)
        after = words[i + 1] if i + 1 < len(words) else None
        if foreign_unit(after, table, col):
            out.append(f"the request gives {ref} in {after}, but {column_id(col)} is in "
                       f"{table.units.get(col) or 'another unit'}")
    return out
