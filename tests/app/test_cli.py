"""`distillgraph chat` option checks and environment; `feedback export` is in test_history."""

import os
import stat

import pytest

from app.cli import APP_FILE, chainlit_command, chat_environment, prepare_app_root
from data_loaders.errors import InputError


def env_for(tmp_path, **kw):
    base = {"HOME": str(tmp_path)}
    args = dict(model=None, data=[], graph_config=None, table_config=None,
                state_dir=tmp_path / "state", db=None, base_env=base)
    args.update(kw)
    return chat_environment(**args)


def test_options_become_environment(tmp_path):
    model = tmp_path / "student"
    model.mkdir()
    (model / "config.json").write_text("{}")
    table = tmp_path / "t.csv"
    table.write_text("a,b\nx,1\n")
    env = env_for(tmp_path, model=model, data=[str(table), "sqlite:///x.db#cars"])
    assert env["DISTILLGRAPH_MODEL"] == str(model.resolve())
    assert env["DISTILLGRAPH_TABLES"] == os.pathsep.join([str(table.resolve()), "sqlite:///x.db#cars"])
    assert env["DISTILLGRAPH_CHAT_DIR"] == env["CHAINLIT_APP_ROOT"] == str(tmp_path / "state")
    assert "DISTILLGRAPH_DATABASE_URL" not in env  # the app defaults to <state>/history.db


def test_local_login_secret_is_kept_private_and_stable(tmp_path):
    first = env_for(tmp_path)["CHAINLIT_AUTH_SECRET"]
    secret_file = tmp_path / "state" / ".auth_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert env_for(tmp_path)["CHAINLIT_AUTH_SECRET"] == first and len(first) > 32


def test_password_login_needs_an_operator_secret(tmp_path):
    users = {"DISTILLGRAPH_AUTH_USERS": "alice:sha256:" + "0" * 64}
    with pytest.raises(InputError, match="CHAINLIT_AUTH_SECRET"):
        chat_environment(model=None, data=[], graph_config=None, table_config=None,
                         state_dir=tmp_path, db=None, base_env=users)
    env = chat_environment(model=None, data=[], graph_config=None, table_config=None,
                           state_dir=tmp_path, db=None,
                           base_env={**users, "CHAINLIT_AUTH_SECRET": "op-secret"})
    assert env["CHAINLIT_AUTH_SECRET"] == "op-secret"


@pytest.mark.parametrize(("kw", "msg"), [
    ({"model": "nodir"}, "not a model directory"),
    ({"data": ["missing.csv"]}, "file not found"),
    ({"graph_config": "missing.yaml"}, "--config"),
])
def test_bad_options_fail_before_starting(tmp_path, kw, msg):
    from pathlib import Path

    kw = {k: (Path(tmp_path / v) if k != "data" else [str(tmp_path / v[0])]) for k, v in kw.items()}
    with pytest.raises(InputError, match=msg):
        env_for(tmp_path, **kw)


def test_command_runs_this_packages_app_from_anywhere(tmp_path):
    cmd = chainlit_command("127.0.0.1", 8123, headless=True)
    assert cmd[1:4] == ["-m", "chainlit", "run"] and cmd[4] == str(APP_FILE)
    assert APP_FILE.is_absolute() and APP_FILE.is_file()
    assert cmd[-5:] == ["--host", "127.0.0.1", "--port", "8123", "--headless"]
    prepare_app_root(tmp_path)
    assert (tmp_path / "chainlit.md").read_text().startswith("# distillgraph chat")


def test_chat_help_lists_the_options(capsys):
    from app.cli import main

    assert main(["chat", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--data", "--port", "--host", "--headless"):
        assert flag in out


def test_serving_beyond_loopback_needs_login_or_allow_anonymous(tmp_path, monkeypatch, capsys):
    import app.cli as cli
    from app.cli import main

    monkeypatch.delenv("DISTILLGRAPH_AUTH_USERS", raising=False)
    monkeypatch.delenv("DISTILLGRAPH_AUTH_USERS_FILE", raising=False)
    launched = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, env: launched.append(cmd) or 0)
    state = tmp_path / "state"
    args = ["chat", "--host", "0.0.0.0", "--headless", "--state-dir", str(state)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--allow-anonymous" in err and "DISTILLGRAPH_AUTH_USERS" in err
    assert not launched and not state.exists()  # refused before anything was written
    assert main([*args, "--allow-anonymous"]) == 0
    assert launched and "without password login" in capsys.readouterr().err
    assert main(["chat", "--host", "127.0.0.1", "--headless", "--state-dir", str(state)]) == 0
    assert len(launched) == 2


def test_set_overrides_reach_the_app_and_bad_ones_fail_early(tmp_path):
    from app.config import ChatSettings

    env = env_for(tmp_path, overrides=["program.min_confidence=0.3", "max_input_chars=500"])
    settings = ChatSettings.from_env(env)
    assert settings.overrides == ("program.min_confidence=0.3", "max_input_chars=500")
    with pytest.raises(InputError, match="no_such_key"):
        env_for(tmp_path, overrides=["no_such_key=1"])
