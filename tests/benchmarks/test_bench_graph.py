"""The natural-phrasing set is big and varied enough, its answers recompute from pandas, and the
graph benchmark's scorer tells a right reply from a wrong one (no graph or model is run)."""

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = ROOT / "benchmarks" / "data" / "natural_requests.jsonl"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def natural():
    return _load("make_natural", ROOT / "benchmarks" / "data" / "make_natural.py")


@pytest.fixture(scope="module")
def bench():
    return _load("bench_graph", ROOT / "benchmarks" / "bench_graph.py")


@pytest.fixture(scope="module")
def records():
    from data_loaders.io import read_jsonl

    return read_jsonl(REQUESTS)


def test_set_size_and_spread(records):
    assert len(records) >= 150
    tables = Counter(r["table"] for r in records)
    assert len(tables) >= 3 and all((ROOT / t).is_file() for t in tables)
    assert set(r["route"] for r in records) == {"qa", "summarize", "validate"}
    assert {"lookup", "compare", "superlative", "aggregate", "claim", "summary"} <= {
        r["kind"] for r in records}
    assert len({r["id"] for r in records}) == len(records)
    threads = Counter(r["thread"] for r in records if r["thread"])
    assert threads and all(n >= 2 for n in threads.values())  # a follow-up has a first turn
    for r in records:
        if r["route"] == "validate":
            assert r["expected"] in ("yes", "no")
        if r["route"] == "summarize":
            assert isinstance(r["expected"], list) and r["expected"]


def test_every_answer_recomputes_from_its_pandas(natural, records):
    by_id = {r.id: r for r in natural.REQUESTS}
    assert set(by_id) == {r["id"] for r in records}  # the JSONL is the generator's output
    for rec in records:
        name = next(k for k, v in natural.TABLES.items() if v[0] == rec["table"])
        exprs = rec["pandas"] if isinstance(rec["pandas"], list) else [rec["pandas"]]
        got = [natural.fmt(natural.evaluate(name, e)) for e in exprs]
        assert (got if isinstance(rec["expected"], list) else got[0]) == rec["expected"], rec["id"]
        assert by_id[rec["id"]].record() == rec


def test_ties_are_refused(natural):
    with pytest.raises(ValueError, match="tie"):
        natural.top(pd.Series([1, 3, 3], index=["a", "b", "c"]))


@pytest.fixture(scope="module")
def cars_vocab(bench):
    df = pd.read_csv(ROOT / "examples" / "data" / "cars.csv")
    return bench.Vocab.of(df, ["0-60 mph time", "lbs"])


def rec(request, expected, route="qa", kind="lookup", also=()):
    return {"request": request, "expected": expected, "route": route, "kind": kind,
            "also_correct": list(also)}


@pytest.mark.parametrize("reply,right", [
    ("3504 lbs", True),
    ("The chevrolet chevelle malibu weighs 3,504 lbs.", True),
    ("3504 lbs (130 hp)", True),  # another true cell of the same row
    ("3693 lbs", False),  # another car's weight
    ("3504 or 3693 lbs", False),  # the right value and a competing one
    ("130", False),
])
def test_number_lookup(bench, cars_vocab, reply, right):
    r = rec("how heavy is the chevrolet chevelle malibu?", "3504", also=["130", "18"])
    assert bench.score(r, reply, cars_vocab)["right"] is right


def test_numbers_inside_names_and_requests_are_not_values(bench, cars_vocab):
    r = rec("mpg of the buick skylark 320 from 1970", "15")
    assert bench.score(r, "The buick skylark 320 (1970) gets 15 mpg.", cars_vocab)["right"]
    r = rec("mean 0-60 time of the japanese cars", "16.0017")
    assert bench.score(r, "The mean 0-60 mph time is 16.0 s", cars_vocab)["right"]
    assert not bench.score(r, "The mean 0-60 mph time is 15.2 s", cars_vocab)["right"]


def test_names_compare_claims_summaries_refusals(bench, cars_vocab):
    sup = rec("heaviest japanese car", "datsun 810 maxima", kind="superlative")
    assert bench.score(sup, "Datsun 810 Maxima (2930 lbs)", cars_vocab)["right"]
    assert not bench.score(sup, "datsun 280-zx", cars_vocab)["right"]
    assert not bench.score(sup, "datsun 810 maxima or datsun 280-zx", cars_vocab)["right"]
    cmp_ = rec("which is heavier, the ford torino or the amc rebel sst?", "ford torino",
               kind="compare")
    assert bench.score(cmp_, "The ford torino is heavier than the amc rebel sst.",
                       cars_vocab)["right"]
    assert not bench.score(cmp_, "The amc rebel sst is lighter than the ford torino.",
                           cars_vocab)["right"]
    claim = rec("is it true that the datsun 510 is japanese", "yes", route="validate",
                kind="claim")
    assert bench.score(claim, "Yes: the table gives origin Japan.", cars_vocab)["right"]
    assert bench.score(claim, "True.", cars_vocab)["right"]
    assert not bench.score(claim, "No.", cars_vocab)["right"]
    assert not bench.score(claim, "The datsun 510 is from Japan.", cars_vocab)["right"]
    summ = rec("tell me about the datsun 510", ["27.2", "97", "Japan"], route="summarize",
               kind="summary", also=["2300"])
    out = bench.score(summ, "datsun 510: 27.2 mpg, 97 hp, 2300 lbs, from Japan", cars_vocab)
    assert out["right"]
    out = bench.score(summ, "datsun 510: 27.2 mpg, 97 hp, 2500 lbs, from Japan", cars_vocab)
    assert not out["right"] and out["wrong_values"] == [2500.0]
    assert not bench.score(summ, "datsun 510: 27.2 mpg, from Japan", cars_vocab)["right"]
    empty = rec("whats the horsepower of the ford pinto", "(no value)")
    assert bench.score(empty, "The table has no horsepower value for ford pinto.",
                       cars_vocab)["right"]
    assert not bench.score(empty, "86 hp", cars_vocab)["right"]
    look = rec("how heavy is the chevrolet chevelle malibu?", "3504")
    assert not bench.score(look, "3504 lbs", cars_vocab, refused=True)["right"]
