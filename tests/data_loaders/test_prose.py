"""Summary prose: a reference wording always checks; a wrong number, name or value never does."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from data_loaders.config import PrepareConfig, TableConfig
from data_loaders.config_loader import load_config
from data_loaders.dataset import build_dataset
from data_loaders.loaders import load_tables
from data_loaders.mentions import NameIndex
from data_loaders.prose import (
    check_prose,
    facts_text,
    mask_facts,
    prose_messages,
    reference_prose,
    summary_facts,
    unmask,
)

ROOT = Path(__file__).resolve().parents[2]
CARS_CONFIG = ROOT / "configs" / "prepare_cars.yaml"
TABLES = [
    ("examples/data/cars.csv", CARS_CONFIG),
    ("tests/data/airports.csv", None),
    ("tests/data/penguins.csv", None),
    ("tests/data/starwars.csv", None),
    ("tests/data/midwest.csv", None),
]
_NUM = re.compile(r"(?<![\w.\-])-?\d+(?:\.\d+)?(?![\w.])")


@pytest.fixture(scope="module")
def cars():
    cfg = load_config(TableConfig, CARS_CONFIG, section="table")
    return load_tables([ROOT / "examples" / "data" / "cars.csv"], cfg)[0]


def _summaries(table_file, config):
    pcfg = load_config(PrepareConfig, config) if config else PrepareConfig(max_pairs=400)
    table = load_tables([ROOT / table_file], pcfg.table)[0]
    pairs = [p for p in build_dataset([table], pcfg).all_pairs() if p.task == "summarize"]
    return table, pairs


def _wrong_versions(prose: str, facts, table) -> list[str]:
    """The prose with one thing made false: a number, two numbers swapped, a name, a value."""
    out = []
    nums = list(_NUM.finditer(prose))
    for m in nums:
        v = float(m.group())
        bumped = str(int(v) + 1) if v.is_integer() else str(round(v + 0.5, 2))
        out.append(prose[: m.start()] + bumped + prose[m.end():])
    for a, b in itertools.combinations(nums[:6], 2):
        if a.group() != b.group():
            out.append(prose[: a.start()] + b.group() + prose[a.end(): b.start()] + a.group()
                       + prose[b.end():])
    others = [table.entity_of(r) for r in range(0, len(table.df), 37)][:3] \
        if table.entity_column else []
    for f in facts:
        if f.kind == "name":
            out += [prose.replace(f.text, o) for o in others
                    if o != f.text and o.lower() not in prose.lower()]
        if f.kind in ("cell", "filter") and f.number is None \
                and table.column_types.get(f.column) == "categorical":
            for v in table.df[f.column].dropna().unique()[:3]:
                if str(v) != f.text:
                    out.append(re.sub(r"(?<!\w)" + re.escape(f.text) + r"(?!\w)", str(v), prose))
    out.append(prose.replace(" has ", " has not ", 1))
    out.append(prose.replace("mean", "highest").replace("averages", "peaks at"))
    return [o for o in out if o != prose]


@pytest.mark.parametrize("table_file,config", TABLES)
def test_reference_prose_checks_and_every_falsified_version_is_stopped(table_file, config):
    table, pairs = _summaries(table_file, config)
    assert len(pairs) > 40
    index = NameIndex(table)
    stopped_right, passed_wrong, tried = [], [], 0
    for k, p in enumerate(pairs):
        facts = summary_facts(table, p.provenance.program)
        slots, values = mask_facts(facts)
        prose = unmask(reference_prose(table, slots, np.random.default_rng(k)), values)
        if (why := check_prose(prose, facts, table, index)) is not None:
            stopped_right.append((prose, why))
        for wrong in _wrong_versions(prose, facts, table):
            tried += 1
            if check_prose(wrong, facts, table, index) is None:
                passed_wrong.append(wrong)
    assert stopped_right == []
    assert tried > 200 and passed_wrong == []


def _pinto(cars):
    row = NameIndex(cars).names["ford pinto"][2]
    spec = {"op": "summary_row", "row_id": int(row), "entity": "ford pinto",
            "columns": [c for c in cars.columns if c != cars.entity_column]}
    return summary_facts(cars, spec)


def test_prepare_stores_the_facts_as_slots_and_their_wording_for_summary_pairs():
    table, pairs = _summaries(*TABLES[0])
    for p in pairs:
        facts = summary_facts(table, p.provenance.program)
        assert p.prose_input and p.prose_input.startswith("table cars\nfacts:")
        assert "F1" in p.prose_input
        assert not any(re.search(rf"(?<![\w.]){re.escape(f.text)}(?![\w.])", p.prose_input)
                       for f in facts[1:] if f.kind != "filter")  # no value shown
        filled = unmask(p.prose_text, mask_facts(facts)[1])
        assert "F1" in p.prose_text and check_prose(filled, facts, table) is None


def test_a_slot_wording_that_attributes_a_slot_to_another_column_is_stopped(cars):
    facts = _pinto(cars)
    slots, values = mask_facts(facts)
    by_col = {f.column: s.text for f, s in zip(facts, slots, strict=True)}
    right = f"E1 has weight {by_col['Weight_in_lbs']} and {by_col['Cylinders']} cylinders."
    assert check_prose(unmask(right, values), facts, cars) is None
    for wrong in (f"E1 has weight {by_col['Miles_per_Gallon']}.",
                  f"E1 has weight {by_col['Year']}.", "E1 has weight F99."):
        assert check_prose(unmask(wrong, values), facts, cars) is not None


@pytest.mark.parametrize("prose", [
    "ford pinto has weight 2046 lbs and 4 cylinders.",
    "ford pinto: model year 1971, origin USA, fuel economy of 25 mpg.",
    "Ford Pinto has 4 cylinders. Its weight is 2046 lbs.",
])
def test_right_prose_about_a_row_passes(cars, prose):
    assert check_prose(prose, _pinto(cars), cars) is None


@pytest.mark.parametrize("prose,why", [
    ("ford pinto has weight 2046 lbs and horsepower 75 hp.", "75"),  # an empty cell
    ("ford pinto has weight 2046 hp.", "hp"),  # another column's unit
    ("ford pinto has 2046 lbs of horsepower.", "not a unit"),
    ("ford pinto has weight 2046 lbs, 19.", "19"),  # a number left to the weight
    ("ford pinto is a heavy car with 4 cylinders.", "heavy"),  # a judgment
    ("ford pinto is not from Japan and has 4 cylinders.", "not"),
    ("ford pinto has origin Japan.", "Japan"),
    ("ford maverick has 4 cylinders.", "ford maverick"),
    ("ford pinto has the highest weight, 2046 lbs.", "single row"),
    ("ford pinto has more weight than 2046 lbs.", "more"),
    ("ford pinto has weight more than 2046 lbs.", "filter"),
    ("", "empty"),
    ("ford pinto is a car.", "none of the facts"),
    ("ford pinto has weight and horsepower of 2046 lbs.", "weight"),
])
def test_wrong_or_unfounded_prose_about_a_row_is_stopped(cars, prose, why):
    reason = check_prose(prose, _pinto(cars), cars)
    assert reason is not None and why.lower() in reason.lower()


def test_a_group_summary_checks_statistics_and_the_filter(cars):
    spec = {"op": "summary_group", "where": [{"column": "Origin", "op": "==", "value": "Japan"}],
            "columns": ["Horsepower"]}
    facts = summary_facts(cars, spec)
    st = {f.kind: f.text for f in facts if f.column == "Horsepower"}
    n = next(f.text for f in facts if f.kind == "count")
    right = f"There are {n} cars with origin Japan. Their horsepower ranges from {st['min']} " \
            f"to {st['max']}, with a mean of {st['mean']}."
    assert check_prose(right, facts, cars) is None
    assert facts_text(cars, facts).splitlines()[1:] == [
        f"min horsepower: {st['min']}", f"max horsepower: {st['max']}",
        f"mean horsepower: {st['mean']}"]
    wrong = [
        right.replace(f"from {st['min']} to {st['max']}", f"from {st['max']} to {st['min']}"),
        right.replace("a mean of", "a highest of"),
        right.replace("origin Japan", "origin Europe"),
        right.replace(f"There are {n}", f"There are {int(n) + 1}"),
        right.replace("with origin Japan", "with horsepower above 90 hp"),
    ]
    for w in wrong:
        assert check_prose(w, facts, cars) is not None, w


def test_the_prose_prompt_shows_the_facts_as_slots(cars):
    msgs = prose_messages(cars, _pinto(cars))
    assert msgs[0]["role"] == "system" and "car: E1\nfuel economy: F1" in msgs[1]["content"]
    assert "2046" not in msgs[1]["content"] and "pinto" not in msgs[1]["content"]
    assert "horsepower" not in msgs[1]["content"]  # the empty cell is no fact


def test_a_statistic_word_needs_its_number(cars):
    spec = {"op": "summary_group", "where": [{"column": "Origin", "op": "==", "value": "Japan"}],
            "columns": ["Horsepower"]}
    facts = summary_facts(cars, spec)
    n = next(f.text for f in facts if f.kind == "count")
    assert check_prose(f"There are {n} cars with origin Japan.", facts, cars) is None
    why = check_prose(f"There are {n} cars, most of them with origin Japan.", facts, cars)
    assert why is not None and "max" in why
