"""The root `distillgraph` command: its command list, usage errors, and the README's quickstart.

Every command the README, the docs, the configs and the code's printed hints name must be
registered; every usage mistake is one line on stderr and exit code 2; and the README's
quickstart runs command by command as printed, on the tiny config instead of the real teacher.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from app import cli as root_cli
from app.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {"prepare", "synth", "distill", "evaluate", "export", "ask", "chat", "serve",
            "feedback"}
LEAVES = [["prepare"], ["synth"], ["distill"], ["evaluate"], ["export"], ["ask"], ["chat"],
          ["serve"], ["feedback", "export"]]


def registered() -> dict[str, object]:
    return typer.main.get_command(root_cli.app).commands


def test_root_lists_every_stage_command():
    assert set(registered()) == COMMANDS
    assert set(registered()["feedback"].commands) == {"export"}


def _named_commands() -> set[tuple[str, str]]:
    """Every `distillgraph WORD` in the docs, configs, examples and code (file, word)."""
    files = [ROOT / "README.md", ROOT / "app" / "chainlit.md", *ROOT.glob("docs/*.md")]
    files += [*ROOT.glob("configs/*.yaml"), *ROOT.glob("examples/*.py")]
    files += ROOT.glob("examples/*.md")
    for pkg in ("app", "data_loaders", "distillation", "graphs", "benchmarks"):
        files += ROOT.glob(f"{pkg}/*.py")
    found = set()
    for f in files:
        for word in re.findall(r"\bdistillgraph (\w[\w-]*)", f.read_text(encoding="utf-8")):
            found.add((f.relative_to(ROOT).as_posix(), word))
    return found


def test_every_command_the_docs_and_hints_name_exists():
    named = _named_commands()
    assert any(word == "evaluate" for _, word in named)  # the scan sees the README quickstart
    # prose in which the project's name is followed by a verb ("distillgraph turns ...")
    prose = {"turns", "loads", "to", "version"}
    missing = sorted((f, w) for f, w in named if w not in COMMANDS and w not in prose)
    assert not missing, f"commands named but not registered: {missing}"


@pytest.mark.parametrize("words", LEAVES, ids=" ".join)
def test_unknown_option_is_one_line_exit_2(words, capsys):
    assert main([*words, "--no-such-option"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "No such option: --no-such-option" in err[0], captured.err
    assert f"distillgraph {' '.join(words)} --help" in err[0]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["no-such-command"], "No such command 'no-such-command'"),
        (["evaluate"], "Missing option '--model'"),
        (["prepare"], "Missing argument"),
        (["prepare", "x.csv"], "Missing option '--out'"),
        (["synth"], "Missing option '--data'"),
        (["ask"], "Missing argument 'question'"),
        (["feedback", "nope"], "No such command 'nope'"),
        (["evaluate", "--model", "m", "--data", "d", "--batch-size", "many"], "'--batch-size'"),
    ],
)
def test_usage_mistakes_are_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: distillgraph") and needle in err[0], err


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in COMMANDS)


def _quickstart() -> list[list[str]]:
    """The shell commands of the README's CLI quickstart, continuation lines joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### The CLI", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]
    commands = []
    for line in lines:
        if line.lstrip().startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if words[:2] == [".", ".venv/bin/activate"]:
            continue
        assert words[0] == "distillgraph", f"README quickstart line is not a command: {line}"
        commands.append(words[1:])
    return commands


@pytest.mark.slow
def test_readme_quickstart_runs_as_printed(tmp_path, monkeypatch, capsys):
    """Each quickstart command, as printed, on the tiny config (the only change: the config)."""
    commands = _quickstart()
    assert [c[0] for c in commands] == ["prepare", "distill", "evaluate", "ask", "chat"]
    for name in ("configs", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    launched = []
    monkeypatch.setattr(root_cli.subprocess, "call", lambda cmd, env: launched.append(env) or 0)
    # Speed only: the tiny random models instead of SmolLM2, one adaptation step, few examples.
    speed = {
        "distill": ["teacher_adaptation.enabled=true", "teacher_adaptation.max_steps=1",
                    "teacher_adaptation.eval_samples=2", "--quiet"],
        "evaluate": ["--max-examples", "4", "--latency-examples", "1", "--no-progress"],
        "ask": ["--set", "student.max_new_tokens=3"],
        "chat": ["--headless"],
        "prepare": ["--max-pairs", "120", "--quiet"],
    }
    for words in commands:
        words = ["configs/tiny.yaml" if w == "configs/default.yaml" else w for w in words]
        assert main([*words, *speed[words[0]]]) == 0, (words, capsys.readouterr().err)
    assert (tmp_path / "runs/cars/eval/report.md").is_file()
    assert capsys.readouterr().out.strip()  # ask printed an answer
    assert launched and launched[0]["DISTILLGRAPH_MODEL"].endswith("runs/cars/distill/student")


def test_the_chat_welcome_page_is_the_top_level_chainlit_md():
    assert (ROOT / "app" / "chainlit.md").read_text() == (ROOT / "chainlit.md").read_text()
