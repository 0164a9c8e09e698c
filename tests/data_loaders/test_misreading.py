"""Misreading checks: they stop a program that contradicts its request, never a gold one."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_loaders.config import PrepareConfig, TableConfig
from data_loaders.config_loader import load_config
from data_loaders.dataset import build_dataset
from data_loaders.loaders import load_tables
from data_loaders.mentions import NameIndex
from data_loaders.misreading import (
    column_terms,
    contradictions,
    ungrounded_columns,
    unused_mentions,
)
from data_loaders.program_text import mask_request

ROOT = Path(__file__).resolve().parents[2]
CARS_CONFIG = ROOT / "configs" / "prepare_cars.yaml"


@pytest.fixture(scope="module")
def cars():
    cfg = load_config(TableConfig, CARS_CONFIG, section="table")
    return load_tables([ROOT / "examples" / "data" / "cars.csv"], cfg)[0]


def _checks(table, request: str, program: str) -> tuple[list, list, list]:
    masked = mask_request(request, NameIndex(table))
    return (unused_mentions(program, masked, table), contradictions(program, masked, table),
            ungrounded_columns(program, masked, table))


@pytest.mark.parametrize("table_file,config", [
    ("examples/data/cars.csv", CARS_CONFIG),
    ("tests/data/airports.csv", None),
    ("tests/data/penguins.csv", None),
    ("tests/data/starwars.csv", None),
    ("tests/data/midwest.csv", None),
])
def test_no_gold_program_reads_as_a_misreading(table_file, config):
    """Every dataset pair's own program passes all three checks (so they only stop misreads)."""
    pcfg = load_config(PrepareConfig, config) if config else PrepareConfig(max_pairs=400)
    table = load_tables([ROOT / table_file], pcfg.table)[0]
    pairs = [p for p in build_dataset([table], pcfg).all_pairs() if p.program_text]
    assert len(pairs) > 100
    index = NameIndex(table)
    flagged = []
    for p in pairs:
        masked = mask_request(p.question, index)
        found = (unused_mentions(p.program_text, masked, table)
                 + contradictions(p.program_text, masked, table)
                 + ungrounded_columns(p.program_text, masked, table))
        if found:
            flagged.append((p.question, p.program_text, found))
    assert flagged == []


@pytest.mark.parametrize("request_text,program", [
    ("how heavy is the plymouth satellite", "lookup E1 Weight_in_lbs"),
    ("whats the mpg on a toyota corolla 1200", "lookup E1 Miles_per_Gallon"),
    ("how fast does the ford pinto accelerate", "lookup E1 Acceleration"),
    ("which is more powerfull, amc rebel sst or ford torino", "compare E1 E2 Horsepower max"),
    ("average weight of japanese cars", "aggregate mean Weight_in_lbs where C1"),
    ("which european car has the lowest horsepwer", "superlative Horsepower min where C1"),
    ("the car with the lowest 0-60 mph time", "superlative Acceleration min"),
    ("how many cars per origin", "group count by Origin"),
    ("the ford pinto weighs over 2000 lbs, right?", "claim E1 Weight_in_lbs > V1"),
    ("where is the saab 99e from", "lookup E1 Origin"),
])
def test_a_right_reading_passes(cars, request_text, program):
    assert _checks(cars, request_text, program) == ([], [], [])


@pytest.mark.parametrize("request_text,program,found", [
    # a column the request never names (the student's guesses on natural requests)
    ("engine size of the pontiac catalina", "lookup E1 Year", (2, "Year")),
    ("what was the sticker price of the honda civic", "lookup E1 Year", (2, "Year")),
    ("how many distinct cylinder counts show up", "distinct Year", (2, "Year")),
    ("how heavy is the plymouth satellite", "lookup E1 Horsepower", (2, "Horsepower")),
    ("cars from japan with weight above 3000 lbs",
     "list where C1 and Horsepower > V1", (2, "Horsepower")),
    # the request's own words say another aggregate, direction or row count
    ("average horsepower by origin", "group sum Horsepower by Origin", (1, "average")),
    ("avg mpg for each number of cylinders", "group count by Cylinders", (1, "average")),
    ("What is the total horsepower of cars with displacement above 351 cu in?",
     "aggregate mean Horsepower where Displacement > V1", (1, "total")),
    ("how many cars weigh more than 4500 lbs", "aggregate max Weight_in_lbs where "
     "Weight_in_lbs > V1", (1, "how many")),
    ("Among cars with cylinders 4 and origin Europe, which 4 have the highest weight?",
     "superlative Weight_in_lbs max where Cylinders == V1 and C1", (1, "4 rows")),
    ("top 3 heaviest cars", "superlative Weight_in_lbs max", (1, "3 rows")),
    ("how many cars weigh more than 2 tons", "aggregate count where Weight_in_lbs > V1",
     (1, "in tons")),
    ("the honda civic weighs 900 kg, right?", "claim E1 Weight_in_lbs == V1", (1, "in kg")),
    ("is the horsepower of saab 99e above 165 hp?", "claim E1 Horsepower < V1", (1, "<")),
    # an aggregate, a number or a summary the request never asks for
    ("lightest european car?", "aggregate count where C1", (1, "never says 'how many'")),
    ("which japanese car has the best fuel economy",
     "aggregate sum Miles_per_Gallon where C1", (1, "asks which")),
    ("what is the avreage weight of cars from japan", "aggregate sum Weight_in_lbs where C1",
     (1, "average")),
    ("how many wheels does the ford pinto have", "summary_row E1", (1, "not a summary")),
    ("describe the cars from japan", "list where C1", (1, "asks for a summary")),
    ("how many unique origins are in the table", "group count by Origin", (1, "different")),
    ("fuel economy of cars from japan", "aggregate max Miles_per_Gallon where C1",
     (1, "no highest or lowest")),
    # a filter no row meets, rows the request excludes, a breakdown nobody asked for
    ("avg weight, japan vs europe", "aggregate mean Weight_in_lbs where C1 and C2",
     (1, "a row has one")),
    ("how many cars are from outside the usa", "aggregate count where C1", (1, "excludes")),
    ("how many cars does the table have from japan", "group count by Origin",
     (1, "no breakdown")),
    ("The car with the highest weight among cars with origin Europe?",
     "aggregate max Weight_in_lbs where C1", (1, "asks which")),
    ("Add up the horsepower of all cars whose displacement is above 351 cu in",
     "aggregate sum Displacement where Horsepower > V1", (1, "in cu")),
    # a number glued to its unit is still a mention the program must use
    ("avg weight of japan cars is above 2000lbs yes?", "aggregate mean Weight_in_lbs where C1",
     (0, "V1")),
])
def test_a_misreading_is_found(cars, request_text, program, found):
    which, words = found
    got = _checks(cars, request_text, program)[which]
    assert got and any(words in g for g in got), got


def test_a_number_glued_to_its_unit_is_a_number_then_the_unit(cars):
    masked = mask_request("cars heavier than 3000lbs", NameIndex(cars))
    assert masked.text == "cars heavier than V1 lbs" and masked.slots["V1"].value == 3000.0


def test_the_sum_in_summarize_names_no_aggregate(cars):
    assert _checks(cars, "summarize the cars with origin japan",
                   "summary_group where C1") == ([], [], [])


def test_everyday_words_join_a_column_by_its_own_words(cars):
    weight = column_terms(cars, "Weight_in_lbs")
    assert {"heavy", "heaviest", "weighs", "lbs", "pounds"} <= weight
    assert "heavy" not in column_terms(cars, "Horsepower")


def test_an_everyday_short_word_names_a_code_only_in_capitals():
    """ "me" is not Maine ("ME"), so a gold program never seems to leave it out."""
    airports = load_tables([ROOT / "tests" / "data" / "airports.csv"], TableConfig())[0]
    index = NameIndex(airports)
    assert "ME" in set(airports.df["state"])
    masked = mask_request("Show me the airports with state ME.", index)
    assert masked.text == "show me the airports with state C1"
    assert masked.slots["C1"].value == "ME"
