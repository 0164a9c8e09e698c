"""Answer-matching metrics shared by training-time validation and `distillgraph evaluate`.

`normalize_answer` lowercases, trims punctuation and articles, and collapses spaces, so "The
Ford Pinto." matches "ford pinto".
"""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation.replace(".", "").replace("-", ""))


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation (keeping decimal points and minus signs) and articles."""
    s = text.strip().lower().translate(_PUNCT)
    s = s.rstrip(".")
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, reference: str) -> bool:
    """True when the normalized prediction equals the normalized reference."""
    return normalize_answer(prediction) == normalize_answer(reference)
