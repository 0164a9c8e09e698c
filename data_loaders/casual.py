"""Questions as people type them: seeded casual rewrites of a template's question.

Templates phrase questions the way a form would. People name a column by its raw name or its
unit ("the mpg of ..."), type in lower case, leave out the question mark, shorten ("whats",
"avg") and make typos. `QAGenerator` rewrites a share of its questions (``casual_share``) with
`column_variants` and `rewrite`, each draw from a generator seeded by the pair, so a dataset is
still byte-identical for a seed. `same_mentions` guards every rewrite: one that would change what
the request mentions (a lower-cased code such as "ME" for Maine, a typo inside a name) is not
made, so the pair's program stays exactly right for its question.

Nothing here knows a domain: the rewrites are English spelling habits, and column words come
from the table's own names and units.
"""

from __future__ import annotations

import re

import numpy as np

from data_loaders.mentions import NameIndex
from data_loaders.table import Table
from data_loaders.templates import col_words

# (pattern, replacements): short forms people type; applied each with probability 1/2.
_SHORT_FORMS = (
    (re.compile(r"\bwhat is\b", re.I), ("whats", "what's", "what is")),
    (re.compile(r"\baverage\b", re.I), ("avg", "average")),
    (re.compile(r"\bmaximum\b", re.I), ("max",)),
    (re.compile(r"\bminimum\b", re.I), ("min",)),
    (re.compile(r"\bwhich one\b", re.I), ("which",)),
)


def column_variants(table: Table, col: str) -> list[str]:
    """Ways a request names `col`: its question words, its raw name, its unit (if a word)."""
    out = [col_words(table, col)]
    unit = table.units.get(col)
    raw = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(col)).replace("_", " ").lower().split()
    if unit and raw[-1:] == [unit.lower()]:  # "flipper_length_mm": the unit goes with the value
        raw = raw[:-2] if raw[-2:-1] == ["in"] else raw[:-1]
    if raw and " ".join(raw) != out[0].lower():
        out.append(" ".join(raw))
    owners = [c for c, u in table.units.items() if u == unit]
    if unit and re.fullmatch(r"[A-Za-z]{2,}", unit) and owners == [col]:
        out.append(unit)
    return list(dict.fromkeys(out))


def _typo(word: str, rng: np.random.Generator) -> str:
    """One slip of the keyboard inside `word`: a letter dropped, doubled or swapped.

    The first two letters stay, so the word still reads as itself to
    `data_loaders.misreading` (same first letter, similarity ratio 0.8 or more).
    """
    i = int(rng.integers(2, len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def rewrite(question: str, rng: np.random.Generator, typo_rate: float = 0.2) -> str:
    """`question` as typed casually: short forms, lower case, no final mark, maybe a typo."""
    q = question
    for pattern, options in _SHORT_FORMS:
        if pattern.search(q) and rng.random() < 0.5:
            q = pattern.sub(options[int(rng.integers(len(options)))], q)
    if rng.random() < 0.6:
        q = q.lower()
    if rng.random() < 0.7:
        q = q.rstrip("?.! ")
    if rng.random() < typo_rate:
        words = [m for m in re.finditer(r"\b[A-Za-z]{6,}\b", q)]
        if words:
            m = words[int(rng.integers(len(words)))]
            q = q[: m.start()] + _typo(m.group(), rng) + q[m.end() :]
    return q


def same_mentions(a: str, b: str, index: NameIndex) -> bool:
    """Whether two phrasings mention the same entities, values and numbers, in order."""
    from data_loaders.program_text import mask_request

    def key(text: str) -> list[tuple]:
        m = mask_request(text, index)
        return [(s.kind, s.column, s.value) for s in m.slots.values()]

    return key(a) == key(b)
