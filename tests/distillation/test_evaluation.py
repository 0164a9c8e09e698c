"""`evaluate_models` and ``distillgraph evaluate`` end to end on tiny models and a tiny dataset."""

import json
from pathlib import Path

import pytest

from app.cli import main
from data_loaders.errors import InputError
from distillation import evaluation as E
from distillation.report import CARD_START
from distillation.tiny import build_tiny_model_dir

PROV = {
    "source": "cars.csv",
    "table": "cars",
    "table_hash": "0" * 16,
    "row_ids": [0],
    "columns": ["mpg"],
    "program": {},
}
CASES = [
    ("qa", "lookup", "What is the fuel economy of ford pinto?", "18 mpg"),
    ("qa", "aggregate", "What is the mean horsepower?", "119.05 hp"),
    ("validate", "claim", "Does ford pinto have 4 cylinders?", "yes"),
    ("summarize", "summary_row", "Describe ford pinto.", "ford pinto has 18 mpg"),
    ("qa", "superlative", "Which car is the heaviest?", "ford pinto"),
]


def _write_dataset(d, n=5):
    d.mkdir(parents=True)
    recs = []
    for i in range(n):
        task, qtype, q, a = CASES[i % len(CASES)]
        recs.append(
            {
                "id": f"ex{i}",
                "task": task,
                "qtype": qtype,
                "template": f"{qtype}/1",
                "question": q,
                "answer": a,
                "context": "[row 0] name: ford pinto | fuel economy: 18 mpg | cylinders: 4",
                "entities": ["ford pinto"],
                "provenance": PROV,
            }
        )
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (d / "manifest.json").write_text(json.dumps({"format_version": 1, "counts": {"test": n}}))
    return d


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    teacher = build_tiny_model_dir(root / "run" / "teacher", n_layers=2, hidden_size=64)
    student = build_tiny_model_dir(root / "run" / "student", n_layers=1, hidden_size=32, seed=1)
    (student / "README.md").write_text("# Tiny student\n")
    rows = [{"step": s, "loss": 2.0 - s / 10, "ce": 1.5, "kd": 0.5} for s in range(4)]
    rows.append({"step": 4, "val_loss": 1.7, "val_exact_match": 0.2})
    (root / "run" / "training_history.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    data = _write_dataset(root / "data" / "cars")
    return {"root": root, "teacher": teacher, "student": student, "data": data}


REPORT_KEYS = {
    "report_version",
    "distillgraph_version",
    "created_utc",
    "config",
    "dataset",
    "environment",
    "definitions",
    "models",
    "histories",
    "model_cards_updated",
    "files",
}
MODEL_KEYS = {"label", "spec", "path", "role", "accuracy", "cost", "vs_reference", "gap_closed"}
MODEL_KEYS |= {"history"}
COST_KEYS = {
    "equal_new_tokens",
    "equal_tokens_ms",
    "params",
    "size_bytes",
    "peak_memory_bytes",
    "memory_method",
    "load_s",
    "ttft_ms",
    "latency_ms",
    "latency_n",
    "gen_tokens_per_s_b1",
    "batch_size",
    "answers_per_s",
    "answer_tokens_per_s_batched",
    "answer_tokens_batched",
}
VS_KEYS = {
    "speedup_equal_tokens_p50",
    "speedup_p50",
    "speedup_batched",
    "param_ratio",
    "size_ratio",
    "accuracy_retained",
    "exact_match_retained",
}
METRICS = {"accuracy", "exact_match", "numeric_match", "token_f1", "yes_no", "rouge_l"}


def test_cli_end_to_end(workdir):
    out = workdir["root"] / "eval"
    argv = ["evaluate", "--model", str(workdir["teacher"]), "--model", str(workdir["student"])]
    argv += ["--model", str(workdir["student"]), "--label", "teacher", "--label", "student"]
    argv += ["--label", "base", "--baseline", "base", "--data", str(workdir["data"])]
    argv += ["--out", str(out), "--batch-size", "2", "--max-new-tokens", "4"]
    argv += ["--latency-examples", "2", "--no-progress"]
    assert main(argv) == 0

    rep = json.loads((out / "report.json").read_text())
    assert set(rep) == REPORT_KEYS
    assert rep["config"]["labels"] == ["teacher", "student", "base"]
    assert rep["config"]["max_new_tokens"] == 4 and rep["config"]["max_new_tokens_auto"] is False
    assert rep["config"]["reference"] == "teacher" and rep["config"]["baseline"] == "base"
    ds = rep["dataset"]
    assert ds["n_examples"] == 5 and ds["n_split"] == 5 and len(ds["manifest_sha256"]) == 64
    assert ds["qtype_counts"] == {"lookup": 1, "aggregate": 1, "claim": 1, "summary_row": 1,
                                  "superlative": 1}  # fmt: skip
    assert rep["environment"]["device"] == "cpu" and rep["environment"]["dtype"] == "float32"
    assert set(rep["definitions"]) >= {"accuracy", "gap_closed", "timing"}
    assert [m["role"] for m in rep["models"]] == ["reference", "candidate", "baseline"]
    for m in rep["models"]:
        assert set(m) == MODEL_KEYS
        assert set(m["cost"]) == COST_KEYS and set(m["vs_reference"]) == VS_KEYS
        assert set(m["accuracy"]) == {"overall", "by_task", "by_qtype"}
        assert set(m["accuracy"]["overall"]) == METRICS
        assert set(m["accuracy"]["by_task"]) == {"qa", "validate", "summarize"}
        assert set(m["accuracy"]["by_qtype"]) == set(ds["qtype_counts"])
        acc = m["accuracy"]["overall"]["accuracy"]
        assert acc["n"] == 5 and 0 <= acc["ci95"][0] <= acc["value"] <= acc["ci95"][1] <= 1
        c = m["cost"]
        assert c["latency_n"] == 2 and c["latency_ms"]["p50"] > 0
        assert c["latency_ms"]["p50"] <= c["latency_ms"]["p95"]
        assert c["ttft_ms"]["p50"] <= c["latency_ms"]["p95"]
        assert c["answers_per_s"] > 0 and c["gen_tokens_per_s_b1"] > 0
        assert c["size_bytes"] > 0 and c["peak_memory_bytes"] is not None
    t, s, b = rep["models"]
    assert s["history"] == str(workdir["root"] / "run" / "training_history.jsonl")
    assert t["history"] is None and b["history"] is None  # the run's history is the student's
    assert s["cost"]["params"] < t["cost"]["params"]
    assert s["vs_reference"]["param_ratio"] == pytest.approx(
        s["cost"]["params"] / t["cost"]["params"]
    )
    assert t["vs_reference"]["speedup_p50"] == 1.0
    assert t["vs_reference"]["speedup_equal_tokens_p50"] == 1.0
    assert s["cost"]["equal_new_tokens"] == 16 and s["cost"]["equal_tokens_ms"]["p50"] > 0
    assert set(s["gap_closed"]) == {"accuracy", "exact_match", "by_task"}

    for name in rep["files"].values():
        assert (out / name).is_file()
    assert rep["files"]["plot_training_curves"] == "training_curves.png"
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 5 and set(preds[0]["predictions"]) == {"teacher", "student", "base"}
    assert "| teacher | reference |" in (out / "report.md").read_text()
    card = (workdir["student"] / "README.md").read_text()
    assert card.startswith("# Tiny student") and card.count(CARD_START) == 1
    assert rep["model_cards_updated"] == [str(workdir["student"] / "README.md")]
    assert not (workdir["teacher"] / "README.md").exists()  # the reference is left alone


def test_accuracy_and_gap_closed_with_fixed_answers(workdir, monkeypatch):
    # Teacher answers everything right, the student only qa questions, the baseline nothing.
    def fake_block(m, block, max_new_tokens, item=None):
        if m.label == "teacher":
            return [ex.answer for ex in block]
        if m.label == "student":
            return [ex.answer if ex.task == "qa" else "no" for ex in block]
        return ["no"] * len(block)

    monkeypatch.setattr(E, "_generate_block", fake_block)
    rep = E.evaluate_models(
        [workdir["teacher"], workdir["student"], workdir["student"]],
        workdir["data"],
        labels=["teacher", "student", "base"],
        baseline="base",
        batch_size=4,
        max_new_tokens=2,
        latency_examples=1,
        progress=False,
        write=False,
        target="answer",
    )
    t, s, b = (m["accuracy"] for m in rep["models"])
    assert t["overall"]["accuracy"]["value"] == pytest.approx(1.0)
    assert s["by_task"]["qa"]["accuracy"]["value"] == 1.0
    assert s["by_task"]["validate"]["accuracy"]["value"] == 0.0
    assert b["overall"]["accuracy"]["value"] == 0.0
    gap = rep["models"][1]["gap_closed"]
    assert gap["accuracy"] == pytest.approx(s["overall"]["accuracy"]["value"])
    assert gap["by_task"]["qa"] == 1.0 and gap["by_task"]["validate"] == 0.0
    assert rep["models"][1]["vs_reference"]["accuracy_retained"] == pytest.approx(
        s["overall"]["accuracy"]["value"]
    )
    assert s["by_qtype"]["aggregate"]["numeric_match"]["value"] == 1.0


def test_max_examples_is_a_seeded_subset(workdir):
    ex = E.load_examples(workdir["data"] / "test.jsonl")
    a = E.sample_examples(ex, 3, seed=1)
    assert len(a) == 3 and [e.id for e in a] == [e.id for e in E.sample_examples(ex, 3, seed=1)]
    assert [e.id for e in a] == sorted(e.id for e in a)  # file order kept


def _run_bad(capsys, argv, needle):
    assert main(["evaluate", *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1


def test_cli_bad_inputs_exit_2(workdir, capsys, tmp_path):
    t, s, data = str(workdir["teacher"]), str(workdir["student"]), str(workdir["data"])
    cases = [
        (["--model", data, "--data", data], "this is a dataset directory"),
        (["--model", t, "--data", t], "this is a model directory"),
        (["--model", str(tmp_path / "nope"), "--data", data], "no such directory"),
        (["--model", t, "--data", str(tmp_path / "nope")], "no such directory"),
        (["--model", t, "--data", str(tmp_path)], "no manifest.json"),
        (["--model", t, "--data", data, "--split", "val"], "val.jsonl not found"),
        (["--model", t, "--model", s, "--data", data, "--label", "a"], "2 models"),
        (["--model", t, "--model", s, "--data", data, "--baseline", "zzz"], "--baseline 'zzz'"),
        (["--model", t, "--model", s, "--data", data, "--baseline", "teacher"], "reference"),
        (["--model", t, "--data", data, "--batch-size", "0"], "--batch-size 0"),
    ]
    for argv, needle in cases:
        _run_bad(capsys, argv, needle)


def test_bad_record_names_file_and_line(tmp_path, workdir):
    d = _write_dataset(tmp_path / "d", n=2)
    with open(d / "test.jsonl", "a") as fh:
        fh.write('{"id": "x", "task": "qa"}\n')
    with pytest.raises(InputError, match=r"test.jsonl:3: field '\w+'"):
        E.load_examples(d / "test.jsonl")
    (d / "test.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match=r"test.jsonl:1: not valid JSON"):
        E.evaluate_models([workdir["teacher"]], d, progress=False, write=False)


def test_auto_max_new_tokens_covers_longest_answer(workdir):
    from distillation.models import load_tokenizer

    ex = E.load_examples(workdir["data"] / "test.jsonl")
    tok = load_tokenizer(str(workdir["teacher"]))
    longest = max(len(tok.encode(e.answer, add_special_tokens=False)) for e in ex)
    by_task = E.auto_max_new_tokens_by_task(str(workdir["teacher"]), ex)
    assert max(by_task.values()) == longest + E.ANSWER_SLACK_TOKENS
    assert set(by_task) == {e.task for e in ex}
    for task, limit in by_task.items():  # each task gets room for its own longest answer only
        own = max(len(tok.encode(e.answer, add_special_tokens=False)) for e in ex if e.task == task)
        assert limit == own + E.ANSWER_SLACK_TOKENS


def test_auto_limits_are_per_task_in_generation_and_report(workdir, monkeypatch):
    seen = {}

    def fake_block(m, block, max_new_tokens, item=None):
        for ex, n in zip(block, max_new_tokens, strict=True):
            seen.setdefault(ex.task, set()).add(n)
        return [ex.answer for ex in block]

    monkeypatch.setattr(E, "_generate_block", fake_block)
    rep = E.evaluate_models([workdir["teacher"], workdir["student"]], workdir["data"],
                            batch_size=4, latency_examples=1, progress=False, write=False,
                            target="answer")
    limits = rep["config"]["max_new_tokens"]
    assert rep["config"]["max_new_tokens_auto"] is True
    assert {t: {n} for t, n in limits.items()} == seen


def test_program_target_scores_what_the_table_computes(workdir, monkeypatch):
    """The teacher writes every program right, the student a program naming a missing column."""

    def fake_block(m, block, max_new_tokens, item=None):
        assert item is E.program_item
        if m.label == "teacher":
            return [ex.program_text for ex in block]
        return ["lookup E1 No_Such_Column" for _ in block]

    from data_loaders.config import PrepareConfig, TableConfig
    from data_loaders.config_loader import load_config
    from data_loaders.dataset import prepare

    root = Path(__file__).resolve().parents[2]
    table_cfg = load_config(TableConfig, root / "configs" / "prepare_cars.yaml", section="table")
    data = workdir["root"] / "program_data"
    prepare([root / "examples" / "data" / "cars.csv"],
            PrepareConfig(max_pairs=60, table=table_cfg), data)
    monkeypatch.setattr(E, "_generate_block", fake_block)
    rep = E.evaluate_models([workdir["teacher"], workdir["student"]], data,
                            labels=["teacher", "student"], batch_size=4, latency_examples=1,
                            progress=False, write=False)
    assert rep["config"]["target"] == "program"
    teacher, student = rep["models"]
    assert teacher["program"]["exact_match"] == 1.0 and teacher["program"]["runs"] == 1.0
    assert student["program"]["runs"] == 0.0
    # summaries of groups name other columns than the reference, so they score below 1
    qa = teacher["accuracy"]["by_task"]["qa"]["accuracy"]["value"]
    assert qa == 1.0 and student["accuracy"]["by_task"]["qa"]["accuracy"]["value"] == 0.0


def test_default_labels_unique():
    assert E.default_labels(["/a/run1/student", "/a/run2/student", "/x/teacher"]) == [
        "run1/student",
        "run2/student",
        "teacher",
    ]


def test_histories_found_next_to_model_or_given(workdir, tmp_path):
    found = E.find_histories(["t", "s"], [workdir["teacher"], workdir["student"]], None)
    # both models sit in the same run dir: its history is listed once
    assert list(found.values()) == [workdir["root"] / "run" / "training_history.jsonl"]
    with pytest.raises(InputError, match="--history"):
        E.find_histories(["t"], [workdir["teacher"]], tmp_path / "missing.jsonl")
