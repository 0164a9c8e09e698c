"""Mentions: the words of a request that name something in a table.

`NameIndex` maps a request's normalized words to what they name in one table: an entity (a
row, by its name), a value of a categorical column, or a column (its name, display words or
unit). `normalize` is the one normalization every lookup uses. Both the serving graph
(`graphs.retrieval`, which builds contexts and filters from the mentions) and the program
language (`data_loaders.program_text`, which replaces mentions by slots so the student never
copies a name) read requests through this module, so training and serving agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from data_loaders.serialize import format_value
from data_loaders.table import Table
from data_loaders.templates import col_words

_NON_WORD = re.compile(r"[^0-9a-z.]+")
NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
# Words that never form an entity or value name on their own.
_STOP = frozenset(
    "a an the of and or is are was were in on at to for with by from it its this that what which "
    "who how many much does do did has have had be".split()
)
# Everyday short words that are also codes in tables ("ME" for Maine, "HI" for Hawaii): they
# name a value or an entity only where the request writes them in capitals.
_EVERYDAY_SHORT = frozenset(
    "me us we he my so do go no up am hi ok oh as if be an or in on at to it is by".split()
)


def normalize(text: str) -> str:
    """Lowercase; every run of characters other than letters, digits and '.' becomes a space."""
    s = _NON_WORD.sub(" ", str(text).lower().replace(",", ""))
    return " ".join(t.strip(".") for t in s.split() if t.strip("."))


def _cased_tokens(raw: str | None, n: int) -> list[str]:
    """`normalize`'s tokens of `raw` with their case kept ("" each where they do not align)."""
    if raw:
        s = re.sub(r"[^0-9a-zA-Z.]+", " ", str(raw).replace(",", ""))
        out = [t.strip(".") for t in s.split() if t.strip(".")]
        if len(out) == n:
            return out
    return [""] * n


@dataclass
class Match:
    """A span of the query's normalized tokens that names something in a table."""

    start: int  # first token
    end: int  # one past the last token
    kind: str  # "entity", "value" (categorical value) or "column"
    column: str | None
    value: Any  # the row id (entity), the cell value (value) or None (column)
    text: str  # the normalized words matched


class NameIndex:
    """Name lookups for one table: entity names, categorical values and column words.

    It maps the words of a question to what they name; `data_loaders.programs.TableIndex` is
    the other per-table index, which caches the computations programs run over the rows.
    """

    MAX_CATEGORIES = 60  # categorical columns with more distinct values are not indexed as values

    def __init__(self, table: Table):
        self.table = table
        self.names: dict[str, tuple[str, str | None, Any]] = {}
        # Entity names that several rows share ("ford pinto" twice): name -> all their rows.
        self.shared: dict[str, list[int]] = {}
        ent = table.entity_column
        if ent is not None:
            for rid, name in enumerate(table.df[ent].tolist()):
                key = normalize(name)
                if _usable_name(key):
                    first = self.names.setdefault(key, ("entity", ent, rid))
                    if first[2] != rid:
                        self.shared.setdefault(key, [first[2]]).append(rid)
        # Categorical values by column, numbers included ("<column> 1976"):
        # a number names a value only right after its column's words (see `_column_filters`).
        self.categories: dict[str, dict[str, Any]] = {}
        for col in table.columns_of("categorical"):
            uniq = table.df[col].dropna().unique()
            if len(uniq) > self.MAX_CATEGORIES:
                continue
            self.categories[col] = {normalize(format_value(v)): v for v in uniq}
            for v in uniq:
                key = normalize(v)
                if _usable_name(key):
                    self.names.setdefault(key, ("value", col, v))
                    if key.isalpha() and len(key) > 3:
                        # Inflected forms: "chinstraps" for Chinstrap, "japanese" for Japan,
                        # "european" for Europe (setdefault: a real name always wins).
                        for form in (f"{key}s", f"{key}ese", f"{key}an", f"{key}n"):
                            self.names.setdefault(form, ("value", col, v))
        for col in table.columns:
            if col == ent:
                continue
            for words in {col_words(table, col), table.display_name(col), col}:
                key = normalize(words.replace("_", " "))
                if key:
                    self.names.setdefault(key, ("column", col, None))
        # A unit that belongs to one column names it too ("the mpg of X"): only word-like
        # units of two letters or more, so "s" or "%" never do.
        owners: dict[str, set[str]] = {}
        for col, unit in table.units.items():
            key = normalize(unit or "")
            if col != ent and re.fullmatch(r"[a-z][a-z ]+", key) and key not in _STOP:
                owners.setdefault(key, set()).add(col)
        for key, cols in owners.items():
            if len(cols) == 1:
                self.names.setdefault(key, ("column", next(iter(cols)), None))
        self.max_len = max((len(k.split()) for k in self.names), default=1)
        self._one_word_columns = [
            k for k, v in self.names.items() if v[0] == "column" and " " not in k and len(k) >= 5
        ]

    def find(self, tokens: Sequence[str], raw: str | None = None) -> list[Match]:
        """Non-overlapping matches, longest first (entities before values before columns).

        Args:
            tokens: The request's `normalize`-d words.
            raw: The request as typed. An everyday short word ("me", "hi", "ok") names a value
                or entity only where `raw` writes it in capitals ("ME" for Maine); without
                `raw`, never.
        """
        cased = _cased_tokens(raw, len(tokens))
        cands = []
        for n in range(min(self.max_len, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                hit = self.names.get(" ".join(tokens[i : i + n]))
                if (hit is not None and n == 1 and hit[0] != "column"
                        and tokens[i] in _EVERYDAY_SHORT and not cased[i].isupper()):
                    hit = None
                if hit is not None:
                    cands.append(
                        Match(i, i + n, hit[0], hit[1], hit[2], " ".join(tokens[i : i + n]))
                    )
        # An inflected one-word column name ("weighs" for "weight"): same first five letters,
        # lengths within one; only where nothing longer matched.
        for i, tok in enumerate(tokens):
            if len(tok) < 5 or tok in self.names:
                continue
            stems = {self.names[k][1] for k in self._one_word_columns
                     if k[:5] == tok[:5] and abs(len(k) - len(tok)) <= 1}
            if len(stems) == 1:
                cands.append(Match(i, i + 1, "column", stems.pop(), None, tok))
        order = {"entity": 0, "value": 1, "column": 2}
        cands.sort(key=lambda m: (-(m.end - m.start), order[m.kind], m.start))
        used: set[int] = set()
        out = []
        for m in cands:
            span = set(range(m.start, m.end))
            if span & used:
                continue
            used |= span
            out.append(m)
        return sorted(out, key=lambda m: m.start)


MENTION_WEIGHTS = {"entity": 10, "value": 3, "column": 1}  # how strongly each kind names a table


def mention_score(matches: Sequence[Match]) -> float:
    """How strongly a request's mentions point at one table (entities weigh most)."""
    return sum(MENTION_WEIGHTS[m.kind] for m in matches)


def _usable_name(key: str) -> bool:
    return bool(key) and len(key) > 1 and key not in _STOP and not NUMBER.match(key)
