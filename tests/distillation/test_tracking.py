"""Experiment tracking (`report_to`): the tracker gets exactly the training_history.jsonl numbers.

The end-to-end test reads TensorBoard's event files back and compares each scalar with the row of
the history file it came from; it is skipped where tensorboard is not installed (the ``track``
extra installs it).
"""

from __future__ import annotations

import importlib.util

import pytest

from data_loaders.errors import InputError
from distillation import tracking as T
from distillation.config import DistillationConfig, load_distill_config
from distillation.history import read_history
from distillation.trainer import run_distillation
from tests.distillation.test_trainer import build_assets, config


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("assets"))


def test_history_row_becomes_namespaced_metrics():
    train = {"event": "train", "step": 3, "epoch": 0, "loss": 1.5, "ce": 2.0, "kd": 1.0,
             "lr": 1e-4, "grad_norm": None, "tokens": 120, "tokens_per_s": 900.5}
    assert T.tracker_metrics(train) == {
        "train/epoch": 0.0, "train/loss": 1.5, "train/ce": 2.0, "train/kd": 1.0,
        "train/lr": 1e-4, "train/tokens": 120.0, "train/tokens_per_s": 900.5,
    }
    ev = {"event": "eval", "step": 4, "val_loss": 0.7, "val_exact_match": 0.25, "best": True,
          "eval_samples": 8, "note": "text is not a metric"}
    assert T.tracker_metrics(ev) == {"eval/val_loss": 0.7, "eval/val_exact_match": 0.25,
                                     "eval/best": 1.0, "eval/eval_samples": 8.0}


def test_flat_config_is_scalars_only(tmp_path):
    flat = T.flat_config(DistillationConfig(output_dir=tmp_path, student_layers=[0, 3]))
    assert flat["teacher_adaptation.max_steps"] == 150
    assert flat["student_layers"] == "[0, 3]" and flat["student_model_name"] == "null"
    assert flat["report_to"] == "none"
    assert all(isinstance(v, bool | int | float | str) for v in flat.values())


def test_report_to_is_validated(tmp_path):
    with pytest.raises(InputError, match="report_to"):
        load_distill_config(None, ["report_to=comet"])
    assert load_distill_config(None, ["report_to=mlflow"]).report_to == "mlflow"


def test_missing_tracker_package_is_refused_before_work(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = DistillationConfig(output_dir=tmp_path / "run", report_to="wandb")
    with pytest.raises(InputError, match=r"report_to: wandb is not installed; pip install wandb"):
        run_distillation(cfg, progress=False)
    assert not (tmp_path / "run").exists()
    assert T.accelerator_kwargs(DistillationConfig(output_dir=tmp_path)) == {}


def _scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_gets_the_history_metrics(assets, tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    cfg = config(assets, out, max_steps=3, eval_every=2, report_to="tensorboard",
                 tracking_project="cars")
    result = run_distillation(cfg, progress=False)
    logdir = out / T.TENSORBOARD_DIR / "cars"
    assert logdir.is_dir()
    scalars = _scalars(logdir)
    rows = read_history(result.history_path)
    for event in ("train", "eval"):
        for name in {k for r in rows if r["event"] == event for k in T.tracker_metrics(r)}:
            want = [(r["step"], T.tracker_metrics(r)[name]) for r in rows
                    if r["event"] == event and name in T.tracker_metrics(r)]
            got = scalars.get(name)
            assert got is not None, f"{name} not logged; have {sorted(scalars)}"
            assert [s for s, _ in got] == [s for s, _ in want], name
            assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5), name
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3]
    assert [s for s, _ in scalars["eval/val_loss"]] == [2, 3]

    # A fresh run in the same output_dir starts a fresh set of curves.
    run_distillation(cfg.model_copy(update={"max_steps": 1}), progress=False)
    assert [s for s, _ in _scalars(logdir)["train/loss"]] == [1]
