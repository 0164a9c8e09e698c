"""The demo runs end to end (tiny random models instead of SmolLM2) and reuses finished stages."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location(
        "complete_pipeline", ROOT / "examples" / "complete_pipeline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_end_to_end_with_tiny_models(demo, tmp_path, capsys):
    work = tmp_path / "demo"
    argv = [
        "--workdir",
        str(work),
        "--distill-config",
        str(ROOT / "configs" / "tiny.yaml"),
        "--max-examples",
        "12",
    ]
    assert demo.main(argv) == 0
    out = capsys.readouterr().out
    for stage in (
        "1. Load the sample table",
        "2. Adapt the teacher",
        "3. Evaluate",
        "4. Agent graph",
        "5. Where everything is",
    ):
        assert stage in out
    for f in (
        "data/manifest.json",
        "data/test.jsonl",
        "distill/student/config.json",
        "distill/training_history.jsonl",
        "student_undistilled/config.json",
        "eval/report.json",
        "eval/report.md",
        "pipeline.json",
    ):
        assert (work / f).is_file(), f
    report = json.loads((work / "eval" / "report.json").read_text())
    assert [m["label"] for m in report["models"]] == ["teacher", "undistilled", "distilled"]
    summary = json.loads((work / "pipeline.json").read_text())
    assert len(summary["queries"]) == len(demo.DEMO_QUERIES)
    assert {q["route"] for q in summary["queries"]} == {"qa", "summarizer", "validator"}
    assert all(q["answer"] for q in summary["queries"])
    routing = summary["routing"]  # a random tiny student fails the probes: the rules route
    assert routing["n"] == len((work / "data" / "test.jsonl").read_text().splitlines())
    assert routing["graph_router_uses"] == "keyword rules"
    assert routing["graph_router"] == 1.0

    # A second run reuses the dataset and the student instead of rebuilding them.
    assert demo.main([*argv, "--skip-graph"]) == 0
    again = capsys.readouterr().out
    assert "reusing" in again
    assert json.loads((work / "pipeline.json").read_text())["seconds"]["distill"] is None


def test_demo_reports_bad_input_with_exit_code_2(demo, tmp_path, capsys):
    rc = demo.main(["--workdir", str(tmp_path / "w"), "--table", str(tmp_path / "missing.csv")])
    assert rc == 2
    assert "missing.csv" in capsys.readouterr().out
    assert not (tmp_path / "w" / "data").exists()
