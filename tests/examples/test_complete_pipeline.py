"""The demo runs end to end (tiny random models instead of SmolLM2) on the sample table and on
any other table, reuses finished stages, and prints rerun commands that the root CLI runs."""

import importlib.util
import json
import shlex
from pathlib import Path

import pandas as pd
import pytest
import typer

from app import cli as root_cli

ROOT = Path(__file__).resolve().parents[2]
AIRPORTS = ROOT / "tests" / "data" / "airports.csv"
# A user's own table and prepare YAML: nothing in it is about cars.
AIRPORTS_PREPARE = """\
max_pairs: 120
max_context_rows: 4
table:
  entity_column: name
  columns:
    latitude: {alias: latitude, unit: deg}
    longitude: {alias: longitude, unit: deg}
"""


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location(
        "complete_pipeline", ROOT / "examples" / "complete_pipeline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_argv(work: Path, *extra: str) -> list[str]:
    """The demo's arguments for a run in `work` on the tiny random models."""
    return [
        "--workdir",
        str(work),
        "--distill-config",
        str(ROOT / "configs" / "tiny.yaml"),
        "--max-examples",
        "12",
        *extra,
    ]


def assert_questions_about(summary: dict, table: Path, entity_column: str) -> None:
    """One question per route, each naming an entity (a row) of `table`."""
    entities = set(pd.read_csv(table)[entity_column].dropna().astype(str))
    queries = summary["queries"]
    assert {q["route"] for q in queries} == {"qa", "summarizer", "validator"}
    for q in queries:
        assert any(e in q["query"] for e in entities), q["query"]
        assert q["answer"]


def test_demo_end_to_end_with_tiny_models(demo, tmp_path, capsys):
    work = tmp_path / "demo"
    argv = tiny_argv(work)
    assert demo.main(argv) == 0
    out = capsys.readouterr().out
    for stage in (
        "1. Load the table",
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
    assert_questions_about(summary, ROOT / "examples" / "data" / "cars.csv", "Name")
    routing = summary["routing"]  # a random tiny student fails the probes: the rules route
    assert routing["n"] == len((work / "data" / "test.jsonl").read_text().splitlines())
    assert routing["graph_router_uses"] == "keyword rules"
    assert routing["graph_router"] == 1.0

    # A second run reuses the dataset and the student instead of rebuilding them.
    assert demo.main([*argv, "--skip-graph"]) == 0
    again = capsys.readouterr().out
    assert "reusing" in again
    assert json.loads((work / "pipeline.json").read_text())["seconds"]["distill"] is None

    # ... but not for another table: that needs --fresh or another --workdir.
    assert demo.main([*argv, "--table", str(AIRPORTS)]) == 2
    assert "--fresh" in capsys.readouterr().out


def test_demo_on_another_table_runs_every_stage(demo, tmp_path, monkeypatch, capsys):
    """`--table` + `--prepare-config`: the graph asks about that table's rows, with its config,
    and every command the demo prints is one the root CLI parses (ask and chat run)."""
    prepare_yaml = tmp_path / "airports.yaml"
    prepare_yaml.write_text(AIRPORTS_PREPARE)
    work = tmp_path / "airports"
    argv = tiny_argv(work, "--table", str(AIRPORTS), "--prepare-config", str(prepare_yaml))
    assert demo.main(argv) == 0
    out = capsys.readouterr().out
    assert "4. Agent graph" in out and "5. Where everything is" in out
    summary = json.loads((work / "pipeline.json").read_text())
    assert summary["table"] == str(AIRPORTS)
    assert_questions_about(summary, AIRPORTS, "name")
    assert summary["routing"]["n"] > 0

    commands = summary["commands"]
    assert set(commands) == {"prepare", "distill", "evaluate", "ask", "chat"}
    for name in ("prepare", "distill", "evaluate"):
        assert f"rerun alone: {commands[name]}" in out  # printed whole, as kept
    assert f"Ask from the shell:     {commands['ask']}" in out
    assert f"Chat with the student:  {commands['chat']}" in out
    root = typer.main.get_command(root_cli.app)
    for line in commands.values():
        words = shlex.split(line)
        assert words[0] == "distillgraph"
        ctx = root.make_context("distillgraph", words[1:])
        sub = root.get_command(ctx, words[1])
        sub.make_context(words[1], words[2:], parent=ctx)  # raises on an unknown option
    assert str(prepare_yaml) in commands["ask"] and str(AIRPORTS) in commands["chat"]

    # The graph hint runs as printed; chat checks its options and would start Chainlit.
    assert root_cli.main(shlex.split(commands["ask"])[1:]) == 0
    assert capsys.readouterr().out.strip()  # the answer
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    launched = []
    monkeypatch.setattr(root_cli.subprocess, "call", lambda cmd, env: launched.append(env) or 0)
    assert root_cli.main(shlex.split(commands["chat"])[1:]) == 0
    assert launched[0]["DISTILLGRAPH_TABLES"] == str(AIRPORTS)
    assert launched[0]["DISTILLGRAPH_TABLE_CONFIG"] == str(prepare_yaml)


def test_demo_reports_bad_input_with_exit_code_2(demo, tmp_path, capsys):
    rc = demo.main(["--workdir", str(tmp_path / "w"), "--table", str(tmp_path / "missing.csv")])
    assert rc == 2
    assert "missing.csv" in capsys.readouterr().out
    assert not (tmp_path / "w" / "data").exists()
