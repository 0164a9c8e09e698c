"""What a table's names say: units written into column names, and what one row is called.

Units (`unit_from_name`): a column name ending in a unit word is read as a display name plus a
unit, whatever separates the words (``bill_length_mm``, ``bill length mm``, ``body.mass.g``):
``bill_length_mm`` → ``("bill length", "mm")``, ``Weight_in_lbs`` → ``("Weight", "lbs")``,
``share_pct`` → ``("share", "%")``, ``price_usd`` → ``("price", "USD")``; so is a unit in
brackets (``Weight (kg)``, ``Price [USD]``). Not read: a unit after ``per`` (``cost_per_kg`` is
a rate, not a cost in kg), one-letter units written in capitals (``revenue_M`` is more often
millions than metres), and ``_min`` when the table also has the matching ``_max`` column
(``temp_min`` is a minimum, not minutes). Only numeric columns get units (see
`data_loaders.loaders`); the config's ``alias``/``unit`` override what is read here.

Row noun (`row_noun`): the table's name gives the noun when its last word is an English noun
that can name a row (``cars`` → car/cars, ``penguins`` → penguin/penguins, ``world_cities`` →
city/cities), checked against a word list (``nouns.json``) rather than by the shape of the word,
so ``starwars``, ``mtcars``, ``midwest``, ``economics`` or ``data_2023`` give none. Names made of
several words without separators (``USArrests``) give none either: their last word is rarely
what a row is. `plural` knows the irregular plurals of the listed nouns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from functools import cache
from pathlib import Path

# Unit words as they appear in column names (lowercase) → the unit shown after values.
UNIT_WORDS: dict[str, str] = {
    # length
    "mm": "mm", "cm": "cm", "m": "m", "km": "km", "meters": "m", "metres": "m",
    "kilometers": "km", "kilometres": "km", "inch": "in", "inches": "in", "ft": "ft",
    "feet": "ft", "miles": "mi",
    # mass
    "mg": "mg", "g": "g", "grams": "g", "kg": "kg", "kgs": "kg", "lb": "lb", "lbs": "lbs",
    "pounds": "lbs", "oz": "oz", "tonnes": "t", "tons": "tons",
    # time
    "s": "s", "sec": "s", "secs": "s", "seconds": "s", "ms": "ms", "min": "min", "mins": "min",
    "minutes": "min", "h": "h", "hr": "h", "hrs": "h", "hours": "h", "days": "days",
    "yr": "years", "yrs": "years", "years": "years",
    # speed, rate
    "mph": "mph", "kmh": "km/h", "kph": "km/h", "rpm": "rpm", "bpm": "bpm", "mpg": "mpg",
    # share, money
    "pct": "%", "percent": "%", "perc": "%", "usd": "USD", "dollars": "USD", "eur": "EUR",
    "euros": "EUR", "gbp": "GBP", "jpy": "JPY",
    # energy, power, temperature
    "kw": "kW", "kwh": "kWh", "mw": "MW", "mwh": "MWh", "hp": "hp", "kcal": "kcal",
    "celsius": "°C", "degc": "°C", "fahrenheit": "°F", "degf": "°F",
    # area, volume, data
    "km2": "km²", "m2": "m²", "sqkm": "km²", "sqft": "sq ft", "sqmi": "sq mi", "ha": "ha",
    "acres": "acres", "ml": "ml", "liters": "l", "litres": "l", "gal": "gal", "cc": "cc",
    "kb": "KB", "mb": "MB", "gb": "GB", "ppm": "ppm",
}
# Units written as two words at the end of a name (``area_sq_km``, ``speed_km_h``).
UNIT_PAIRS: dict[tuple[str, str], str] = {
    ("sq", "km"): "km²", ("sq", "m"): "m²", ("sq", "ft"): "sq ft", ("sq", "mi"): "sq mi",
    ("km", "h"): "km/h", ("m", "s"): "m/s",
}
_SEPARATORS = re.compile(r"[\s_.\-]+")
_BRACKETED = re.compile(r"(.*?[^\s_.\-])[\s_.\-]*[(\[]\s*([^()\[\]]{1,12}?)\s*[)\]]\s*")
_UNIT_TEXT = re.compile(r"[A-Za-z%$€£°/²³ ]+")
_CAMEL = re.compile(r"[a-z][A-Z]")
_LEXICON = Path(__file__).with_name("nouns.json")


def unit_from_name(column: str, siblings: Collection[str] = ()) -> tuple[str, str] | None:
    """The display name and unit a column name carries, or ``None`` when it carries none.

    Args:
        column: The column name.
        siblings: The table's other column names (``temp_min`` beside ``temp_max`` is a
            minimum, not minutes).

    Returns:
        ``(display name, unit)``, e.g. ``("bill length", "mm")`` for ``bill_length_mm``.
    """
    m = _BRACKETED.fullmatch(column)
    if m:
        inner = m.group(2).strip()
        unit = UNIT_WORDS.get(inner.lower()) or (inner if _UNIT_TEXT.fullmatch(inner) else None)
        base = " ".join(_SEPARATORS.split(m.group(1))).strip()
        return (base, unit) if unit and _has_word(base) else None
    words = [w for w in _SEPARATORS.split(column.strip()) if w]
    unit, n_unit = None, 1
    if len(words) >= 3:
        unit, n_unit = UNIT_PAIRS.get((words[-2].lower(), words[-1].lower())), 2
    if unit is None:
        last, n_unit = words[-1] if words else "", 1
        # One-letter units only in lower case: 'revenue_M' is millions, 'size_S' a size.
        unit = UNIT_WORDS.get(last.lower()) if len(last) > 1 or last.islower() else None
    if unit is None or len(words) <= n_unit:
        return None
    base = words[:-n_unit]
    if base[-1].lower() == "per":  # a rate: 'cost_per_kg'
        return None
    if unit == "min" and _has_max_sibling(words[:-n_unit], siblings):
        return None
    if len(base) > 1 and base[-1].lower() == "in":  # 'Weight_in_lbs'
        base = base[:-1]
    text = " ".join(base)
    return (text, unit) if _has_word(text) else None


def _has_word(text: str) -> bool:
    """At least two letters: a display name has to say something."""
    return sum(c.isalpha() for c in text) >= 2


def _has_max_sibling(base: list[str], siblings: Collection[str]) -> bool:
    want = [w.lower() for w in base] + ["max"]
    return any([w.lower() for w in _SEPARATORS.split(s) if w] == want for s in siblings)


@cache
def _lexicon() -> tuple[frozenset[str], dict[str, str]]:
    """The row nouns (singular) and their irregular plurals, from ``nouns.json``."""
    data = json.loads(_LEXICON.read_text(encoding="utf-8"))
    return frozenset(data["nouns"]), dict(data["plural"])


def plural(noun: str) -> str:
    """English plural of a simple noun (``car`` → ``cars``, ``entry`` → ``entries``).

    Irregular plurals of the listed row nouns are known (``person`` → ``people``); a phrase
    pluralizes its last word.
    """
    head, sep, last = noun.rpartition(" ")
    irregular = _lexicon()[1].get(last.lower())
    if irregular:
        return head + sep + irregular
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def is_row_noun(word: str) -> bool:
    """Whether `word` (singular, any case) is a listed noun that can name a row."""
    return word.lower() in _lexicon()[0]


def row_noun(name: str) -> str | None:
    """The singular noun a table name reads as, or ``None`` when it reads as none.

    The name's last word (a trailing number such as a year is skipped: ``flights_2013``) must
    be a listed row noun or the plural of one. Words are split at ``_``, ``-``, ``.`` and
    spaces; a word that mixes case (``USArrests``) or holds digits (``nycflights13``) gives
    ``None``.

    Examples: ``cars`` → ``car``, ``penguins`` → ``penguin``, ``world_cities`` → ``city``,
    ``people`` → ``person``; ``starwars``, ``mtcars``, ``midwest``, ``data_2023`` → ``None``.
    """
    words = [w for w in _SEPARATORS.split(name.strip()) if w]
    while words and words[-1].isdigit():
        words.pop()
    if not words:
        return None
    last = words[-1]
    if not last.isalpha() or _CAMEL.search(last):
        return None
    word = last.lower()
    nouns, irregular = _lexicon()
    for singular, many in irregular.items():
        if word == many:
            return singular
    candidates = [word]
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("s"):
        candidates.append(word[:-1])
    for c in candidates:
        if c in nouns and (c == word or plural(c) == word):
            return c
    return None
