"""Datasets: dedupe, entity-disjoint splits without leakage, reproducibility, holdout, manifest."""

import json
import re
from pathlib import Path

import pytest

from data_loaders import serialize
from data_loaders.config import PrepareConfig, TableConfig
from data_loaders.config_loader import load_config
from data_loaders.dataset import (
    HOLDOUT_SPLIT,
    assign_splits,
    build_dataset,
    build_manifest,
    dedupe,
    prepare,
    write_dataset,
)
from data_loaders.errors import InputError
from data_loaders.io import read_jsonl
from data_loaders.loaders import load_table
from data_loaders.qa import program_key, question_key
from data_loaders.schema import DATASET_FORMAT_VERSION, QUESTION_TYPES

ROOT = Path(__file__).resolve().parents[2]
CARS = ROOT / "examples" / "data" / "cars.csv"
AIRPORTS = ROOT / "tests" / "data" / "airports.csv"
CARS_CONFIG = ROOT / "configs" / "prepare_cars.yaml"
SPLITS = ("train", "val", "test")


def cars_config(*overrides: str) -> PrepareConfig:
    return load_config(PrepareConfig, CARS_CONFIG, ["max_pairs=600", *overrides])


@pytest.fixture(scope="module")
def cars():
    return load_table(CARS, cars_config().table)


@pytest.fixture(scope="module")
def ds(cars):
    return build_dataset([cars], cars_config())


def test_dedupe_drops_exact_and_near_duplicates(ds):
    pairs = ds.splits["train"]
    a, b = pairs[0], pairs[1]
    louder = a.model_copy(update={"id": "x" * 16, "question": a.question.upper() + "!!"})
    rephrased = a.model_copy(update={"id": "y" * 16, "question": "Something else entirely?"})
    out = dedupe([a, b, a, louder, rephrased])
    assert out == [a, b]


def test_generated_dataset_has_no_duplicates(ds):
    pairs = ds.all_pairs()
    assert len({p.id for p in pairs}) == len(pairs)
    assert len({question_key(p.question) for p in pairs}) == len(pairs)
    keys = {program_key(p.provenance.table_hash, p.provenance.program) for p in pairs}
    assert len(keys) == len(pairs)
    assert dedupe(pairs) == pairs


def _entities_by_split(ds):
    return {s: {e for p in ds.splits[s] for e in p.entities} for s in ds.splits}


def test_splits_are_disjoint_by_entity(ds, cars):
    ents = _entities_by_split(ds)
    assert ents["test"] and ents["val"]
    assert not ents["train"] & ents["test"]
    assert not ents["train"] & ents["val"]
    assert not ents["val"] & ents["test"]
    name = cars.display_name(cars.entity_column)
    for p in ds.all_pairs():  # every entity shown in a context is listed in the pair
        shown = set(re.findall(rf"^\[row \d+\] {re.escape(name)}: (.*?)(?: \||$)", p.context, re.M))
        assert shown == set(p.entities)


@pytest.mark.parametrize("source", [CARS, AIRPORTS])
def test_no_test_entity_leaks_into_train(source):
    config = cars_config() if source == CARS else PrepareConfig(max_pairs=600)
    table = load_table(source, config.table if source == CARS else TableConfig())
    ds = build_dataset([table], config)
    test_ents = {e for p in ds.splits["test"] for e in p.entities}
    assert len(test_ents) > 10
    for p in ds.splits["train"]:
        text = p.question + "\n" + p.context
        # A test name may be a prefix of a train name ("ford pinto" / "ford pinto runabout"):
        # remove this pair's own names first, then no test name may remain anywhere.
        for own in sorted(p.entities, key=len, reverse=True):
            text = text.replace(own, " ")
        leaked = [e for e in test_ents if re.search(rf"(?<!\w){re.escape(e)}(?!\w)", text)]
        assert not leaked, (p.question, leaked)


def test_same_seed_same_bytes_other_seed_other_bytes(cars, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = write_dataset(build_dataset([cars], cars_config()), tmp_path / "a")
    b = write_dataset(build_dataset([cars], cars_config()), tmp_path / "b")
    c = write_dataset(build_dataset([cars], cars_config("seed=7")), tmp_path / "c")
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "manifest.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes()
    assert (a / "test.jsonl").read_bytes() != (c / "test.jsonl").read_bytes()


def test_template_holdout(cars):
    held = ["lookup/3", "compare/2", "aggregate/0"]
    ds = build_dataset([cars], cars_config(f"split.holdout_templates={json.dumps(held)}"))
    assert set(ds.splits) == {*SPLITS, HOLDOUT_SPLIT}
    for s in SPLITS:
        assert not {p.template for p in ds.splits[s]} & set(held)
    holdout = ds.splits[HOLDOUT_SPLIT]
    assert holdout and {p.template for p in holdout} <= set(held)
    ents = _entities_by_split(ds)
    assert not ents[HOLDOUT_SPLIT] & (ents["train"] | ents["val"])
    codes = assign_splits(cars, ds.config.split, ds.config.seed)  # drawn from test entities
    assert all(codes[r] == 2 for p in holdout for r in p.provenance.row_ids)


def test_manifest_contents(ds, cars, tmp_path):
    out = write_dataset(ds, tmp_path / "data")
    m = json.loads((out / "manifest.json").read_text())
    assert m["format_version"] == DATASET_FORMAT_VERSION
    assert re.fullmatch(r"\d+\.\d+.*", m["package_version"])
    assert m["seed"] == ds.config.seed
    for s in SPLITS:
        rows = read_jsonl(out / f"{s}.jsonl")
        assert m["counts"][s]["total"] == len(rows) == len(ds.splits[s])
        assert set(m["counts"][s]["by_type"]) == set(QUESTION_TYPES)
        assert sum(m["counts"][s]["by_type"].values()) == len(rows)
    src = m["sources"][0]
    assert src["source"] == str(CARS) and src["content_hash"] == cars.content_hash
    assert src["rows"] == len(cars.df) and src["entity_column"] == "Name"
    assert src["column_types"]["Origin"] == "categorical"
    assert m["config"] == ds.config.model_dump(mode="json")
    assert PrepareConfig.model_validate(m["config"]) == ds.config
    assert m["verification"]["passed"] == m["verification"]["checked"] == len(ds.all_pairs())
    assert m["context_format"] == serialize.__doc__.strip() and "[row N]" in m["context_format"]
    assert m["created_at"].endswith("+00:00")
    assert set(m["templates"]) and m["files"]["train"] == "train.jsonl"
    assert build_manifest(ds)["counts"] == m["counts"]


def test_bad_config_values_are_input_errors(cars):
    with pytest.raises(InputError, match="holdout_templates"):
        build_dataset([cars], cars_config('split.holdout_templates=["lookup/99"]'))
    with pytest.raises(InputError, match="question_types"):
        build_dataset([cars], cars_config("question_types.riddle=1"))
    with pytest.raises(InputError, match="weight"):
        build_dataset([cars], PrepareConfig(question_types={"lookup": 0}))
    with pytest.raises(InputError, match="no input tables"):
        build_dataset([], PrepareConfig())


def test_out_dir_that_is_not_a_dataset_is_never_replaced(ds, tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match="not a dataset directory"):
        write_dataset(ds, keep)
    assert (keep / "notes.txt").read_text() == "precious"
    out = write_dataset(ds, tmp_path / "data")
    write_dataset(ds, out)  # an existing dataset directory is replaced atomically
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_prepare_fails_before_writing(tmp_path):
    with pytest.raises(InputError):
        prepare([tmp_path / "missing.csv"], PrepareConfig(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_several_tables_share_the_budget(cars, tmp_path):
    airports = load_table(AIRPORTS, TableConfig())
    ds = build_dataset([cars, airports], PrepareConfig(max_pairs=400))
    per_table = {t.content_hash: 0 for t in (cars, airports)}
    for p in ds.all_pairs():
        per_table[p.provenance.table_hash] += 1
    assert sum(per_table.values()) == 400
    assert all(n == 200 for n in per_table.values())
