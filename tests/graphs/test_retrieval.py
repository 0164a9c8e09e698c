"""Retrieval: entity matching, BM25, facts in the training format, caps."""

from __future__ import annotations

import pytest

from data_loaders.programs import facts_for
from graphs.config import RetrievalConfig
from graphs.retrieval import Retriever, normalize


@pytest.fixture(scope="module")
def retriever(cars):
    return Retriever([cars], RetrievalConfig())


def _row_of(table, name):
    return int(table.df.index[table.df[table.entity_column] == name][0])


def test_entity_match_is_case_insensitive_and_longest_wins(cars, retriever):
    r = retriever.retrieve("What is the horsepower of FORD PINTO RUNABOUT?")
    assert r.how == "entity"
    assert r.row_ids == [_row_of(cars, "ford pinto runabout")]
    r = retriever.retrieve("What is the horsepower of ford pinto?")
    assert r.row_ids == [_row_of(cars, "ford pinto")]
    assert r.context == cars.row_text(_row_of(cars, "ford pinto"))  # training serialization


def test_two_entities_listed_in_row_order(cars, retriever):
    r = retriever.retrieve("Which has the higher weight: ford pinto or chevrolet chevelle malibu?")
    assert r.row_ids == sorted(
        [_row_of(cars, "ford pinto"), _row_of(cars, "chevrolet chevelle malibu")]
    )


def test_count_fact_uses_training_format(cars, retriever):
    r = retriever.retrieve("How many cars have origin Japan?")
    where = [{"column": "Origin", "op": "==", "value": "Japan"}]
    assert facts_for(cars, {"where": where, "columns": []})[0] in r.context.splitlines()
    assert "[fact] rows where origin = Japan: " in r.context


def test_superlative_within_group_shows_winner_and_facts(cars, retriever):
    r = retriever.retrieve("Which car with origin Europe has the highest horsepower?")
    eu = cars.df[cars.df["Origin"] == "Europe"]
    winner = int(eu["Horsepower"].idxmax())
    assert winner in r.row_ids
    assert any(line.startswith("[fact] max horsepower where origin = Europe:") for line in r.facts)


def test_small_group_shown_whole_without_facts(cars, retriever):
    r = retriever.retrieve(
        "What is the average horsepower of cars with model year 1980 and origin USA?"
    )
    group = cars.df[(cars.df["Year"] == 1980) & (cars.df["Origin"] == "USA")]
    assert 0 < len(group) <= 8
    assert r.row_ids == [int(i) for i in group.index] and r.facts == []
    assert any(f.startswith("[fact] mean horsepower") for f in r.support)  # still backs the check


def test_numeric_threshold_filter(cars, retriever):
    r = retriever.retrieve("How many cars have horsepower above 200 hp?")
    n = int((cars.df["Horsepower"] > 200).sum())
    assert f"[fact] rows where horsepower > 200 hp: {n}" in r.context


def test_bm25_when_nothing_is_named(cars, retriever):
    r = retriever.retrieve("toyota corolla")  # a brand + model that names several rows
    assert r.how in ("bm25", "entity")
    assert r.row_ids and all("toyota" in normalize(cars.row_text(i)) for i in r.row_ids[:3])


def test_unknown_entity_finds_nothing(retriever):
    r = retriever.retrieve("What is the horsepower of the batmobile?")
    assert not r.found and r.context == ""


def test_caps_rows_and_chars(cars):
    small = Retriever([cars], RetrievalConfig(max_rows=3, max_chars=400))
    r = small.retrieve("Summarize the cars with origin Europe.", summary=True)
    assert len(r.row_ids) <= 3 and len(r.context) <= 400
    wide = small.retrieve("What is the weight of ford pinto?", wide=True)
    assert len(wide.row_ids) > 1  # the retry sees neighbours too


def test_several_tables_pick_the_one_named(cars, injected_table):
    r = Retriever([cars, injected_table]).retrieve("What is the power of beta two?")
    assert r.table is injected_table and r.row_ids == [1]


def test_a_unit_owned_by_one_column_names_it(cars, retriever):
    from graphs.validation import table_program

    p = retriever.retrieve("whats the mpg on a toyota corolla 1200").parse
    assert table_program(p)["column"] == "Miles_per_Gallon"
    assert table_program(p)["entity"] == "toyota corolla 1200"


def test_units_shared_by_columns_and_one_letter_units_name_none():
    from pathlib import Path

    from data_loaders.config import TableConfig
    from data_loaders.loaders import load_tables
    from graphs.retrieval import NameIndex

    [penguins] = load_tables([str(Path(__file__).parents[1] / "data" / "penguins.csv")],
                             TableConfig())
    index = NameIndex(penguins)
    assert "mm" not in index.names  # bill length, bill depth and flipper length share it
    assert index.names.get("g", ("none",))[0] != "column"


def test_an_inflected_column_word_names_the_column(cars, retriever):
    p = retriever.retrieve("Which weighs more, honda civic or ford maverick?").parse
    assert p.column_names == ["Weight_in_lbs"]
    # a longer word that merely starts the same does not ("originally" is not "origin")
    p = retriever.retrieve("what was honda civic originally?").parse
    assert p.column_names == []
