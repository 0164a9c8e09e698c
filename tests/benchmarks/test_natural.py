"""The natural-phrasing set is well formed, its answers recompute from pandas, and its scorer
tells a right reply from a wrong one."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.natural import (
    FIELDS,
    KINDS,
    ROUTES,
    candidates,
    evaluate,
    load_requests,
    load_table,
    read_verdict,
    score_reply,
    states,
)

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "benchmarks" / "data" / "natural" / "build.py"
TASK_OF_KIND = {"claim": "validate", "summary_row": "summarize", "summary_group": "summarize"}


@pytest.fixture(scope="module")
def requests() -> list[dict]:
    return load_requests()


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("natural_build", BUILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------


def test_every_line_has_the_fields_and_valid_values(requests):
    for r in requests:
        assert tuple(r) == FIELDS, r["id"]
        assert r["route"] in ROUTES and r["kind"] in KINDS, r["id"]
        assert r["route"] == TASK_OF_KIND.get(r["kind"], "qa"), r["id"]
        assert (ROOT / r["table"]).is_file(), r["table"]
        assert r["request"] == r["request"].strip() and r["request"], r["id"]


def test_size_and_spread(requests):
    assert len(requests) >= 150
    per_table = Counter(r["table"] for r in requests)
    assert len(per_table) >= 3
    assert min(per_table.values()) >= 40, per_table
    assert set(Counter(r["kind"] for r in requests)) == set(KINDS)
    claims = Counter(r["expected"] for r in requests if r["kind"] == "claim")
    assert claims[True] >= 5 and claims[False] >= 5


def test_ids_unique_and_follow_ups_point_back(requests):
    ids = [r["id"] for r in requests]
    assert len(set(ids)) == len(ids)
    seen: dict[str, dict] = {}
    for r in requests:
        if r["follows"] is not None:
            assert r["follows"] in seen, f"{r['id']} follows an unknown or later id"
            assert seen[r["follows"]]["table"] == r["table"]
        seen[r["id"]] = r
    assert sum(r["follows"] is not None for r in requests) >= 5


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def test_every_pandas_expression_reevaluates_to_expected(requests):
    frames: dict[str, pd.DataFrame] = {}
    for r in requests:
        df = frames.setdefault(r["table"], pd.read_csv(ROOT / r["table"]))
        assert _same(evaluate(r["pandas"], df), r["expected"]), r["id"]


def test_answers_are_the_same_on_the_tables_the_app_loads(requests):
    # the app's loader may drop or coerce rows (airports: a repeated name); no request may
    # depend on that
    from data_loaders.config import TableConfig
    from data_loaders.config_loader import load_config
    from data_loaders.loaders import load_tables

    configs = {"examples/data/cars.csv": ROOT / "configs" / "prepare_cars.yaml"}
    frames: dict[str, pd.DataFrame] = {}
    for r in requests:
        if r["table"] not in frames:
            cfg = configs.get(r["table"])
            tcfg = load_config(TableConfig, cfg, section="table") if cfg else TableConfig()
            frames[r["table"]] = load_tables([ROOT / r["table"]], tcfg)[0].df
        assert _same(evaluate(r["pandas"], frames[r["table"]]), r["expected"]), r["id"]


def test_null_answers_are_empty_cells_or_outside_the_table(requests):
    for r in requests:
        if r["kind"] == "empty_cell":
            assert r["expected"] is None and r["pandas"] != "None", r["id"]
        elif r["kind"] in ("unanswerable", "free"):
            assert r["expected"] is None and r["pandas"] == "None", r["id"]
        else:
            assert r["expected"] is not None, r["id"]


def test_the_file_is_what_build_writes(requests, build):
    assert build.build() == requests


def test_build_refuses_ties(build, monkeypatch):
    cars = build.CARS  # two cars share the quickest 0-60 time (8.0 s)
    tie = ("x1", cars, "quickest car", "superlative",
           "df.set_index('Name').Acceleration.nsmallest(1,keep='all').index.item()", None)
    monkeypatch.setattr(build, "R", [tie])
    with pytest.raises(ValueError):
        build.build()
    top = ("x2", cars, "3 quickest cars", "topk",
           "df.nsmallest(3,'Acceleration',keep='all').Name.tolist()", None)
    monkeypatch.setattr(build, "R", [top])
    with pytest.raises(AssertionError, match="tie"):
        build.build()


def test_build_refuses_a_name_the_request_does_not_say(build, monkeypatch):
    bad = ("x3", build.CARS, "how heavy is it", "lookup",
           "df.loc[df.Name=='amc gremlin','Weight_in_lbs'].item()", None)
    monkeypatch.setattr(build, "R", [bad])
    with pytest.raises(AssertionError, match="not in request"):
        build.build()


def _template_patterns():
    from data_loaders.templates import TEMPLATES

    slot = {"k": r"\d+", "more": r"(?:higher|lower)", "most": r"(?:highest|lowest)",
            "where_with": r"\S+ .+?", "where_is": r"\S+ is .+?"}
    out = []
    for t in TEMPLATES.values():
        parts = re.split(r"(\{\w+\})", t.text.rstrip("?.").strip())
        if len(re.findall(r"[A-Za-z]+", re.sub(r"\{\w+\}", "", t.text))) < 2:
            continue  # "{entity} {col}?" says nothing about wording
        rx = "".join(slot.get(p[1:-1], ".+?") if p.startswith("{") else re.escape(p)
                     for p in parts)
        out.append((t.id, re.compile(f"^{rx}$", re.I)))
    return out


def test_no_request_is_worded_like_a_template(requests):
    # p50 is the issue's own example of a natural summary request
    allowed = {"p50"}
    hits = [(r["id"], tid) for r in requests if r["id"] not in allowed
            for tid, rx in _template_patterns()
            if rx.match(r["request"].rstrip("?.! ").strip())]
    assert hits == []


def test_load_requests_names_the_bad_line(tmp_path):
    good = {f: None for f in FIELDS}
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(good) + "\n" + json.dumps({"id": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:2: missing field"):
        load_requests(f)
    f.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:1: not a JSON object"):
        load_requests(f)
    assert load_requests()  # the default file loads


def test_load_table_reads_with_pandas_defaults():
    df = load_table("tests/data/penguins.csv")
    assert len(df) == 38 and df["body_mass_g"].isna().sum() == 1


# --------------------------------------------------------------------------------------------
# The scorer
# --------------------------------------------------------------------------------------------

COMPARE = {
    "kind": "compare", "expected": "ford torino",
    "pandas": "df.set_index('Name').loc[['ford torino','amc rebel sst'],'Weight_in_lbs']"
              ".nlargest(1,keep='all').index.item()",
}


def _req(expected, kind="lookup", **kw):
    return {"expected": expected, "kind": kind, "pandas": "", **kw}


@pytest.mark.parametrize(
    "expected, reply, right",
    [
        (2648, "The amc gremlin weighs 2,648 lbs.", True),
        (2648, "The amc gremlin weighs 2,684 lbs.", False),
        (30.1, "Japanese cars average about 30.10 mpg", True),
        (3188.79, "the mean weight is 3188.7857 lbs", True),
        (3188.79, "the mean weight is roughly 3189 lbs", False),
        (-81.75955556, "its longitude is -81.76", True),
        (-81.75955556, "its longitude is 81.76", False),
        (21, "the citroen ds-21 pallas has 115 hp", True),
        (-21, "the citroen ds-21 pallas has 115 hp", False),
        (5, "the audi 5000 has 5 cylinders", True),
        (5, "the audi 5000 has 4 cylinders", False),
        ("Gentoo", "gentoos have the heaviest penguin (6300 g)", True),
        ("male", "females have longer flippers", False),
        ("Key West International", "That is key west international, at 24.56° N.", True),
        ("CA", "Truckee-Tahoe is in CA.", True),
        ("CA", "Truckee-Tahoe is in NV, not in Canada.", False),
    ],
)
def test_scalar_answers(expected, reply, right):
    assert score_reply(_req(expected), reply, {}) is right


@pytest.mark.parametrize(
    "reply, right",
    [
        ("The ford torino (3449 lbs) is heavier than the amc rebel sst (3433 lbs).", True),
        ("The amc rebel sst is heavier than the ford torino.", False),
        ("I could not compare them.", False),
    ],
)
def test_comparison_answer_is_the_first_candidate_named(reply, right):
    assert candidates(COMPARE) == ["ford torino", "amc rebel sst"]
    assert score_reply(COMPARE, reply, {}) is right


def test_a_candidate_inside_a_longer_one_is_not_counted():
    req = {"kind": "compare", "expected": "vw rabbit custom",
           "pandas": "df.loc[['vw rabbit','vw rabbit custom'],'x']"}
    assert score_reply(req, "the vw rabbit custom beats the vw rabbit", {})
    assert not score_reply(req, "the vw rabbit beats the vw rabbit custom", {})


@pytest.mark.parametrize(
    "expected, kind, reply, right",
    [
        (["mazda rx2 coupe", "maxda rx3"], "list", "Mazda RX2 Coupe and maxda rx3.", True),
        (["mazda rx2 coupe", "maxda rx3"], "list", "Only the mazda rx2 coupe.", False),
        ([6300.0, 5750.0, 5700.0], "topk", "6,300 g, 5,750 g and 5,700 g", True),
        ({"Europe": 80.75, "Japan": 81.66, "USA": 122.47}, "groupby",
         "Europe: 80.75 hp, Japan: 81.66 hp, USA: 122.47 hp", True),
        ({"Europe": 80.75, "Japan": 81.66, "USA": 122.47}, "groupby",
         "80.75 (Europe), 81.66 (Japan) and 122.47 (USA)", True),
        ({"Europe": 80.75, "Japan": 81.66, "USA": 122.47}, "groupby",
         "Europe: 81.66 hp, Japan: 80.75 hp, USA: 122.47 hp", False),
        ({"Europe": 80.75, "Japan": 81.66, "USA": 122.47}, "groupby",
         "Europe: 80.75 hp, USA: 122.47 hp", False),
        ({"3": 20.55, "4": 29.44}, "groupby", "3 cylinders: 20.55 mpg; 4 cylinders: 29.44 mpg",
         True),
        ({"3": 20.55, "4": 29.44}, "groupby", "3 cylinders: 29.44 mpg; 4 cylinders: 20.55 mpg",
         False),
        ({"Miles_per_Gallon": 29.0, "Horsepower": 70.0, "Origin": "Europe"}, "summary_row",
         "A car from Europe with 70 hp doing 29 mpg.", True),
        ({"Miles_per_Gallon": 29.0, "Horsepower": 70.0, "Origin": "Europe"}, "summary_row",
         "A car from Europe with 70 hp.", False),
        ({"airports": 2, "names": ["Hana", "Kona International At Keahole"]}, "summary_group",
         "2 airports: Hana and Kona International At Keahole.", True),
        ({"airports": 2, "names": ["Hana", "Kona International At Keahole"]}, "summary_group",
         "2 airports, including Hana.", False),
    ],
)
def test_lists_groups_and_summaries(expected, kind, reply, right):
    assert score_reply(_req(expected, kind), reply, {}) is right


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("Yes: the Cylinders of mazda rx-4 is 3.", True),
        ("No: the cylinders of mazda rx-4 is 3, so the claim (8) does not hold.", False),
        ("That's not true, it has 3 cylinders.", False),
        ("Correct, it weighs 4354 lbs.", True),
        ("Incorrect: it is from Europe.", False),
        ("True.", True),
        ("The mazda rx-4 has 3 cylinders.", None),
    ],
)
def test_claims_read_yes_or_no(reply, verdict):
    assert read_verdict(reply) is verdict
    for expected in (True, False):
        assert score_reply(_req(expected, "claim"), reply, {}) is (verdict is expected)


@pytest.mark.parametrize(
    "state, right",
    [
        ({"verdict": {"supported": True}}, False),
        ({"verdict": {"supported": False}}, True),
        ({"verdict": {"supported": None}}, True),
        ({"verdict": None}, True),
        ({}, True),
        (None, True),
    ],
)
def test_null_expected_is_right_unless_presented_as_supported(state, right):
    for kind in ("empty_cell", "unanswerable", "free"):
        reply = "The price of the ford pinto is 3000 dollars."
        assert score_reply(_req(None, kind), reply, state) is right


@pytest.mark.parametrize(
    "reply, right",
    [
        ("The table has no horsepower value for ford pinto.", True),
        ("The horsepower of ford pinto is missing.", True),
        ("ford pinto: horsepower is empty in the table", True),
        ("The horsepower of ford pinto is 75 hp.", False),
        ("There is no doubt: 75 hp.", False),
    ],
)
def test_an_empty_cell_may_be_stated_as_such(reply, right):
    state = {"verdict": {"supported": True}, "answered_by": "program"}
    assert score_reply(_req(None, "empty_cell"), reply, state) is right
    assert score_reply(_req(None, "unanswerable"), reply, state) is False


REFUSAL = ("I could not give an answer that the table supports. The model suggested \"I don't "
           "know\", but it states no value found in the retrieved rows. The rows: saab 99e: "
           "origin Europe, mpg 25.")


@pytest.mark.parametrize(
    "answered_by", ["none", "student (unsupported)", "program (failed)", "program (asked back)"])
def test_a_declined_reply_answers_nothing(answered_by):
    state = {"verdict": {"supported": False}, "answered_by": answered_by}
    for expected, kind in (("Europe", "lookup"), (25, "lookup"), (False, "claim"),
                           (["saab 99e"], "list")):
        assert score_reply(_req(expected, kind), REFUSAL, state) is False
        assert score_reply(_req(expected, kind), REFUSAL, {}) is True  # text alone: it says it
    assert score_reply(_req(None, "empty_cell"), REFUSAL, state) is True


def test_a_false_claim_answered_no_is_right_though_not_supported():
    state = {"verdict": {"supported": False, "checked_by": "table"}, "answered_by": "program"}
    reply = "No: the cylinders of mazda rx-4 is 3, so the claim (8) does not hold."
    assert score_reply(_req(False, "claim"), reply, state)


def test_verdict_may_be_an_object():
    class Verdict:
        supported = True

    assert not score_reply(_req(None, "unanswerable"), "It costs 3000 dollars.",
                           {"verdict": Verdict()})


def test_states_is_whole_words():
    assert states("the ford pinto runabout", "ford pinto")  # a longer name still says it
    assert not states("the ford pintos", "ford pint")
    assert not states("a female", "male")
    assert states("a 1970 car", 1970) and not states("a 19700 car", 1970)


def test_readme_counts_are_current(requests, build):
    readme = (BUILD.parent / "README.md").read_text(encoding="utf-8")
    assert build.counts_table(requests) in readme
    assert f"holds {len(requests)} requests" in readme
