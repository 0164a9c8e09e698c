"""The natural-phrasing test set: loading its requests and scoring a graph's reply to one.

``benchmarks/data/natural/requests.jsonl`` holds requests written by hand the way people type
them, each with its route, kind and the answer pandas computes from its table (see that
folder's README). This module owns reading that file (`load_requests`), evaluating a request's
pandas expression into the JSON form stored as ``expected`` (`evaluate`), and deciding whether
a reply states the expected answer (`score_reply`). It runs no graph: the benchmark that does
imports these.

Scoring rules (`score_reply`):

- a number is stated when some number in the reply equals it after both are rounded to 2
  decimals; thousands separators (``3,504``) and units around the number are tolerated;
- a name (or any other text value) is stated when it occurs case-insensitively as whole words
  (a plural "s"/"es" allowed: "gentoos");
- a list is right when every expected item is stated; a comparison (a ``compare`` request whose
  pandas names its candidates in a list literal) also needs the expected candidate to be stated
  before any other candidate, so "X is heavier than Y" is not read as an answer "Y";
- a statistic by group (``groupby``) needs every group and, next to it (before or after, with
  no other group in between), its value; a summary needs every value of its facts (every item
  of a fact that is a list);
- a claim is read from the first yes/no word of the reply (yes, no, true, false, correct,
  incorrect; "not true", "not correct" read as no);
- a request with no answer in the table (``expected`` null: an empty cell, an unknown column or
  entity, a free question) is right when the reply is not presented as a supported answer
  (``state["verdict"]["supported"]`` is not True); an empty cell is also answered right by a
  reply that says the value is missing ("the table has no horsepower value for ford pinto"),
  which the graph marks supported because the table computed it;
- a reply the graph declines to give (``state["answered_by"]`` is ``"none"`` or tagged
  ``(unsupported)``, ``(failed)`` or ``(asked back)``) answers nothing: it is wrong wherever an
  answer is expected, even when the rows it quotes happen to hold the value, and right where
  none is.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = ROOT / "benchmarks" / "data" / "natural" / "requests.jsonl"
FIELDS = ("id", "table", "request", "route", "kind", "expected", "pandas", "follows")
ROUTES = ("qa", "summarize", "validate")
KINDS = (
    "lookup", "compare", "superlative", "aggregate", "count", "list", "topk", "distinct",
    "groupby", "claim", "summary_row", "summary_group", "empty_cell", "unanswerable", "free",
)
DECIMALS = 2

# A number as people and models write it: optional sign (not a hyphen inside a word such as
# "ds-21"), thousands groups ("3,504") or plain digits, optional decimals.
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])")
_VERDICT = re.compile(
    r"\b(?:(not|n't|isn't|wasn't)\s+)?(yes|no|true|false|correct|incorrect)\b", re.I)
_YES = {"yes", "true", "correct"}
_EMPTY = re.compile(
    r"\b(?:no|without(?: an?)?)\b[^.]{0,40}?\b(?:value|data|entry|number|figure|record)s?\b"
    r"|\b(?:empty|blank|missing|not recorded|not available|not given|n/a)\b", re.I)
_DECLINED_TAGS = ("(unsupported)", "(failed)", "(asked back)")


# --------------------------------------------------------------------------------------------
# Loading and evaluating
# --------------------------------------------------------------------------------------------


def load_requests(path: str | Path | None = None) -> list[dict]:
    """The requests of the set (default: ``benchmarks/data/natural/requests.jsonl``), in order.

    Args:
        path: a requests file in the same JSON-lines format; None for the set's own file.

    Returns:
        One dict per line with the keys of `FIELDS`.

    Raises:
        ValueError: a line is not JSON or lacks a field (naming the file and line).
    """
    file = Path(path) if path is not None else REQUESTS
    out = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{file}:{n}: not a JSON object ({e.msg})") from None
        missing = [f for f in FIELDS if f not in rec]
        if missing:
            raise ValueError(f"{file}:{n}: missing field(s) {', '.join(missing)}")
        out.append(rec)
    return out


def load_table(table: str) -> pd.DataFrame:
    """A request's table exactly as ``pandas.read_csv`` reads it (path relative to the repo)."""
    return pd.read_csv(ROOT / table)


def to_json(value: Any) -> Any:
    """A pandas/numpy result as the JSON value stored in ``expected`` (NaN becomes None)."""
    if isinstance(value, pd.Series):
        value = value.to_dict()
    if isinstance(value, pd.Index | np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(to_json(k)): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def evaluate(expr: str, df: pd.DataFrame) -> Any:
    """Evaluate a request's pandas expression over ``df`` and return it in JSON form."""
    return to_json(eval(expr, {"df": df, "pd": pd}))  # noqa: S307 - our own hand-written file


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text)]


def _same_number(a: float, b: float) -> bool:
    return math.isclose(round(a, DECIMALS), round(b, DECIMALS), abs_tol=1e-9)


def _spans(text: str, value: Any) -> list[tuple[int, int]]:
    """Where ``value`` is stated in ``text``: character spans (empty when it is not)."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int | float):
        return [m.span() for m in _NUMBER.finditer(text)
                if _same_number(float(m.group().replace(",", "")), float(value))]
    # whole words, a plural allowed ("gentoos", "males")
    pattern = rf"(?<!\w){re.escape(str(value).strip())}(?:e?s)?(?!\w)"
    return [m.span() for m in re.finditer(pattern, text, re.I)]


def states(text: str, value: Any) -> bool:
    """Whether ``text`` states ``value`` (a number to 2 decimals, text as whole words, or every
    item of a list)."""
    if isinstance(value, list):
        return all(states(text, v) for v in value)
    return bool(_spans(text, value))


def read_verdict(text: str) -> bool | None:
    """The yes/no a reply gives to a claim: its first verdict word, or None when it has none."""
    m = _VERDICT.search(text)
    if m is None:
        return None
    said = m.group(2).lower() in _YES
    return (not said) if m.group(1) else said


def candidates(request: dict) -> list[str]:
    """The names a comparison chooses between: the first list of 2+ strings in its pandas."""
    try:
        tree = ast.parse(request.get("pandas") or "", mode="eval")
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.List) and len(node.elts) >= 2 and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
        ):
            return [e.value for e in node.elts]
    return []


def _first_candidate(text: str, names: list[str]) -> str | None:
    """The candidate the reply names first (a name inside a longer one's mention is skipped)."""
    marks = [(s, e, name) for name in names for s, e in _spans(text, name)]
    outer = [m for m in marks
             if not any(o is not m and o[0] <= m[0] and m[1] <= o[1] and o[1] - o[0] >
                        m[1] - m[0] for o in marks)]
    return min(outer)[2] if outer else None


def _as_key(group: str) -> Any:
    """A group label as it is matched: numeric labels ("4", "1970") as numbers."""
    try:
        return float(group)
    except ValueError:
        return group


def _group_stated(text: str, groups: dict[str, Any]) -> bool:
    """Every group is named with its own value beside it (no other group in between)."""
    marks = sorted((s, e, g) for g in groups for s, e in _spans(text, _as_key(g)))
    for g, value in groups.items():
        ok = False
        for i, (s, e, name) in enumerate(marks):
            if name != g:
                continue
            before = text[marks[i - 1][1] if i > 0 else 0:s]
            after = text[e:marks[i + 1][0] if i + 1 < len(marks) else len(text)]
            if states(before, value) or states(after, value):
                ok = True
                break
        if not ok:
            return False
    return True


def declined(state: dict | None) -> bool:
    """Whether the graph gave no answer this turn (refused, failed or asked back)."""
    by = (state or {}).get("answered_by") or ""
    return by == "none" or any(tag in by for tag in _DECLINED_TAGS)


def says_empty(text: str) -> bool:
    """Whether a reply says the value is missing ("has no horsepower value", "is empty")."""
    return _EMPTY.search(text) is not None


def _supported(state: dict | None) -> bool | None:
    verdict = (state or {}).get("verdict") or {}
    if isinstance(verdict, dict):
        return verdict.get("supported")
    return getattr(verdict, "supported", None)


def score_reply(request: dict, reply_text: str | None, state: dict | None = None) -> bool:
    """Whether a graph's reply to ``request`` is right (rules in the module docstring).

    Args:
        request: one record of the set (needs ``expected`` and ``kind``; ``pandas`` for the
            candidates of a comparison).
        reply_text: the reply the user sees.
        state: the graph's final state (None or {} to score the text alone); read are
            ``verdict.supported`` (a dict or an object) and ``answered_by``.

    Returns:
        True when the reply is right.
    """
    text = reply_text or ""
    expected = request["expected"]
    kind = request["kind"]
    if expected is None:
        if declined(state) or _supported(state) is not True:
            return True
        return kind == "empty_cell" and says_empty(text)
    if declined(state):
        return False
    if isinstance(expected, bool):
        return read_verdict(text) is expected
    if isinstance(expected, list):
        return states(text, expected)
    if isinstance(expected, dict):
        if kind == "groupby":
            return _group_stated(text, expected)
        return all(states(text, v) for v in expected.values())
    if kind == "compare" and (names := candidates(request)):
        first = _first_candidate(text, names)
        return first is not None and first.lower() == str(expected).lower()
    return states(text, expected)
