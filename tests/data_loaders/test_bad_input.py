"""Bad input: each case is one `InputError` whose one-line message says where and what to do."""

import json
import logging
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from data_loaders.config import ColumnConfig, TableConfig
from data_loaders.errors import InputError
from data_loaders.loaders import load_table, load_tables, table_from_dataframe

ROOT = Path(__file__).resolve().parents[2]
CARS = ROOT / "examples" / "data" / "cars.csv"
GOOD_ROWS = "name,score,group\na,1,x\nb,2,x\nc,3,y\n"


def expect(source, *fragments, config=None) -> str:
    """Load `source`, expect an InputError whose one-line message holds every fragment."""
    with pytest.raises(InputError) as info:
        load_table(source, config)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert "Traceback" not in msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


# --------------------------------------------------------------------------- files


def test_missing_file(tmp_path):
    expect(tmp_path / "nope.csv", "nope.csv", "file not found", "check the path")


def test_directory(tmp_path):
    (tmp_path / "d.csv").mkdir()
    expect(tmp_path / "d.csv", "d.csv", "directory")


def test_unknown_extension(tmp_path):
    p = write(tmp_path, "cars.xlsx", "x")
    expect(p, "cars.xlsx", "'.xlsx'", ".csv", ".parquet", "sqlite:///")


@pytest.mark.parametrize("name", ["e.csv", "e.tsv", "e.json", "e.jsonl", "e.parquet"])
def test_empty_file(tmp_path, name):
    expect(write(tmp_path, name, b""), name, "empty")


def test_blank_csv(tmp_path):
    expect(write(tmp_path, "blank.csv", "\n  \n"), "blank.csv", "empty")


def test_header_only_csv(tmp_path):
    expect(write(tmp_path, "h.csv", "name,score\n"), "h.csv", "header", "no data rows")


@pytest.mark.parametrize(
    ("content", "line", "got"),
    [
        ("name,score\na,1\nb,2\nc,3,4\nd,5\n", 4, 3),
        ("name,score\na,1\n\nb\n", 4, 1),
        ('name,score\n"a\nstill a",1\nb,2,3\n', 4, 3),
    ],
)
def test_ragged_rows_name_the_line(tmp_path, content, line, got):
    p = write(tmp_path, "r.csv", content)
    expect(p, "r.csv", f"line {line}:", f"{got} fields but the header has 2", "quote values")


def test_ragged_row_far_down(tmp_path):
    rows = [f"e{i},{i}" for i in range(50_000)]
    rows[40_000] += ",9"
    p = write(tmp_path, "big.csv", "name,v\n" + "\n".join(rows) + "\n")
    expect(p, "big.csv", "line 40002:")


def test_non_utf8_bytes_name_line_and_offset(tmp_path):
    p = write(tmp_path, "l1.csv", b"city,pop\nOslo,700\nZ\xfcrich,400\n")
    expect(p, "l1.csv", "line 3", "byte offset 19", "table.encoding")


def test_non_utf8_bytes_after_the_sniffed_head(tmp_path):
    head = "".join(f"city{i},{i}\n" for i in range(20_000)).encode()
    p = write(tmp_path, "late.csv", b"city,pop\n" + head + b"Z\xfcrich,400\n")
    expect(p, "late.csv", "line 20002", f"byte offset {9 + len(head) + 1}", "table.encoding")


def test_non_utf8_json(tmp_path):
    p = write(tmp_path, "l1.json", b'[{"city": "Z\xfcrich", "pop": 1}]')
    expect(p, "l1.json", "line 1", "byte offset 12", "table.encoding")


def test_unknown_encoding_name(tmp_path):
    p = write(tmp_path, "ok.csv", GOOD_ROWS)
    expect(p, "table.encoding", "'klingon'", config=TableConfig(encoding="klingon"))


def test_duplicate_column_names_csv(tmp_path):
    p = write(tmp_path, "d.csv", "name,score,score\na,1,2\nb,3,4\n")
    expect(p, "d.csv", "duplicate column names", "'score' at positions 2, 3", "rename")


def test_duplicate_column_names_dataframe():
    df = pd.DataFrame([["a", 1, 2]], columns=["name", "x", "x"])
    with pytest.raises(InputError, match="upload.csv: duplicate column names: 'x'"):
        table_from_dataframe(df, name="u", source="upload.csv")


def test_all_null_columns_only(tmp_path):
    p = write(tmp_path, "n.csv", "a,b\n,\n,\n")
    expect(p, "n.csv", "no column has any values")


def test_all_null_columns_dropped_but_nothing_usable_left(tmp_path, caplog):
    p = write(tmp_path, "n.csv", "name,x,y\na,,\nb,,\n")
    with caplog.at_level(logging.WARNING):
        expect(p, "n.csv", "no column to ask questions about", "name (text)")
    assert "dropped columns with no values: 'x', 'y'" in caplog.text


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    ("doc", "fragments"),
    [
        ("42", ["found a number at the top level", "list of records"]),
        ('"text"', ["found a string at the top level"]),
        ("[1, 2, 3]", ["item 0 of the list at the top level is a number", "not a record"]),
        ('[{"a": 1}, [1]]', ["item 1", "is a list"]),
        ('{"a": 1, "b": {"c": 2}}', ["keys 'a', 'b'", "no list of records"]),
        ('{"x": [{"a": 1}], "y": [{"a": 2}]}', ["several lists", "'x', 'y'", "table.json_key"]),
        ('{"data": {"a": 1}}', ["keys 'data'", "no list of records"]),
        ('{"data": [1, 2]}', ["item 0 of the list at key 'data' is a number"]),
        ("[]", ["the list of records at the top level is empty"]),
        ('{"rows": []}', ["at key 'rows' is empty"]),
        ('[{"a": 1},\n {"a": 2,}]', ["line 2 column", "not valid JSON"]),
    ],
)
def test_json_not_records(tmp_path, doc, fragments):
    expect(write(tmp_path, "bad.json", doc), "bad.json", *fragments)


def test_json_key_missing(tmp_path):
    p = write(tmp_path, "k.json", json.dumps({"data": [{"a": 1}]}))
    expect(p, "no key 'rows'", "keys there: 'data'", config=TableConfig(json_key="rows"))


@pytest.mark.parametrize(
    ("doc", "fragments"),
    [
        ('{"a": 1}\n{"a": 2\n', ["line 2", "not valid JSON"]),
        ('{"a": 1}\n\n[1, 2]\n', ["line 3", "found a list, not a record"]),
        ("\n\n", ["no records"]),
    ],
)
def test_jsonl_bad_lines(tmp_path, doc, fragments):
    expect(write(tmp_path, "bad.jsonl", doc), "bad.jsonl", *fragments)


# --------------------------------------------------------------------------- Parquet


def test_not_a_parquet_file(tmp_path):
    expect(write(tmp_path, "x.parquet", "name,score\na,1\n"), "x.parquet", "not a readable Parquet")


def test_empty_parquet_table(tmp_path):
    pd.DataFrame({"name": pd.Series([], dtype=str)}).to_parquet(p := tmp_path / "e.parquet")
    expect(p, "e.parquet", "no rows")


# --------------------------------------------------------------------------- SQL


@pytest.fixture
def two_tables(tmp_path) -> Path:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table products (name text, price real, kind text)")
        conn.execute("insert into products values ('tea', 2.5, 'drink'), ('jam', 4.0, 'food')")
        conn.execute("create table empty_one (name text, price real)")
    return db


def test_sql_no_such_table(two_tables):
    url = f"sqlite:///{two_tables}"
    expect(url + "#prices", "no table 'prices'", "tables there: empty_one, products")
    expect(url, "no table 'x'", "products", config=TableConfig(sql_table="x"))


def test_sql_several_tables_need_a_choice(two_tables):
    expect(f"sqlite:///{two_tables}", "2 tables", "table.sql_table", "#NAME")


def test_sql_empty_table(two_tables):
    expect(f"sqlite:///{two_tables}#empty_one", "#empty_one", "no data rows")


def test_sql_no_tables():
    expect("sqlite://", "no tables")


def test_sql_missing_database_file(tmp_path):
    expect(f"sqlite:///{tmp_path}/nope.db", "nope.db", "not found")
    assert not (tmp_path / "nope.db").exists()  # not created as a side effect


def test_sql_cannot_open(tmp_path):
    p = write(tmp_path, "notdb.db", "this is not a database\n" * 10)
    expect(f"sqlite:///{p}", "cannot open the database", "file is not a database")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:hunter2@127.0.0.1:1/shop",
        "mysql+pymysql://alice:hunter2@127.0.0.1:1/shop",
        "nosuchdb://alice:hunter2@host/shop",
    ],
)
def test_sql_password_never_shown(url):
    msg = expect(url, "cannot open the database", "alice:***@")
    assert "hunter2" not in msg


def test_sql_bad_url():
    msg = expect("postgresql://alice:hunter2@host:notaport/db", "alice:***@")
    assert "hunter2" not in msg


# --------------------------------------------------------------------------- config / columns


def test_entity_column_not_in_table():
    expect(
        CARS,
        "cars.csv",
        "entity_column 'Model'",
        "columns there: 'Name'",
        config=(TableConfig(entity_column="Model")),
    )


def test_entity_column_also_ignored():
    cfg = TableConfig(entity_column="Name", columns={"Name": ColumnConfig(ignore=True)})
    expect(CARS, "entity_column 'Name' is also marked ignore", config=cfg)


def test_config_column_not_in_table():
    cfg = TableConfig(columns={"mpg": ColumnConfig(unit="mpg")})
    expect(
        CARS,
        "cars.csv",
        "config columns 'mpg'",
        "columns there: 'Name', 'Miles_per_Gallon'",
        config=cfg,
    )


def test_config_column_in_no_table_of_several():
    cfg = TableConfig(columns={"mpg": ColumnConfig(unit="mpg")})
    with pytest.raises(InputError, match="config columns 'mpg' match no column"):
        load_tables([CARS, CARS], cfg)


def test_type_override_that_nothing_parses():
    cfg = TableConfig(columns={"Origin": ColumnConfig(type="numeric")})
    expect(CARS, "column 'Origin' is typed numeric", "columns.Origin.type", config=cfg)


def test_single_column_table(tmp_path):
    expect(write(tmp_path, "one.csv", "name\na\nb\nc\n"), "one.csv", "no column to ask questions")
    expect(write(tmp_path, "num.csv", "x\n1\n2\n3\n"), "num.csv", "no column to ask questions")


def test_only_text_columns(tmp_path):
    rows = "".join(f"item {i},a free-text note number {i} about this item\n" for i in range(30))
    p = write(tmp_path, "notes.csv", "name,note\n" + rows)
    expect(p, "notes.csv", "no column to ask questions", "note (text)", "columns.<col>.type")


def test_everything_ignored(tmp_path):
    p = write(tmp_path, "g.csv", GOOD_ROWS)
    cfg = TableConfig(columns={c: ColumnConfig(ignore=True) for c in ("name", "score", "group")})
    expect(p, "g.csv", config=cfg)


def test_no_sources():
    with pytest.raises(InputError, match="no input tables"):
        load_tables([])


def test_bad_delimiter_setting():
    with pytest.raises(ValueError, match="one character"):
        TableConfig(delimiter=";;")
