"""Entry points: cheap import, the lazy module-level graph for `langgraph dev`, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_import_loads_no_model():
    code = "import graphs.graph, sys; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_langgraph_json_points_at_the_lazy_graph():
    spec = json.loads((ROOT / "langgraph.json").read_text())
    path, attr = spec["graphs"]["distillgraph"].split(":")
    assert (ROOT / path).is_file() and attr == "graph"


def test_module_graph_built_from_env(monkeypatch, tiny_model_dir, cars):
    import graphs.graph as gg

    monkeypatch.setenv("DISTILLGRAPH_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("DISTILLGRAPH_TABLES", str(ROOT / "examples" / "data" / "cars.csv"))
    monkeypatch.setattr(gg, "_GRAPH", None)
    g = gg.graph
    assert g is gg.graph  # built once
    assert g.checkpointer is None  # the server brings its own
    assert {"qa", "summarizer", "validator"} <= set(g.get_graph().nodes)


def test_cli_ask_continues_a_thread(tiny_model_dir, tmp_path, capsys):
    args = ["--model", str(tiny_model_dir), "--memory", str(tmp_path / "m.sqlite"), "-t", "cli"]
    args += ["--set", "student.max_new_tokens=3", "--set", "retrieval.max_chars=600"]
    assert main(["ask", "Is it true that ford pinto has 4 cylinders?", *args]) == 0
    assert capsys.readouterr().out.startswith("Yes: the table gives cylinders 4 for ford pinto")
    assert main(["ask", "and its origin?", *args, "-v"]) == 0
    captured = capsys.readouterr()
    assert "What is the origin of ford pinto?" in captured.err
    assert main(["ask", "hi", "--data", str(tmp_path / "missing.csv"), *args]) == 2
