"""``distillgraph prepare`` end to end, the cars config, and the StructuredDataLoader API."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from app.cli import main
from data_loaders import StructuredDataLoader
from data_loaders.cli import split_args
from data_loaders.config import PrepareConfig
from data_loaders.config_loader import load_config
from data_loaders.errors import InputError
from data_loaders.io import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
CARS = ROOT / "examples" / "data" / "cars.csv"
CARS_CONFIG = ROOT / "configs" / "prepare_cars.yaml"
FILES = ["manifest.json", "test.jsonl", "train.jsonl", "val.jsonl"]


def _listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_prepare_cars_end_to_end(tmp_path, capsys):
    out = tmp_path / "runs" / "cars" / "data"
    rc = main(["prepare", str(CARS), "--out", str(out), "--config", str(CARS_CONFIG),
               "--max-pairs", "300", "--seed", "5", "split.test_fraction=0.2"])
    assert rc == 0
    assert _listing(out) == FILES
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed"] == 5 and m["config"]["max_pairs"] == 300
    assert m["config"]["split"]["test_fraction"] == 0.2
    assert m["config"]["table"]["entity_column"] == "Name"
    total = sum(len(read_jsonl(out / f)) for f in FILES if f.endswith(".jsonl"))
    assert total == 300 == sum(c["total"] for c in m["counts"].values())
    shown = capsys.readouterr().out
    assert "311 rows" in shown and "entity column Name" in shown and str(out) in shown
    assert "summary_group" in shown and "300/300" in shown


def test_prepare_with_holdout_templates_writes_test_templates(tmp_path):
    out = tmp_path / "data"
    rc = main(["prepare", str(CARS), "--out", str(out), "--config", str(CARS_CONFIG),
               "--max-pairs", "200", "-q", 'split.holdout_templates=["lookup/1","claim/0"]'])
    assert rc == 0
    assert _listing(out) == sorted([*FILES, "test_templates.jsonl"])
    held = read_jsonl(out / "test_templates.jsonl")
    assert held and {r["template"] for r in held} <= {"lookup/1", "claim/0"}


@pytest.mark.parametrize(
    "args",
    [
        ["missing.csv"],  # no such file
        ["{cars}", "max_pairs=0"],  # out of range
        ["{cars}", "no_such_key=1"],  # unknown config key
        ["{cars}", 'split.holdout_templates=["lookup/99"]'],  # unknown template id
        ["{cars}", "--config", "{missing_yaml}"],
        ["{bad_csv}"],  # ragged rows
    ],
)
def test_bad_input_exits_2_and_writes_nothing(args, tmp_path, capsys):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n3,4,5\n")
    fill = {"cars": str(CARS), "missing_yaml": str(tmp_path / "nope.yaml"), "bad_csv": str(bad_csv)}
    out = tmp_path / "out"
    rc = main(["prepare", *[a.format(**fill) for a in args], "--out", str(out)])
    assert rc == 2
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_installed_command_exit_code(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "prepare", str(tmp_path / "none.csv"),
         "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2 and "none.csv" in proc.stderr
    assert not out.exists()


def test_split_args_tells_overrides_from_files(tmp_path):
    odd = tmp_path / "a=b.csv"
    odd.write_text("x\n")
    sources, overrides = split_args(["cars.csv", "seed=3", "split.val_fraction=0.2", str(odd),
                                     "sqlite:///x.db?mode=ro"])
    assert sources == ["cars.csv", str(odd), "sqlite:///x.db?mode=ro"]
    assert overrides == ["seed=3", "split.val_fraction=0.2"]


def test_cars_config_is_valid_and_documented():
    text = CARS_CONFIG.read_text()
    first = text.splitlines()[0:3]
    assert first[0].startswith("#") and any(
        "distillgraph prepare examples/data/cars.csv --out runs/cars/data "
        "--config configs/prepare_cars.yaml" in line for line in first)
    cfg = load_config(PrepareConfig, CARS_CONFIG)
    assert cfg.table.entity_column == "Name" and cfg.max_pairs == 700
    cols = cfg.table.columns
    mpg = cols["Miles_per_Gallon"]
    assert (mpg.alias, mpg.unit) == ("fuel economy", "mpg")
    assert (cols["Weight_in_lbs"].alias, cols["Weight_in_lbs"].unit) == ("weight", "lbs")
    assert (cols["Horsepower"].unit, cols["Displacement"].unit) == ("hp", "cu in")
    assert cols["Acceleration"].alias == "0-60 mph time" and cols["Year"].alias == "model year"


def test_structured_data_loader_api(tmp_path):
    cfg = load_config(PrepareConfig, CARS_CONFIG, ["max_pairs=200"])
    df = pd.read_csv(CARS)
    df.to_json(tmp_path / "cars.json", orient="records")
    df.to_parquet(tmp_path / "cars.parquet")
    with sqlite3.connect(tmp_path / "cars.db") as con:
        df.to_sql("cars", con, index=False)
        df.head(50).to_sql("other", con, index=False)

    loader = StructuredDataLoader(cfg)
    assert loader.load_from_csv(CARS) is loader
    loader.load_from_json(tmp_path / "cars.json").load_from_parquet(tmp_path / "cars.parquet")
    loader.load_from_sql(f"sqlite:///{tmp_path / 'cars.db'}", table="cars")
    assert [len(t.df) for t in loader.tables] == [311] * 4
    assert len({t.name for t in loader.tables}) == 4

    pairs = loader.create_qa_pairs(max_pairs=120)
    assert len(pairs) == 120 and loader.dataset is not None
    assert {p.provenance.source for p in pairs} >= {str(CARS), str(tmp_path / "cars.parquet")}

    with pytest.raises(InputError, match="load_from_parquet|ending in"):
        StructuredDataLoader().load_from_csv(tmp_path / "cars.parquet")
    with pytest.raises(InputError, match="no table loaded"):
        StructuredDataLoader().create_qa_pairs()


def test_api_writes_what_the_cli_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cli_out = tmp_path / "cli"
    assert main(["prepare", str(CARS), "--out", str(cli_out), "--config", str(CARS_CONFIG),
                 "--max-pairs", "150", "--seed", "2", "-q"]) == 0
    cfg = load_config(PrepareConfig, CARS_CONFIG)
    api_out = StructuredDataLoader(cfg).load_from_csv(CARS).prepare_distillation_dataset(
        tmp_path / "api", max_pairs=150, seed=2)
    assert api_out == tmp_path / "api"
    for name in FILES:
        assert (api_out / name).read_bytes() == (cli_out / name).read_bytes(), name
