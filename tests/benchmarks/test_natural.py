"""The natural-phrasing set is well formed and its scorer tells right from wrong."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.bench_natural import load_requests, presented_as_checked, score_reply

ROOT = Path(__file__).resolve().parents[2]


def test_requests_are_well_formed_and_expected_answers_recompute():
    reqs = load_requests()
    assert len(reqs) >= 150 and len({r["id"] for r in reqs}) == len(reqs)
    tables = Counter(r["table"] for r in reqs)
    assert len(tables) >= 3
    seen = set()
    frames = {t: pd.read_csv(ROOT / t) for t in tables}
    for r in reqs:
        assert r["route"] in ("qa", "summarize", "validate")
        assert r["follows"] is None or r["follows"] in seen
        seen.add(r["id"])
        value = eval(r["pandas"], {"df": frames[r["table"]], "pd": pd})  # noqa: S307
        if hasattr(value, "item") and not isinstance(value, (list, dict)):
            value = value.item()
        if isinstance(value, dict):
            value = {str(k): v for k, v in value.items()}
            assert value.keys() == r["expected"].keys()
            assert all(value[k] == pytest.approx(v) for k, v in r["expected"].items())
        elif isinstance(value, float):
            assert value == pytest.approx(r["expected"])
        else:
            assert value == r["expected"], r["id"]


@pytest.mark.parametrize(
    "expected, kind, reply, supported, right",
    [
        (3245.0, "lookup", "The weight of x is 3245 lbs.", True, True),
        (3245.0, "lookup", "The weight of x is 3254 lbs.", True, False),
        (28.17, "aggregate", "The average fuel economy is 28.17 mpg.", True, True),
        ("datsun 1200", "superlative", "datsun 1200 has the lowest weight", True, True),
        (["a b", "c"], "list", "The cars: a b and c.", True, True),
        (["a b", "c"], "list", "The cars: a b.", True, False),
        (True, "claim", "Yes: the origin of x is Japan.", True, True),
        (False, "claim", "Yes: the origin of x is Japan.", True, False),
        (None, "empty_cell", "The table has no horsepower value for ford pinto.", True, True),
        (None, "unanswerable", "The price of x is 3 dollars.", True, False),
        (None, "unanswerable", "I could not read this as a question.", False, True),
    ],
)
def test_scorer(expected, kind, reply, supported, right):
    req = {"expected": expected, "kind": kind}
    state = {"answer": reply, "verdict": {"supported": supported, "checked_by": "table"},
             "answered_by": "program"}
    assert score_reply(req, state) is right
    assert presented_as_checked(state)
