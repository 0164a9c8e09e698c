"""Answer-matching metrics shared by training-time validation and `distillgraph evaluate`.

Per-example scores (pure functions of two strings):

* `exact_match` — equal after `normalize_answer` (lowercase, punctuation and articles dropped,
  spaces collapsed), so "The Ford Pinto." matches "ford pinto".
* `numeric_match` — the reference is a number with an optional unit ("18 mpg", "$1,200",
  "45%"); the first number in the prediction matches when it is within 1% of the reference *or*
  rounds to it at the reference's decimals (|Δ| ≤ ½·10^-decimals), and its unit, if any, agrees.
  ``None`` when the reference is not numeric.
* `token_f1` — SQuAD-style bag-of-tokens F1 over normalized tokens.
* `yes_no_match` — the verdict of a claim answer ("Yes, it is." → yes); ``None`` when the
  reference has no verdict.
* `rouge_l` — ROUGE-L F-measure (``rouge-score`` package, Porter stemming).

`headline_score` picks the one score a question type is judged by (see `HEADLINE_METRIC`), and
`summarize_scores` turns a list of scores into value, n and a 95% confidence interval: the
Wilson interval for proportions, a seeded percentile bootstrap for means.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

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


# --- numbers with units ---------------------------------------------------------------------

# A number: optional currency, sign, thousands groups or plain digits, decimals, exponent, unit.
_NUM_RE = re.compile(
    r"(?P<cur>[$€£¥])?\s*(?P<num>[-+−]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|[-+−]?\.\d+)"
    r"(?:[eE](?P<exp>[-+]?\d+))?"
    r"(?:\s*(?P<unit>%|°[a-zA-Z]?|[a-zA-Z][a-zA-Z/.]*))?"
)
# A whole answer that is one quantity: "18 mpg", "$1,200", "-3.5", "45 %", "12 seconds.".
_NUMERIC_ANSWER = re.compile(
    r"^\s*[$€£¥]?\s*(?:[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+−]?\.\d+)(?:[eE][-+]?\d+)?"
    r"\s*(?:%|°[a-zA-Z]?|[a-zA-Z][a-zA-Z/.]*(?:\s+[a-zA-Z][a-zA-Z/.]*){0,2})?\s*\.?\s*$"
)
_DATE = re.compile(r"\d{4}-\d{2}(?:-\d{2})?")


@dataclass(frozen=True)
class Quantity:
    """A number parsed from text, with the decimals it was written with and its unit."""

    value: float
    decimals: int
    unit: str | None


def _normalize_unit(unit: str | None) -> str | None:
    if not unit:
        return None
    u = unit.lower().strip(". ")
    if u in {"", "and", "or", "to", "of", "in", "is", "the", "a", "an", "for", "from", "with"}:
        return None  # a following word, not a unit ("18 and 20")
    # "lbs" ~ "lb", "seconds" ~ "second"; "%" and "percent" are the same unit.
    if u in {"percent", "pct"}:
        return "%"
    return u[:-1] if len(u) > 2 and u.endswith("s") else u


def parse_quantity(text: str) -> Quantity | None:
    """Parse the first number in `text` with its unit, e.g. "about 1,234.5 lbs" → 1234.5 lb.

    Currency symbols before the number count as its unit ("$12" → unit "$"). Returns ``None``
    when the text holds no number.
    """
    if _DATE.search(text):
        # Dates are compared as text; "1970-01-01" is not the number 1970.
        text = _DATE.sub(" ", text)
    m = _NUM_RE.search(text)
    if m is None:
        return None
    raw = m.group("num").replace(",", "").replace("−", "-")
    decimals = len(raw.split(".", 1)[1]) if "." in raw else 0
    value = float(raw)
    if m.group("exp"):
        value *= 10 ** int(m.group("exp"))
    unit = m.group("cur") or _normalize_unit(m.group("unit"))
    return Quantity(value=value, decimals=decimals, unit=unit)


def is_numeric_answer(text: str) -> bool:
    """True when `text` is one quantity with an optional unit of up to three words."""
    return bool(_NUMERIC_ANSWER.match(text)) and not _DATE.search(text)


def _units_agree(a: str | None, b: str | None) -> bool:
    # A missing unit is accepted ("18" answers "18 mpg"); two different units are not.
    if a is None or b is None:
        return True
    return a == b or a.split()[0] == b.split()[0]


def numeric_match(prediction: str, reference: str, rel_tol: float = 0.01) -> bool | None:
    """Compare numbers: within `rel_tol` of the reference or equal at its rounding.

    Args:
        prediction: Model output; its first number (and unit) is compared.
        reference: Gold answer; must be a single quantity (see `is_numeric_answer`).
        rel_tol: Relative tolerance (0.01 = 1%).

    Returns:
        ``None`` when the reference is not numeric; else whether the numbers match.
    """
    if not is_numeric_answer(reference):
        return None
    ref = parse_quantity(reference)
    pred = parse_quantity(prediction)
    if ref is None or pred is None:
        return False
    if not _units_agree(pred.unit, ref.unit):
        return False
    # The reference was rounded to `decimals` places, so anything that rounds to it matches.
    abs_tol = 0.5 * 10.0 ** (-ref.decimals)
    tol = max(rel_tol * abs(ref.value), abs_tol) * (1 + 1e-9)
    return abs(pred.value - ref.value) <= tol


# --- token F1, yes/no, ROUGE-L --------------------------------------------------------------


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 between normalized prediction and reference (SQuAD definition)."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


_YES = {"yes", "true", "correct", "right", "yeah", "yep", "supported", "confirmed"}
_NO = {"no", "false", "incorrect", "wrong", "nope", "unsupported", "refuted"}
_WORD = re.compile(r"[a-z']+")


def parse_yes_no(text: str) -> str | None:
    """The verdict of a claim answer: "yes", "no" or ``None``.

    The first word decides ("Yes, it is." → yes, "No: it has 8." → no, "Not true" → no);
    otherwise the first verdict word anywhere, flipped when "not" precedes it ("It is not
    true." → no).
    """
    words = _WORD.findall(text.lower())
    if not words:
        return None
    if words[0] in _YES:
        return "yes"
    if words[0] in _NO or words[0] == "not":
        return "no"
    for i, w in enumerate(words):
        if w in _YES or w in _NO:
            verdict = "yes" if w in _YES else "no"
            if i > 0 and words[i - 1] in {"not", "isn't", "isnt"}:
                verdict = "no" if verdict == "yes" else "yes"
            return verdict
    return None


def yes_no_match(prediction: str, reference: str) -> bool | None:
    """Whether the prediction's verdict equals the reference's; ``None`` if it has none."""
    ref = parse_yes_no(reference)
    if ref is None:
        return None
    return parse_yes_no(prediction) == ref


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer  # imported lazily: pulls in nltk

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of stemmed tokens), in [0, 1]."""
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


# --- per-example scoring --------------------------------------------------------------------

SUMMARY_TYPES = frozenset({"summary_row", "summary_group"})
CLAIM_TYPES = frozenset({"claim"})

#: The metric each question type is judged by ("accuracy" in reports).
HEADLINE_METRIC: dict[str, str] = {
    "lookup": "exact_or_numeric",
    "compare": "exact_or_numeric",
    "superlative": "exact_or_numeric",
    "aggregate": "exact_or_numeric",
    "claim": "yes_no",
    "summary_row": "rouge_l",
    "summary_group": "rouge_l",
}

HEADLINE_DOC = (
    "for qa types (lookup, compare, superlative, aggregate): exact match after "
    "normalization, or numeric match (1% relative / reference rounding, units agreeing) when the "
    "reference is a number; for claims (validate): the yes/no verdict matches; for summaries "
    "(summarize): ROUGE-L F. Aggregates over several types are the mean of per-example scores."
)


def score_example(prediction: str, reference: str, qtype: str) -> dict[str, float | None]:
    """All scores for one example; a score that does not apply is ``None``.

    Returns:
        Keys ``exact_match``, ``numeric_match``, ``token_f1``, ``yes_no``, ``rouge_l`` and
        ``accuracy`` (the headline score of `qtype`, see `HEADLINE_METRIC`); booleans as 0/1.
    """
    em = float(exact_match(prediction, reference))
    num = numeric_match(prediction, reference)
    yn = yes_no_match(prediction, reference) if qtype in CLAIM_TYPES else None
    rl = rouge_l(prediction, reference) if qtype in SUMMARY_TYPES else None
    headline = HEADLINE_METRIC.get(qtype, "exact_or_numeric")
    if headline == "rouge_l":
        acc = rl if rl is not None else rouge_l(prediction, reference)
    elif headline == "yes_no" and yn is not None:
        acc = float(yn)
    else:
        acc = max(em, float(bool(num)))
    return {
        "exact_match": em,
        "numeric_match": None if num is None else float(num),
        "token_f1": token_f1(prediction, reference),
        "yes_no": None if yn is None else float(yn),
        "rouge_l": rl,
        "accuracy": acc,
    }


# --- confidence intervals -------------------------------------------------------------------

Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); ``(0, 1)`` when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def bootstrap_interval(
    values: Sequence[float], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded, so reports are reproducible)."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return 0.0, 1.0
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))  # (R, n)
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def summarize_scores(
    values: Sequence[float | None], seed: int = 0, proportion: bool | None = None
) -> dict | None:
    """Mean, count and 95% CI of the applicable (non-``None``) scores; ``None`` if there are none.

    Args:
        values: Per-example scores; ``None`` marks an example the score does not apply to.
        seed: Seed of the bootstrap.
        proportion: ``True`` for 0/1 scores (Wilson interval), ``False`` for means (bootstrap);
            ``None`` decides from the values (all 0 or 1 → proportion).

    Returns:
        ``{"value", "n", "ci95": [low, high], "method"}``, method ``"wilson"`` or
        ``"bootstrap"``.
    """
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    mean = sum(xs) / len(xs)
    if proportion is None:
        proportion = all(v in (0.0, 1.0) for v in xs)
    if proportion:
        lo, hi = wilson_interval(round(sum(xs)), len(xs))
        method = "wilson"
    else:
        lo, hi = bootstrap_interval(xs, seed=seed)
        method = "bootstrap"
    return {"value": mean, "n": len(xs), "ci95": [lo, hi], "method": method}


def gap_closed(
    reference: float, baseline: float, candidate: float, eps: float = 1e-9
) -> float | None:
    """Share of the reference–baseline gap the candidate closed.

    ``(candidate - baseline) / (reference - baseline)``: 1.0 means the candidate matches the
    reference (teacher), 0.0 means no better than the baseline (undistilled student); it can be
    negative or above 1. Returns ``None`` when the gap is zero (|reference - baseline| ≤ eps),
    where the ratio is undefined.
    """
    gap = reference - baseline
    if abs(gap) <= eps:
        return None
    return (candidate - baseline) / gap
