"""QA-pair generation: every type and several phrasings, the recompute check, contexts, claims."""

import difflib
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_loaders.config import PrepareConfig, TableConfig
from data_loaders.config_loader import load_config
from data_loaders.dataset import build_dataset
from data_loaders.loaders import load_table, table_from_dataframe
from data_loaders.naming import plural
from data_loaders.programs import (
    ProgramError,
    check_pair,
    facts_for,
    index_for,
    run_program,
    superlative_row,
    verify_pair,
)
from data_loaders.schema import QUESTION_TYPES, TASK_OF_TYPE
from data_loaders.serialize import format_value
from data_loaders.templates import TEMPLATES, col_words, entity_noun

ROOT = Path(__file__).resolve().parents[2]
CARS = ROOT / "examples" / "data" / "cars.csv"
AIRPORTS = ROOT / "tests" / "data" / "airports.csv"
CARS_CONFIG = ROOT / "configs" / "prepare_cars.yaml"


@pytest.fixture(scope="module")
def cars_cfg():
    return load_config(PrepareConfig, CARS_CONFIG)


@pytest.fixture(scope="module")
def cars(cars_cfg):
    return load_table(CARS, cars_cfg.table)


@pytest.fixture(scope="module")
def cars_ds(cars, cars_cfg):
    return build_dataset([cars], cars_cfg)


@pytest.fixture(scope="module")
def airports():
    return load_table(AIRPORTS, TableConfig())


@pytest.fixture(scope="module")
def airports_ds(airports):
    return build_dataset([airports], PrepareConfig(max_pairs=700, seed=1))


def test_every_type_with_several_templates(cars_ds):
    used = defaultdict(set)
    for p in cars_ds.all_pairs():
        used[p.qtype].add(p.template)
        assert p.task == TASK_OF_TYPE[p.qtype]
        assert TEMPLATES[p.template].qtype == p.qtype
    for qtype in QUESTION_TYPES:
        assert len(used[qtype]) >= 2, (qtype, used[qtype])
    n_aggregate = len([t for t in TEMPLATES if t.startswith("aggregate/")])
    assert len(used["aggregate"]) >= 0.8 * n_aggregate  # ~70 pairs over 23 phrasings


def test_budget_is_met_and_split_by_fraction(cars_ds, cars_cfg):
    sizes = {s: len(p) for s, p in cars_ds.splits.items()}
    assert sum(sizes.values()) == cars_cfg.max_pairs
    assert sizes["val"] == sizes["test"] == round(cars_cfg.max_pairs * 0.1)


@pytest.mark.parametrize("which", ["cars", "airports"])
def test_recompute_check_passes_for_every_pair(which, cars, cars_ds, airports, airports_ds):
    table, ds = (cars, cars_ds) if which == "cars" else (airports, airports_ds)
    pairs = ds.all_pairs()
    assert len(pairs) > 300
    assert ds.failed == [] and ds.checked == len(pairs)
    bad = [(p.id, check_pair(table, p)) for p in pairs if not verify_pair(table, p)]
    assert bad == []
    for p in pairs:
        assert run_program(table, p.provenance.program) == p.answer


def test_other_domain_reads_naturally(airports, airports_ds):
    """Templates are generic: the airports table gets its own noun, column words and values."""
    assert entity_noun(airports) == "airport"
    pairs = airports_ds.all_pairs()
    assert {p.qtype for p in pairs} == set(QUESTION_TYPES)
    for p in pairs:
        assert "{" not in p.question and "}" not in p.question
        assert "_" not in p.question or any("_" in e for e in p.entities)
    grouped = [p for p in pairs if p.qtype in ("superlative", "aggregate", "summary_group")]
    assert any("airports" in p.question for p in grouped)


def test_pandas_expression_gives_the_answer(cars, cars_ds):
    df = cars.df
    checked = Counter()
    for p in cars_ds.all_pairs():
        prog = p.provenance.program
        if p.qtype == "summary_row" or p.qtype == "summary_group":
            continue
        raw = eval(prog["pandas"], {"df": df, "pd": pd})  # noqa: S307 - our own expression
        if p.qtype in ("list", "top"):
            names = raw if p.qtype == "list" else raw[cars.entity_column].tolist()
            assert len(names) >= 2 and all(n in p.answer for n in names), (p.question, raw)
            checked[p.qtype] += 1
            continue
        if p.qtype == "distinct":
            assert p.answer.split(" ")[0] == str(raw), (p.question, raw)
            checked[p.qtype] += 1
            continue
        if p.qtype == "group":
            unit = cars.units.get(prog["column"]) if prog["column"] else None
            for key, value in raw.items():
                shown = format_value(key) + ": " + format_value(value, unit, prog["decimals"])
                assert shown in p.answer, (p.question, shown, p.answer)
            checked[p.qtype] += 1
            continue
        if p.qtype == "claim":
            got = "yes" if bool(raw) else "no"
        elif p.qtype in ("compare", "superlative"):
            got = str(raw)
        elif prog.get("agg") == "count":
            got = str(int(raw))
        else:
            got = format_value(raw, cars.units.get(prog["column"]), prog["decimals"])
        assert got == p.answer, (p.question, prog["pandas"], raw)
        checked[p.qtype] += 1
    assert all(checked[q] > 10 for q in ("lookup", "compare", "superlative", "aggregate", "claim"))
    assert all(checked[q] >= 1 for q in ("list", "top", "distinct", "group"))


def test_claims_are_balanced_and_false_values_plausible(cars, cars_ds):
    for split, pairs in cars_ds.splits.items():
        answers = Counter(p.answer for p in pairs if p.qtype == "claim")
        assert set(answers) == {"yes", "no"}
        assert abs(answers["yes"] - answers["no"]) <= 1, split
    for p in cars_ds.all_pairs():
        if p.qtype == "claim" and p.answer == "no":
            prog = p.provenance.program
            assert (cars.df[prog["column"]] == prog["raw"]).any()  # another row's real value


def test_answers_use_aliases_units_and_rounding(cars, cars_ds):
    hp = [p for p in cars_ds.all_pairs() if p.qtype == "lookup"
          and p.provenance.program["column"] == "Horsepower"]
    # the alias, or the unit as people name the column ("the hp of ..."), maybe with a typo
    # ("horrsepower"; casual_share)
    def names_it(q: str) -> bool:
        return any(w == "hp" or difflib.SequenceMatcher(None, w, "horsepower").ratio() >= 0.8
                   for w in re.findall(r"\w+", q.lower()))

    assert hp and all(p.answer.endswith(" hp") and names_it(p.question) for p in hp)
    assert any("horsepower" in p.question for p in hp)
    for p in cars_ds.all_pairs():
        if p.qtype == "aggregate" and p.provenance.program["agg"] == "mean":
            number = p.answer.split()[0]
            assert len(number.partition(".")[2]) <= 2
        assert "Miles_per_Gallon" not in p.question and "Weight_in_lbs" not in p.question


def test_contexts_hold_only_the_evidence(cars, cars_ds):
    idx = index_for(cars)
    evidence = Counter()
    for p in cars_ds.all_pairs():
        lines = p.context.split("\n")
        rows = [ln for ln in lines if ln.startswith("[row ")]
        facts = [ln for ln in lines if ln.startswith("[fact] ")]
        assert rows == [idx.row_text(r) for r in p.provenance.row_ids]
        assert p.provenance.row_ids == sorted(p.provenance.row_ids)
        prog = p.provenance.program
        if p.qtype in ("lookup", "claim", "summary_row"):
            assert len(rows) == 1 and not facts
        elif p.qtype == "compare":
            assert len(rows) == 2 and not facts
        else:
            evidence[prog["evidence"]] += 1
            assert len(rows) <= cars_ds.config.max_context_rows
            if prog["evidence"] == "program":  # row-set questions: a sample of their rows
                assert rows and not facts
            elif prog["evidence"] == "rows":  # whole group shown, no fact giving it away
                assert not facts
                assert len(rows) == len(cars.df.query(_query(prog["where"])))
            else:
                assert facts[0].startswith("[fact] rows where ")
        if p.qtype == "superlative":
            assert p.answer in p.entities  # the winner's row is always shown
    assert evidence["facts"] > 0
    # Whole small groups shown as rows: with a roomier context some group questions use them.
    roomy = build_dataset([cars], cars_ds.config.model_copy(update={"max_context_rows": 12}))
    assert any(p.provenance.program.get("evidence") == "rows" for p in roomy.all_pairs())


def _query(where):
    return " and ".join(f"`{c['column']}` {c['op']} {c['value']!r}" for c in where)


def test_facts_for_states_counts_and_stats(cars):
    where = [{"column": "Origin", "op": "==", "value": "USA"}]
    lines = facts_for(cars, {"where": where, "columns": ["Horsepower"]})
    usa = cars.df[cars.df["Origin"] == "USA"]
    assert lines[0] == f"[fact] rows where origin = USA: {len(usa)}"
    hp = usa["Horsepower"].dropna()
    assert lines[1] == (
        f"[fact] mean horsepower where origin = USA: {format_value(hp.mean(), 'hp')} "
        f"(over {len(hp)} rows)"
    )
    assert lines[3] == f"[fact] max horsepower where origin = USA: {format_value(hp.max(), 'hp')}"
    thr = facts_for(cars, {"where": [{"column": "Weight_in_lbs", "op": ">", "value": 4000}]})
    heavy = (cars.df["Weight_in_lbs"] > 4000).sum()
    assert thr == [f"[fact] rows where weight > 4000 lbs: {heavy}"]


def test_run_program_matches_naive_pandas(cars):
    df = cars.df
    for origin in ("USA", "Japan", "Europe"):
        for cyl in (4, 6):
            where = [{"column": "Cylinders", "op": "==", "value": cyl},
                     {"column": "Origin", "op": "==", "value": origin}]
            sub = df[(df["Cylinders"] == cyl) & (df["Origin"] == origin)]
            for agg in ("count", "mean", "sum", "min", "max"):
                prog = {"op": "aggregate", "agg": agg, "column": "Weight_in_lbs", "where": where}
                want = str(len(sub)) if agg == "count" else format_value(
                    getattr(sub["Weight_in_lbs"], agg)(), "lbs")
                if len(sub):
                    assert run_program(cars, prog) == want
    for op, t in ((">", 150), ("<", 80), (">=", 150), ("<=", 80)):
        prog = {"op": "aggregate", "agg": "count", "column": None,
                "where": [{"column": "Horsepower", "op": op, "value": t}]}
        assert run_program(cars, prog) == str(int(df.eval(f"Horsepower {op} {t}").sum()))


def test_run_program_refuses_what_does_not_apply(cars):
    with pytest.raises(ProgramError):
        run_program(cars, {"op": "lookup", "entity": "no such car", "column": "Horsepower"})
    with pytest.raises(ProgramError):
        run_program(cars, {"op": "lookup", "entity": cars.entity_of(0), "column": "Nope"})
    with pytest.raises(ProgramError):
        run_program(cars, {"op": "teleport"})
    with pytest.raises(ProgramError):  # every USA car with 8 cylinders shares the max cylinders
        usa = [{"column": "Origin", "op": "==", "value": "USA"}]
        superlative_row(cars, usa, "Cylinders", "max")


def test_verify_catches_tampering(cars, cars_ds):
    pair = next(p for p in cars_ds.splits["train"] if p.qtype == "lookup")
    assert verify_pair(cars, pair)
    assert not verify_pair(cars, pair.model_copy(update={"answer": pair.answer + "0"}))
    assert not verify_pair(cars, pair.model_copy(update={"context": "[fact] nothing here"}))
    prov = pair.provenance.model_copy(update={"table_hash": "0" * 16})
    assert not verify_pair(cars, pair.model_copy(update={"provenance": prov}))
    agg = next(p for p in cars_ds.splits["train"] if p.qtype == "aggregate"
               and p.provenance.program["evidence"] == "facts")
    without_facts = "\n".join(ln for ln in agg.context.split("\n") if ln.startswith("[row "))
    assert not verify_pair(cars, agg.model_copy(update={"context": without_facts}))


def test_row_text_cache_matches_table_row_text(cars, airports):
    for t in (cars, airports):
        idx = index_for(t)
        for r in range(len(t.df)):
            assert idx.row_text(r) == t.row_text(r)


def test_tables_without_entity_column_dates_and_nulls():
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({
        "reading": rng.normal(20, 5, n).round(3),
        "station_type": rng.choice(["urban", "rural", "coastal"], n),
        "measured_on": pd.date_range("2021-03-01", periods=n, freq="D").astype(str),
        "depth_m": np.where(rng.random(n) < 0.2, np.nan, rng.integers(1, 40, n)),
    })
    t = table_from_dataframe(df, name="readings", source="memory")
    assert t.entity_column is None and t.column_types["measured_on"] == "date"
    ds = build_dataset([t], PrepareConfig(max_pairs=150))
    pairs = ds.all_pairs()
    assert len(pairs) > 100 and ds.failed == []
    assert all(verify_pair(t, p) for p in pairs)
    assert any(e.startswith("row ") for p in pairs for e in p.entities)
    assert entity_noun(t) == "reading"
    dated = [p for p in pairs if p.qtype == "lookup"
             and p.provenance.program["column"] == "measured_on"]
    assert all(len(p.answer) == 10 and p.answer.startswith("2021-") for p in dated)


def test_word_helpers(cars):
    assert col_words(cars, "Weight_in_lbs") == "weight"
    t = table_from_dataframe(pd.DataFrame({"Name": ["a", "b", "c"], "Top_Speed": [1, 2, 3]}),
                             name="status", source="memory")
    assert col_words(t, "Top_Speed") == "Top Speed"
    assert entity_noun(t) == "entry" and entity_noun(t, "boat") == "boat"
    words = ("car", "entry", "bus", "day")
    assert [plural(w) for w in words] == ["cars", "entries", "buses", "days"]
