"""Loading tables: every format gives the same Table; typing, entity detection, overrides."""

import json
import logging
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_loaders.columns import coerce_column, detect_entity_column, infer_column_type
from data_loaders.config import ColumnConfig, TableConfig
from data_loaders.loaders import (
    file_hash,
    frame_hash,
    is_sql_url,
    load_table,
    load_tables,
    mask_url,
    table_from_dataframe,
)

ROOT = Path(__file__).resolve().parents[2]
CARS = ROOT / "examples" / "data" / "cars.csv"
AIRPORTS = ROOT / "tests" / "data" / "airports.csv"

CARS_TYPES = {
    "Name": "text",
    "Miles_per_Gallon": "numeric",
    "Cylinders": "numeric",
    "Displacement": "numeric",
    "Horsepower": "numeric",
    "Weight_in_lbs": "numeric",
    "Acceleration": "numeric",
    "Year": "numeric",
    "Origin": "categorical",
}


@pytest.fixture(scope="module")
def cars():
    return load_table(CARS)


@pytest.fixture(scope="module")
def raw_cars():
    return pd.read_csv(CARS)


# --------------------------------------------------------------------------- sample data


def test_cars_sample_is_real_and_unique(cars):
    assert 250 <= len(cars.df) <= 500
    assert cars.df["Name"].is_unique
    assert cars.column_types == CARS_TYPES
    assert cars.entity_column == "Name"
    row = cars.df.iloc[0]
    # StatLib Auto MPG, first record.
    assert row["Name"] == "chevrolet chevelle malibu"
    assert row["Miles_per_Gallon"] == 18 and row["Cylinders"] == 8 and row["Year"] == 1970
    assert set(cars.df["Origin"]) == {"USA", "Europe", "Japan"}
    assert cars.df["Horsepower"].isna().any()  # the real data has missing horsepower
    assert isinstance(cars.df.index, pd.RangeIndex)


def test_airports_fixture_other_domain():
    t = load_table(AIRPORTS)
    assert t.entity_column == "name"
    assert t.column_types["latitude"] == "numeric"
    assert t.column_types["country"] == "categorical"
    assert t.column_types["iata"] == "text"
    assert t.df["name"].is_unique
    assert len(t.df) == 299  # one repeated name in the 300-row subset is dropped


# --------------------------------------------------------------------------- formats


def _write(raw: pd.DataFrame, tmp_path: Path, fmt: str) -> str:
    records = json.loads(raw.to_json(orient="records"))
    if fmt == "csv":
        return str(CARS)
    if fmt == "tsv":
        raw.to_csv(p := tmp_path / "cars.tsv", sep="\t", index=False)
    elif fmt == "txt":
        raw.to_csv(p := tmp_path / "cars.txt", sep=";", index=False)
    elif fmt == "json":
        (p := tmp_path / "cars.json").write_text(json.dumps(records))
    elif fmt == "json_wrapped":
        (p := tmp_path / "cars.json").write_text(json.dumps({"meta": 1, "data": records}))
    elif fmt == "jsonl":
        (p := tmp_path / "cars.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    elif fmt == "ndjson":
        (p := tmp_path / "cars.ndjson").write_text("\n\n".join(json.dumps(r) for r in records))
    elif fmt == "parquet":
        raw.to_parquet(p := tmp_path / "cars.parquet", index=False)
    elif fmt == "pq":
        raw.to_parquet(p := tmp_path / "cars.pq", index=False)
    elif fmt == "sqlite":
        with sqlite3.connect(tmp_path / "cars.db") as conn:
            raw.to_sql("cars", conn, index=False)
        return f"sqlite:///{tmp_path / 'cars.db'}"
    return str(p)


FORMATS = [
    "csv",
    "tsv",
    "txt",
    "json",
    "json_wrapped",
    "jsonl",
    "ndjson",
    "parquet",
    "pq",
    "sqlite",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_the_same_table(fmt, cars, raw_cars, tmp_path):
    source = _write(raw_cars, tmp_path, fmt)
    t = load_table(source)
    assert t.name == "cars"
    assert t.column_types == CARS_TYPES
    assert t.entity_column == "Name"
    pd.testing.assert_frame_equal(t.df, cars.df)
    assert re.fullmatch(r"[0-9a-f]{16}", t.content_hash)
    assert load_table(source).content_hash == t.content_hash  # stable
    assert t.row_text(3) == cars.row_text(3)


def test_file_hash_is_sha256_of_bytes(tmp_path, cars):
    import hashlib

    assert cars.content_hash == hashlib.sha256(CARS.read_bytes()).hexdigest()[:16]
    copy = tmp_path / "copy.csv"
    shutil.copy(CARS, copy)
    assert load_table(copy).content_hash == cars.content_hash
    copy.write_text(CARS.read_text().replace("chevelle", "chevele"))
    assert file_hash(copy) != cars.content_hash


def test_frame_hash_canonical(raw_cars):
    a = frame_hash(raw_cars)
    assert a == frame_hash(raw_cars.copy()) == frame_hash(raw_cars.iloc[::-1].iloc[::-1])
    assert a != frame_hash(raw_cars.rename(columns={"Name": "name"}))
    changed = raw_cars.copy()
    changed.loc[5, "Cylinders"] = 3
    assert a != frame_hash(changed)


def test_sql_hash_stable_and_source_without_password(raw_cars, tmp_path):
    source = _write(raw_cars, tmp_path, "sqlite")
    t1, t2 = load_table(source), load_table(source)
    assert t1.content_hash == t2.content_hash == frame_hash(pd.read_sql_table("cars", source))
    assert t1.source == f"{source}#cars"


def test_table_from_dataframe(raw_cars, cars):
    t = table_from_dataframe(raw_cars, name="upload", source="upload.csv")
    assert t.name == "upload" and t.source == "upload.csv"
    assert t.column_types == CARS_TYPES and t.entity_column == "Name"
    assert t.content_hash == frame_hash(raw_cars)
    pd.testing.assert_frame_equal(t.df, cars.df)
    given = table_from_dataframe(raw_cars, name="x", source="x", content_hash="0123456789abcdef")
    assert given.content_hash == "0123456789abcdef"


# --------------------------------------------------------------------------- SQL


def _two_table_db(tmp_path, raw_cars) -> str:
    db = tmp_path / "two.db"
    with sqlite3.connect(db) as conn:
        raw_cars.to_sql("cars", conn, index=False)
        pd.read_csv(AIRPORTS).to_sql("airports", conn, index=False)
    return f"sqlite:///{db}"


def test_sql_table_from_config_or_suffix(raw_cars, tmp_path):
    url = _two_table_db(tmp_path, raw_cars)
    by_config = load_table(url, TableConfig(sql_table="airports"))
    by_suffix = load_table(url + "#airports")
    assert by_config.name == by_suffix.name == "airports"
    assert by_config.entity_column == "name"
    assert by_suffix.source == url + "#airports"
    assert load_table(url + "#cars", TableConfig(sql_table="airports")).name == "cars"


def test_mask_url_and_is_sql_url():
    assert mask_url("postgresql://bob:s3cr:et@db.example:5432/x") == (
        "postgresql://bob:***@db.example:5432/x"
    )
    assert mask_url("sqlite:///a.db") == "sqlite:///a.db"
    assert is_sql_url("sqlite:///a.db") and is_sql_url("postgresql+psycopg://u@h/d")
    assert not is_sql_url("data/cars.csv") and not is_sql_url(Path("sqlite:/x"))


# --------------------------------------------------------------------------- column typing


def test_infer_column_type_rules():
    n = 200
    assert infer_column_type(pd.Series(["1,234", "12.5", "-3", "1e3"] * 50)) == "numeric"
    assert infer_column_type(pd.Series(np.arange(n))) == "numeric"
    assert infer_column_type(pd.Series(["007", "012", "100", "200"] * 50)) != "numeric"
    assert infer_column_type(pd.Series(["2020-01-31", "2021/2/3", "2020-01-31T12:00:00Z"] * 9)) == (
        "date"
    )
    assert infer_column_type(pd.to_datetime(pd.Series(["2020-01-01"] * 3))) == "date"
    assert infer_column_type(pd.Series(["USA", "Japan", "Europe"] * 50)) == "categorical"
    assert infer_column_type(pd.Series([True, False] * 5)) == "categorical"
    assert infer_column_type(pd.Series([f"car {i}" for i in range(n)])) == "text"
    long = pd.Series(["a very long description of something " * 3 + str(i % 3) for i in range(n)])
    assert infer_column_type(long) == "text"
    assert infer_column_type(pd.Series([None, None], dtype=object)) == "text"
    mixed = pd.Series([1, "2", 3.5, None] * 10, dtype=object)
    assert infer_column_type(mixed) == "numeric"


def test_inference_uses_a_sample_on_big_columns():
    big = pd.Series(np.where(np.arange(1_000_000) % 1000 == 0, "n/a", "12.5"))
    assert infer_column_type(big) == "numeric"
    values, failed = coerce_column(big, "numeric")
    assert failed == 1000 and values.dtype == "float64" and values.iloc[1] == 12.5


def test_coerce_column():
    values, failed = coerce_column(pd.Series(["1,234", " 7 ", None, "x"]), "numeric")
    assert values.tolist()[:2] == [1234.0, 7.0] and values.isna().tolist() == [0, 0, 1, 1]
    assert failed == 1
    ints, failed = coerce_column(pd.Series(["1,234", "5"]), "numeric")
    assert ints.dtype == "int64" and failed == 0
    dates, failed = coerce_column(pd.Series(["2020-01-31", "2020/02/01", "soon"]), "date")
    assert dates.iloc[1] == pd.Timestamp("2020-02-01") and pd.isna(dates.iloc[2]) and failed == 1


def test_detect_entity_column():
    df = pd.DataFrame(
        {
            "id": [f"X{i:03d}" for i in range(20)],
            "country": [f"Country {i}" for i in range(20)],
            "region": ["north", "south"] * 10,
            "gdp": np.arange(20.0),
        }
    )
    types = {c: infer_column_type(df[c]) for c in df}
    assert detect_entity_column(df, types) == "country"  # 'country' outranks 'id'
    assert detect_entity_column(df.drop(columns="country"), types | {}) == "id"
    only_numbers = df[["gdp"]]
    assert detect_entity_column(only_numbers, {"gdp": "numeric"}) is None
    halves = pd.DataFrame({"name": ["a", "b"] * 10, "x": range(20)})
    assert detect_entity_column(halves, {"name": "text", "x": "numeric"}) is None


def test_csv_strings_typed_and_converted(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(
        'name,population,founded,kind\n"Alpha","1,234",2020-01-31,a\n'
        '"Beta","12,000",2021-02-01,b\nGamma,  56 ,2022-03-15,a\nDelta,,,b\n'
    )
    t = load_table(p)
    assert t.column_types == {
        "name": "text",
        "population": "numeric",
        "founded": "date",
        "kind": "categorical",
    }
    assert t.df["population"].tolist()[:3] == [1234, 12000, 56]
    assert pd.api.types.is_datetime64_any_dtype(t.df["founded"])
    assert "founded: 2020-01-31" in t.row_text(0)


def test_late_value_that_does_not_fit_first_block(tmp_path):
    # pyarrow types columns from the first 1 MiB block; a later float must not break the load.
    n = 300_000
    p = tmp_path / "late.csv"
    ids = [f"e{i}" for i in range(n)]
    vals = [str(i) for i in range(n)]
    vals[-1] = "2.5"
    p.write_text("key,v\n" + "\n".join(f"{a},{b}" for a, b in zip(ids, vals, strict=True)) + "\n")
    t = load_table(p)
    assert t.column_types["v"] == "numeric"
    assert t.df["v"].iloc[-1] == 2.5 and t.df["v"].iloc[10] == 10


def test_latin1_with_encoding_setting(tmp_path):
    p = tmp_path / "cities.csv"
    p.write_bytes("city,pop\nZürich,400\nMünchen,1500\n".encode("latin-1"))
    t = load_table(p, TableConfig(encoding="latin-1"))
    assert t.df["city"].tolist() == ["Zürich", "München"]


# --------------------------------------------------------------------------- config overrides


def test_entity_type_ignore_alias_unit_overrides(cars):
    config = TableConfig(
        entity_column="Name",
        columns={
            "Cylinders": ColumnConfig(type="categorical"),
            "Miles_per_Gallon": ColumnConfig(alias="fuel economy", unit="mpg"),
            "Weight_in_lbs": ColumnConfig(ignore=True),
            "Year": ColumnConfig(alias="model year"),
        },
    )
    t = load_table(CARS, config)
    assert t.column_types["Cylinders"] == "categorical"
    assert "Weight_in_lbs" not in t.df.columns and "Weight_in_lbs" not in t.columns
    assert t.display == {"Miles_per_Gallon": "fuel economy", "Year": "model year"}
    assert t.units == {"Miles_per_Gallon": "mpg"}
    assert t.row_text(0).startswith(
        "[row 0] Name: chevrolet chevelle malibu | fuel economy: 18 mpg | Cylinders: 8"
    )
    assert t.content_hash == cars.content_hash


def test_entity_override_picks_another_column(raw_cars):
    df = raw_cars.assign(code=[f"C{i}" for i in range(len(raw_cars))])
    t = table_from_dataframe(df, name="c", source="c", config=TableConfig(entity_column="code"))
    assert t.entity_column == "code" and t.entity_of(2) == "C2"


def test_delimiter_override(tmp_path):
    p = tmp_path / "semi.txt"
    p.write_text("name|score|group\na|1|x\nb|2|x\nc|3|y\nd|4|y\n")
    assert load_table(p).columns == ["name", "score", "group"]  # sniffed
    t = load_table(p, TableConfig(delimiter="|"))
    assert t.df["score"].tolist() == [1, 2, 3, 4]
    assert TableConfig(delimiter="tab").delimiter == "\t"


def test_numeric_entity_ids_read_as_floats_become_ints():
    df = pd.DataFrame({"id": [1.0, 2.0, None, 4.0], "v": [1.5, 2.5, 3.5, 4.5], "g": list("aabb")})
    t = table_from_dataframe(df, name="t", source="t", config=TableConfig(entity_column="id"))
    assert t.df["id"].tolist() == [1, 2, 4] and t.entity_of(2) == "4"


# --------------------------------------------------------------------------- clean-up policy


def test_missing_and_duplicate_entities_dropped_keeping_first(caplog):
    names = ["ann", "bob", None, "ann", "  ", "cy"] + [f"p{i}" for i in range(40)]
    df = pd.DataFrame({"name": names, "age": range(len(names)), "team": ["x", "y"] * 23})
    with caplog.at_level(logging.WARNING, logger="data_loaders.loaders"):
        t = table_from_dataframe(df, name="p", source="people.csv")
    assert t.entity_column == "name"  # detected although not fully unique
    assert t.df["name"].tolist()[:4] == ["ann", "bob", "cy", "p0"]
    assert t.df["age"].tolist()[:3] == [0, 1, 5]  # the first 'ann' is kept
    assert isinstance(t.df.index, pd.RangeIndex) and len(t.df) == 43
    assert "dropped 2 rows with no 'name' value" in caplog.text
    assert "dropped 1 rows whose 'name' repeats" in caplog.text


def test_all_null_column_dropped_with_warning(tmp_path, caplog):
    p = tmp_path / "t.csv"
    p.write_text("name,empty,score,group\na,,1,x\nb,,2,x\nc,,3,y\n")
    with caplog.at_level(logging.WARNING, logger="data_loaders.loaders"):
        t = load_table(p)
    assert "empty" not in t.df.columns and t.columns == ["name", "score", "group"]
    assert "dropped columns with no values: 'empty'" in caplog.text


def test_header_names_stripped_and_blank_named():
    # (values repeat: a blank-named column of unique integers is an exported index, left out)
    df = pd.DataFrame([[5, "a", 1.5, "x"], [5, "b", 2.5, "y"], [9, "c", 3.5, "x"]])
    df.columns = ["", " name ", "score", "g"]
    t = table_from_dataframe(df, name="t", source="t")
    assert t.columns == ["column_1", "name", "score", "g"]


def test_ignored_columns_are_not_read(tmp_path, raw_cars):
    raw_cars.to_parquet(p := tmp_path / "cars.parquet", index=False)
    config = TableConfig(columns={"Origin": ColumnConfig(ignore=True)})
    for source in (CARS, p):
        t = load_table(source, config)
        assert "Origin" not in t.df.columns


# --------------------------------------------------------------------------- several tables


def test_load_tables_unique_names_and_shared_config(tmp_path, raw_cars):
    (tmp_path / "a").mkdir()
    shutil.copy(CARS, tmp_path / "a" / "cars.csv")
    config = TableConfig(columns={"Origin": ColumnConfig(alias="region"), "state": ColumnConfig()})
    tables = load_tables([CARS, tmp_path / "a" / "cars.csv", AIRPORTS], config)
    assert [t.name for t in tables] == ["cars", "cars_2", "airports"]
    assert tables[0].display == {"Origin": "region", "Weight_in_lbs": "Weight"}  # unit in name
    assert tables[2].display == {}
    assert tables[0].content_hash == tables[1].content_hash
