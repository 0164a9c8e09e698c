"""Tables nobody described: index columns, units in names, two-column names, the row noun.

The tables in tests/data imitate public exports: ``starwars.csv`` (R, with ``rownames``),
``penguins.csv`` (``_mm``/``_g`` suffixes, no name column) and ``midwest.csv`` (counties named by
``county`` + ``state``, a ``PID`` id).
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from data_loaders.choices import choices_yaml
from data_loaders.cli import prepare_command
from data_loaders.columns import detect_entity_pair, index_columns, infer_column_type
from data_loaders.config import ColumnConfig, PrepareConfig, TableConfig
from data_loaders.config_loader import load_config, validate_config
from data_loaders.dataset import build_dataset
from data_loaders.errors import InputError
from data_loaders.loaders import load_table, table_from_dataframe
from data_loaders.naming import plural, row_noun, unit_from_name
from data_loaders.programs import run_program, verify_pair
from data_loaders.templates import entity_noun

DATA = Path(__file__).resolve().parents[1] / "data"
STARWARS, PENGUINS, MIDWEST = DATA / "starwars.csv", DATA / "penguins.csv", DATA / "midwest.csv"


@pytest.fixture(scope="module")
def starwars():
    return load_table(STARWARS)


@pytest.fixture(scope="module")
def penguins():
    return load_table(PENGUINS)


@pytest.fixture(scope="module")
def midwest():
    return load_table(MIDWEST)


def _pairs(table, n=150):
    ds = build_dataset([table], PrepareConfig(max_pairs=n))
    assert ds.failed == []
    return ds.all_pairs()


def _types(df):
    return {c: infer_column_type(df[c]) for c in df}


# --------------------------------------------------------------------------- index columns


def test_r_rownames_are_left_out_of_questions_and_context(starwars):
    assert "rownames" not in starwars.df.columns and "rownames" not in starwars.columns
    assert starwars.choices.ignored == {"rownames": "unique integers named like an index"}
    assert starwars.entity_column == "name"
    pairs = _pairs(starwars)
    assert not [p.question for p in pairs if "rownames" in p.question + p.context + p.answer]


def test_an_id_column_is_left_out_and_the_name_columns_stay(midwest):
    assert "PID" not in midwest.columns
    assert midwest.choices.ignored == {"PID": "unique integers named like an id"}


@pytest.mark.parametrize(
    ("first", "values", "dropped"),
    [
        ("Unnamed: 0", [3, 0, 2, 1, 4, 5], True),  # pandas' index, rows shuffled after export
        ("", [1, 2, 3, 4, 5, 6], True),  # blank header: R's write.csv, pandas' to_csv
        ("n", [1, 2, 3, 4, 5, 6], True),  # a first column counting rows
        ("record_id", [10, 12, 17, 30, 31, 40], True),
        ("year", [2001, 2002, 2003, 2004, 2005, 2006], False),  # one row per year: data
        ("rank", [1, 2, 3, 4, 5, 6], False),
        ("score", [10, 12, 17, 30, 31, 40], False),  # increasing but not named like an index
        ("team_id", [1, 1, 2, 2, 3, 3], False),  # repeats: a group, not a row id
    ],
)
def test_index_like_first_columns(first, values, dropped):
    df = pd.DataFrame({first: values, "city": list("abcdef"), "pop": [5, 3, 8, 1, 9, 2]})
    t = table_from_dataframe(df, name="t", source="t")
    name = first or "column_1"
    assert (name not in t.columns) == dropped, t.choices.ignored


def test_real_numeric_columns_are_not_index_columns():
    # unique and increasing, but not the first column and not named like an index or id
    df = pd.DataFrame({"city": list("abcdef"), "population": [100, 200, 300, 400, 500, 600]})
    assert index_columns(df, _types(df)) == {}
    codes = pd.DataFrame({"name": list("abcdef"), "customer_id": [f"C{i}" for i in range(6)],
                          "v": range(6)})
    assert index_columns(codes, _types(codes)) == {"customer_id": "unique codes named like an id"}
    assert index_columns(codes, _types(codes), keep={"customer_id"}) == {}


def test_index_columns_named_in_the_config_or_as_entity_stay():
    df = pd.DataFrame({"rownames": range(1, 7), "v": [5, 3, 8, 1, 9, 2], "g": list("aabbcc")})
    assert "rownames" not in table_from_dataframe(df, name="t", source="t").columns
    kept = table_from_dataframe(
        df, name="t", source="t", config=TableConfig(columns={"rownames": ColumnConfig()})
    )
    assert "rownames" in kept.columns and kept.choices.ignored == {}
    entity = table_from_dataframe(
        df, name="t", source="t", config=TableConfig(entity_column="rownames")
    )
    assert entity.entity_column == "rownames" and entity.entity_of(2) == "3"


def test_r_row_names_that_are_names_name_the_rows():
    # mtcars exported by R: the row names are the car models
    df = pd.DataFrame({"rownames": ["Mazda RX4", "Datsun 710", "Valiant", "Duster 360"],
                       "mpg": [21.0, 22.8, 18.1, 14.3], "cyl": [6, 4, 6, 8]})
    t = table_from_dataframe(df, name="mtcars", source="mtcars.csv")
    assert t.entity_column == "rownames" and t.display["rownames"] == "name"
    assert t.row_text(0).startswith("[row 0] name: Mazda RX4 |")
    assert entity_noun(t) == "entry"  # 'mtcars' is no word


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("column", "read"),
    [
        ("bill_length_mm", ("bill length", "mm")),
        ("bill length mm", ("bill length", "mm")),
        ("body_mass_g", ("body mass", "g")),
        ("Weight_in_lbs", ("Weight", "lbs")),
        ("share_pct", ("share", "%")),
        ("price_usd", ("price", "USD")),
        ("speed_kmh", ("speed", "km/h")),
        ("area_sq_km", ("area", "km²")),
        ("duration_min", ("duration", "min")),
        ("Weight (kg)", ("Weight", "kg")),
        ("Price [USD]", ("Price", "USD")),
        ("cost_per_kg", None),  # a rate
        ("revenue_M", None),  # millions, not metres
        ("mm", None),
        ("Miles_per_Gallon", None),
        ("percwhite", None),
        ("score (0-10)", None),
    ],
)
def test_unit_from_name(column, read):
    assert unit_from_name(column) == read


def test_min_beside_max_is_a_minimum_not_minutes():
    assert unit_from_name("temp_min", ["temp_min", "temp_max"]) is None
    assert unit_from_name("temp_min") == ("temp", "min")


def test_units_read_from_names_reach_questions_and_context(penguins):
    assert penguins.display["bill_length_mm"] == "bill length"
    assert penguins.units == {"bill_length_mm": "mm", "bill_depth_mm": "mm",
                              "flipper_length_mm": "mm", "body_mass_g": "g"}
    assert "bill length: 39.1 mm" in penguins.row_text(0)
    pairs = _pairs(penguins)
    assert not [p.question for p in pairs if "_mm" in p.question or "length mm" in p.question]
    looked_up = [p for p in pairs if p.qtype == "lookup"
                 and p.provenance.program["column"] == "body_mass_g"]
    assert looked_up and all(p.answer.endswith(" g") for p in looked_up)


def test_config_alias_and_unit_override_what_the_name_says():
    config = TableConfig(columns={
        "bill_length_mm": ColumnConfig(alias="beak length"),
        "body_mass_g": ColumnConfig(unit="grams"),
        "bill_depth_mm": ColumnConfig(unit=""),  # no unit at all
    })
    t = load_table(PENGUINS, config)
    assert (t.display["bill_length_mm"], t.units["bill_length_mm"]) == ("beak length", "mm")
    assert (t.display["body_mass_g"], t.units["body_mass_g"]) == ("body mass", "grams")
    assert "bill_depth_mm" not in t.units


def test_percent_reads_without_a_space():
    df = pd.DataFrame({"name": list("abc"), "share_pct": [12.5, 40, 47.5]})
    t = table_from_dataframe(df, name="parties", source="t")
    assert t.units == {"share_pct": "%"} and "share: 12.5%" in t.row_text(0)


# --------------------------------------------------------------------------- two-column names


def test_county_and_state_name_the_rows(midwest):
    assert midwest.entity_parts == ("county", "state")
    assert midwest.entity_column == "county, state"
    assert midwest.entity_of(19) == "NOBLE, IN"
    assert midwest.row_text(19).startswith("[row 19] county, state: NOBLE, IN | county: NOBLE |")
    assert entity_noun(midwest) == "county"  # 'midwest' is no noun; the name column's is


def test_two_column_names_run_through_questions_and_programs(midwest):
    pairs = _pairs(midwest, 200)
    names = set(midwest.df["county, state"])
    df = midwest.df
    for p in pairs:
        assert verify_pair(midwest, p)
        assert set(p.entities) <= names
        assert run_program(midwest, p.provenance.program) == p.answer
        if p.qtype in ("lookup", "compare", "superlative"):
            raw = eval(p.provenance.program["pandas"], {"df": df, "pd": pd})  # noqa: S307
            if p.qtype != "lookup":
                assert raw == p.answer
    named = [p for p in pairs if p.qtype in ("lookup", "claim", "summary_row", "compare")]
    assert named and all(", " in p.question for p in named)  # "... of NOBLE, IN?"
    asked = {p.provenance.program.get("column") for p in pairs if p.qtype in ("lookup", "claim")}
    assert not asked & {"county", "state", "county, state"}  # the name says those already
    assert any("row " not in p.answer and p.qtype == "superlative" for p in pairs)
    assert any("counties" in p.question for p in pairs)


def test_detect_entity_pair_needs_no_single_name():
    df = pd.DataFrame({"region": list("NNSSEE"), "quarter": ["Q1", "Q2"] * 3,
                       "sales": [5, 3, 8, 1, 9, 2]})
    assert detect_entity_pair(df, _types(df)) == ("quarter", "region") or (
        detect_entity_pair(df, _types(df)) == ("region", "quarter")
    )
    repeats = pd.DataFrame({"a": list("xxyy"), "b": list("pppp"), "v": range(4)})
    assert detect_entity_pair(repeats, _types(repeats)) is None


def test_entity_column_list_in_the_config(caplog):
    t = load_table(MIDWEST, TableConfig(entity_column=["state", "county"]))
    assert t.entity_parts == ("state", "county") and t.entity_of(19) == "IN, NOBLE"
    assert t.choices.entity == "set in the config"
    with caplog.at_level(logging.WARNING, logger="data_loaders.loaders"):
        alone = load_table(MIDWEST, TableConfig(entity_column="county"))
    assert alone.entity_parts == () and len(alone.df) < 40  # repeats dropped, as before
    assert "repeats an earlier row" in caplog.text


@pytest.mark.parametrize(
    ("entity", "fragments"),
    [
        (["county", "stat"], ["midwest.csv", "entity_column ['county', 'stat']: 'stat' is not"]),
        (["state", "inmetro"], ["midwest.csv", "is not unique together", "add a column"]),
    ],
)
def test_bad_entity_column_lists_are_one_line_errors(entity, fragments):
    with pytest.raises(InputError) as info:
        load_table(MIDWEST, TableConfig(entity_column=entity))
    msg = str(info.value)
    assert "\n" not in msg and all(f in msg for f in fragments), msg


@pytest.mark.parametrize("entity", [["county", "county"], [], ["a", "b", "c", "d"]])
def test_entity_column_list_shape_is_checked(entity):
    with pytest.raises(InputError, match="prepare.yaml: 'table.entity_column"):
        validate_config(PrepareConfig, {"table": {"entity_column": entity}}, "prepare.yaml")


# --------------------------------------------------------------------------- row noun


@pytest.mark.parametrize(
    ("name", "noun"),
    [
        ("cars", "car"), ("penguins", "penguin"), ("airports", "airport"),
        ("world_cities", "city"), ("people", "person"), ("flights_2013", "flight"),
        ("counties", "county"), ("pets", "pet"),
        ("starwars", None), ("midwest", None), ("data_2023", None), ("mtcars", None),
        ("economics", None), ("USArrests", None), ("nycflights13", None), ("status", None),
    ],
)
def test_row_noun(name, noun):
    assert row_noun(name) == noun


def test_plural_knows_irregular_nouns():
    assert [plural(w) for w in ("person", "county", "wolf", "species", "car", "bus")] == [
        "people", "counties", "wolves", "species", "cars", "buses"]


def test_table_names_that_are_not_nouns_give_entries(starwars):
    assert entity_noun(starwars) == "entry"
    assert "'starwars' does not read as a noun" in starwars.choices.noun
    pairs = _pairs(starwars)
    assert not [p.question for p in pairs if "starwar" in p.question]
    assert any("entries" in p.question for p in pairs)


def test_entity_noun_in_the_table_config(penguins):
    assert entity_noun(penguins) == "penguin"
    t = load_table(STARWARS, TableConfig(entity_noun="character"))
    assert entity_noun(t) == "character" and t.choices.noun == "set in the config"
    assert any("characters" in p.question for p in _pairs(t))


# --------------------------------------------------------------------------- choices


@pytest.mark.parametrize("path", [STARWARS, PENGUINS, MIDWEST])
def test_printed_choices_load_back_the_same_table(path):
    first = load_table(path)
    text = choices_yaml(first)
    config = validate_config(TableConfig, yaml.safe_load(text), "pasted")
    again = load_table(path, config)
    assert again.entity_column == first.entity_column
    assert again.entity_parts == first.entity_parts
    assert again.columns == first.columns and again.noun == first.noun
    assert (again.display, again.units) == (first.display, first.units)
    assert again.row_text(3) == first.row_text(3)


def test_prepare_prints_and_records_its_choices(tmp_path, capsys):
    out = tmp_path / "midwest"
    prepare_command([str(MIDWEST)], out=out, max_pairs=60)
    shown = capsys.readouterr().out
    for line in ("entity_column: [county, state]", "entity_noun: county", "PID: {ignore: true}",
                 "unique integers named like an id", "rows named like 'ADAMS, IL'"):
        assert line in shown
    source = json.loads((out / "manifest.json").read_text())["sources"][0]
    assert source["entity_column"] == "county, state"
    choices = source["choices"]
    assert choices["entity_columns"] == ["county", "state"]
    assert choices["ignored"] == {"PID": "unique integers named like an id"}
    assert choices["entity_noun"] == "county"
    pasted = yaml.safe_load(choices["table_yaml"])["table"]
    assert pasted["entity_column"] == ["county", "state"]


def test_printed_choices_config_file_round_trip(tmp_path):
    body = choices_yaml(load_table(PENGUINS))
    path = tmp_path / "prepare.yaml"
    path.write_text("max_pairs: 50\ntable:\n" + "\n".join("  " + ln for ln in body.split("\n")))
    cfg = load_config(PrepareConfig, path)
    assert cfg.table.entity_noun == "penguin"
    assert cfg.table.columns["body_mass_g"] == ColumnConfig(alias="body mass", unit="g")
    assert np.isclose(load_table(PENGUINS, cfg.table).df["body_mass_g"].max(), 6300)
