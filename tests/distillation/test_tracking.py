"""Experiment tracking: ``report_to`` validation and TensorBoard holding the history's numbers."""

import json
from pathlib import Path

import pytest

from app.cli import main
from data_loaders.errors import InputError
from distillation import tracking
from distillation.config import DistillationConfig, load_distill_config
from distillation.history import read_history
from distillation.trainer import make_accelerator, run_distillation
from tests.distillation.test_trainer import build_assets, config


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("assets"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none", []),
        (None, []),
        ("tensorboard", ["tensorboard"]),
        ("TensorBoard, mlflow", ["tensorboard", "mlflow"]),
        (["wandb", "tensorboard", "wandb"], ["wandb", "tensorboard"]),
        (["none"], []),
    ],
)
def test_report_to_accepts_none_a_name_or_a_list(value, expected):
    assert DistillationConfig(report_to=value).report_to == expected


def test_report_to_defaults_to_none():
    assert DistillationConfig().report_to == []


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("report_to=tensorbord", "unknown tracker 'tensorbord'"),
        ("report_to=[none, wandb]", "'none' cannot be combined"),
        ("report_to=3", "must be none, a tracker name or a list"),
    ],
)
def test_bad_report_to_names_the_field(override, needle):
    with pytest.raises(InputError) as e:
        load_distill_config(None, [override])
    assert "'report_to'" in str(e.value) and needle in str(e.value)


@pytest.mark.parametrize("name", ["tensorboard", "mlflow", "wandb"])
def test_uninstalled_tracker_is_a_clear_error_with_the_pip_command(name, monkeypatch, tmp_path):
    monkeypatch.setattr(tracking, "_installed", lambda n: n != name)
    cfg = DistillationConfig(report_to=[name], output_dir=tmp_path, device="cpu")
    with pytest.raises(InputError) as e:
        make_accelerator(cfg)
    msg = str(e.value)
    assert msg.startswith(f"report_to: {name} is not installed") and "pip install" in msg
    assert "report_to: none" in msg


def test_row_values_prefix_the_event_and_drop_missing_values():
    train = {"event": "train", "step": 3, "epoch": 0, "loss": 1.5, "grad_norm": None, "lr": 1e-3}
    assert tracking.row_values(train) == {"train/epoch": 0.0, "train/loss": 1.5, "train/lr": 1e-3}
    evals = {"event": "eval", "step": 4, "val_loss": 0.5, "best": True, "elapsed": 2.0}
    assert tracking.row_values(evals) == {"eval/val_loss": 0.5, "eval/best": 1.0,
                                          "eval/elapsed": 2.0}


def test_hparams_are_flat_scalars():
    hp = tracking.flat_hparams(DistillationConfig(report_to="tensorboard", student_layers=[0, 3]))
    assert hp["teacher_adaptation.max_steps"] == 48 and hp["student_layers"] == "[0, 3]"
    assert hp["report_to"] == '["tensorboard"]'
    assert all(v is None or isinstance(v, bool | int | float | str) for v in hp.values())


class _FakeAccelerator:
    def __init__(self):
        self.calls = []

    def init_trackers(self, project_name, config=None, init_kwargs=None):
        self.calls.append(("init", project_name, init_kwargs))

    def log(self, values, step=None):
        self.calls.append(("log", values, step))

    def end_training(self):
        self.calls.append(("end",))


def test_resume_hides_the_interrupted_runs_later_tensorboard_events(tmp_path):
    acc = _FakeAccelerator()
    cfg = DistillationConfig(report_to="tensorboard", output_dir=tmp_path / "cars")
    tracking.start_tracking(acc, cfg, resume_step=50)
    _, project, kwargs = acc.calls[0]
    assert project == tracking.PROJECT
    assert kwargs["tensorboard"] == {"purge_step": 51} and kwargs["wandb"] == {"name": "cars"}


def test_without_report_to_nothing_reaches_the_accelerator(tmp_path):
    acc = _FakeAccelerator()
    cfg = DistillationConfig(output_dir=tmp_path)
    tracking.start_tracking(acc, cfg)
    tracking.log_row(acc, cfg, {"event": "train", "step": 1, "loss": 1.0})
    tracking.end_tracking(acc, cfg)
    assert acc.calls == [] and tracking.accelerator_kwargs(cfg) == {}


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_gets_the_history_rows_at_their_steps(assets, tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    result = run_distillation(config(assets, out, report_to="tensorboard"), progress=False)
    logdir = out / tracking.TRACKING_DIR / tracking.PROJECT
    assert list(logdir.glob("events.out.tfevents.*")), "no event file"
    scalars = _scalars(logdir)
    rows = read_history(result.history_path)
    for event in ("train", "eval"):
        event_rows = [r for r in rows if r["event"] == event]
        for key in ("loss", "ce", "kd", "lr", "tokens") if event == "train" else (
                "val_loss", "val_exact_match"):
            logged = scalars[f"{event}/{key}"]
            assert [s for s, _ in logged] == [r["step"] for r in event_rows], key
            assert [v for _, v in logged] == pytest.approx([r[key] for r in event_rows],
                                                           rel=1e-6), key
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3, 4]
    assert [s for s, _ in scalars["eval/val_loss"]] == [2, 4]
    assert list(logdir.glob("*/hparams.yml")), "config not stored as hyperparameters"

    # A fresh run in the same output_dir drops the mirror, as it does the history; trackers
    # may change on --resume (they do not change what the steps compute).
    run_distillation(config(assets, out, max_steps=2), progress=False)
    assert not (out / tracking.TRACKING_DIR).exists()
    run_distillation(config(assets, out, report_to="tensorboard"), resume=True, progress=False)
    assert [s for s, _ in _scalars(logdir)["train/loss"]] == [3, 4]


@pytest.fixture()
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for split, n in (("train", 16), ("val", 4)):
        rows = [{"question": f"What is the horsepower of car {i}?", "answer": f"{60 + i} hp",
                 "context": f"[row {i}] Name: car {i} | horsepower: {60 + i} hp"} for i in range(n)]
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_readme_command_writes_tensorboard_events(tmp_path, data_dir, capsys, monkeypatch):
    """`distillgraph distill --config configs/tiny.yaml report_to=tensorboard`, as the README."""
    pytest.importorskip("tensorboard")
    args = ["distill", "--config", "configs/tiny.yaml", "--quiet", f"data_dir={data_dir}",
            f"output_dir={tmp_path / 'run'}", "max_steps=2", "eval_samples=2"]
    assert main([*args, "report_to=tensorboard"]) == 0
    logdir = tmp_path / "run" / tracking.TRACKING_DIR / tracking.PROJECT
    assert [s for s, _ in _scalars(logdir)["train/loss"]] == [1, 2]

    assert main([*args, "report_to=mlfow"]) == 2
    assert "unknown tracker 'mlfow'" in capsys.readouterr().err
    monkeypatch.setattr(tracking, "_installed", lambda name: False)
    assert main([*args, "report_to=[tensorboard]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "report_to: tensorboard is not installed" in err[0]
