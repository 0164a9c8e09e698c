"""bench_natural's own scorer tells right from wrong (the set itself: test_natural.py)."""

from __future__ import annotations

import pytest

from benchmarks.bench_natural import presented_as_checked, score_reply


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


def test_sweep_holds_back_only_unsure_program_replies():
    from benchmarks.bench_natural import sweep

    rows = [
        {"answered_by": "program", "confidence": 0.9, "right": True, "checked": True},
        {"answered_by": "program", "confidence": 0.3, "right": False, "checked": True},
        {"answered_by": "program", "confidence": 0.2, "right": True, "checked": True},
        {"answered_by": "table", "confidence": None, "right": True, "checked": True},
    ]
    at = {r["min_confidence"]: r for r in sweep(rows, [0.0, 0.25, 0.5])}
    assert at[0.0]["accuracy"] == 0.75 and at[0.0]["precision"] == 0.75
    assert at[0.25]["accuracy"] == 0.5 and at[0.25]["precision"] == 2 / 3
    assert at[0.5]["accuracy"] == 0.5 and at[0.5]["precision"] == 1.0 and at[0.5]["checked"] == 2


def test_a_row_summary_is_right_in_any_wording_but_not_with_a_wrong_number(tmp_path):
    import json

    from benchmarks.bench_natural import split_requests

    rec = {"id": "x", "qtype": "summary_row", "task": "summarize", "question": "info on a 99e",
           "answer": "a 99e has weight 2375 lbs and 0-60 mph time 17.5 s.",
           "entities": ["a 99e"]}
    f = tmp_path / "test.jsonl"
    f.write_text(json.dumps(rec) + "\n")
    req = split_requests(f, "t")[0]
    assert score_reply(req, {"answer": "a 99e: 0-60 mph time of 17.5 s, weight 2375 lbs."})
    assert not score_reply(req, {"answer": "a 99e: 0-60 mph time of 17.5 s, weight 2376 lbs."})
    assert not score_reply(req, {"answer": "a 99e: weight 2375 lbs, 17.5 s, 8 cylinders."})
