import os
from pathlib import Path

import pytest

from app.config import ChatSettings, default_chat_dir, sqlite_url
from data_loaders.errors import InputError


def test_defaults_serve_the_cars_example_from_any_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = ChatSettings.from_env({"HOME": str(tmp_path), "DISTILLGRAPH_CHAT_DIR": str(tmp_path / "c")})
    assert [Path(t).name for t in s.tables] == ["cars.csv"] and Path(s.tables[0]).is_file()
    assert s.table_config and Path(s.table_config).name == "prepare_cars.yaml"
    assert s.database_url == sqlite_url(tmp_path / "c" / "history.db")
    assert s.memory_path == tmp_path / "c" / "memory.sqlite"
    assert s.memory == str(tmp_path / "c" / "memory.sqlite")


def test_environment_overrides(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    env = {
        "DISTILLGRAPH_MODEL": str(model),
        "DISTILLGRAPH_TABLES": f"a.csv{os.pathsep}b.parquet",
        "DISTILLGRAPH_DATABASE_URL": "postgresql+asyncpg://u@h/chat",
        "DISTILLGRAPH_CHAT_DIR": str(tmp_path),
    }
    s = ChatSettings.from_env(env)
    assert s.model == str(model) and s.tables == ("a.csv", "b.parquet")
    assert s.table_config is None and s.database_url.startswith("postgresql+asyncpg://")
    assert s.memory == str(tmp_path / "memory.sqlite")
    pg = ChatSettings.from_env({**env, "DISTILLGRAPH_MEMORY": "postgresql://u@h/memory"})
    assert pg.memory == "postgresql://u@h/memory"
    with pytest.raises(InputError, match="DISTILLGRAPH_MODEL"):
        ChatSettings.from_env({**env, "DISTILLGRAPH_MODEL": str(tmp_path / "none")})


def test_history_outlives_caches(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_chat_dir() == tmp_path / "distillgraph" / "chat"


def test_app_reads_the_graphs_variables(tmp_path):
    from graphs.config import ENV_GRAPH_CONFIG, ENV_TABLE_CONFIG, ENV_TABLES

    env = {
        ENV_TABLES: "a.csv",
        ENV_GRAPH_CONFIG: "graph.yaml",
        ENV_TABLE_CONFIG: "prepare.yaml",
        "DISTILLGRAPH_CHAT_DIR": str(tmp_path),
    }
    s = ChatSettings.from_env(env)
    assert (s.tables, s.graph_config, s.table_config) == (("a.csv",), "graph.yaml", "prepare.yaml")
