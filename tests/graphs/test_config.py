"""The graph's settings: environment variables read by `make_graph` and per-call settings."""

from __future__ import annotations

import os

import pytest

from data_loaders.errors import InputError
from graphs.config import (
    ENV_GRAPH_CONFIG,
    ENV_MODEL,
    ENV_TABLE_CONFIG,
    ENV_TABLES,
    PER_CALL_KEYS,
    EnvSettings,
    GraphConfig,
)
from tests.graphs.conftest import AIRPORTS


def test_env_settings_read_the_shared_variables():
    assert EnvSettings.from_env({}) == EnvSettings(None, (), None, None)
    env = {
        ENV_MODEL: "",  # empty = unset
        ENV_TABLES: f"a.csv{os.pathsep} {os.pathsep}b.parquet",
        ENV_GRAPH_CONFIG: "graph.yaml",
    }
    read = EnvSettings.from_env(env)
    assert read == EnvSettings(None, ("a.csv", "b.parquet"), "graph.yaml", None)


def test_make_graph_reads_the_shared_variables(monkeypatch, tmp_path, tiny_model_dir):
    from graphs.graph import make_graph

    graph_yaml = tmp_path / "graph.yaml"
    graph_yaml.write_text("max_input_chars: 123\n")
    table_yaml = tmp_path / "prepare.yaml"
    table_yaml.write_text("table:\n  entity_column: iata\n")
    monkeypatch.setenv(ENV_MODEL, str(tiny_model_dir))
    monkeypatch.setenv(ENV_TABLES, str(AIRPORTS))
    monkeypatch.setenv(ENV_GRAPH_CONFIG, str(graph_yaml))
    monkeypatch.setenv(ENV_TABLE_CONFIG, str(table_yaml))
    nodes = make_graph().distillgraph_nodes
    assert nodes.config.max_input_chars == 123
    assert [(t.name, t.entity_column) for t in nodes.retriever.tables] == [("airports", "iata")]


def test_for_call_takes_only_the_per_call_keys():
    base = GraphConfig()
    assert base.for_call(None) is base
    assert base.for_call({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}) is base
    call = base.for_call({"configurable": {"retrieval": {"max_rows": 16}}})
    assert call.retrieval.max_rows == 16 and base.retrieval.max_rows == 8
    assert call.retrieval.max_chars == base.retrieval.max_chars  # merged, not replaced
    assert set(PER_CALL_KEYS) < set(GraphConfig.model_fields)
    with pytest.raises(InputError, match="student cannot change per call"):
        base.for_call({"configurable": {"student": {"path": "x"}}})
