"""Experiment tracking: the rows of ``training_history.jsonl`` mirrored to TensorBoard/MLflow/W&B.

This module owns what ``report_to`` (`DistillationConfig`) turns on, through accelerate's
trackers: checking each named tracker is installed (else an `InputError` naming the field and the
pip command, because accelerate would silently drop it), the `Accelerator` arguments
(``log_with``, TensorBoard files under ``<output_dir>/tracking``), starting the run with the
resolved config as hyperparameters, and logging one history row as scalars (``train/loss``,
``train/ce``, ``train/kd``, ``train/lr``, ``eval/val_exact_match`` ...) at the row's step. The
recipe calls `log_row` right where it appends the row to the history file, so both hold the same
numbers at the same steps. accelerate logs from the main process only. accelerate is imported
lazily.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_loaders.errors import InputError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from distillation.config import DistillationConfig

TRACKING_DIR = "tracking"
"""Sub-directory of ``output_dir`` holding local tracker files (TensorBoard's event files)."""

PROJECT = "distillgraph"
"""accelerate's ``project_name``: TensorBoard's run folder, MLflow's experiment, W&B's project."""

_INSTALL = {
    "tensorboard": "pip install 'distillgraph[track]' (or pip install tensorboard)",
    "mlflow": "pip install mlflow",
    "wandb": "pip install wandb",
}


def _installed(name: str) -> bool:
    """Whether accelerate sees tracker ``name`` (its own check: one passing here is not dropped)."""
    from accelerate.utils import is_mlflow_available, is_tensorboard_available, is_wandb_available

    return {"tensorboard": is_tensorboard_available, "mlflow": is_mlflow_available,
            "wandb": is_wandb_available}[name]()


def check_installed(names: Sequence[str]) -> None:
    """Refuse a tracker whose package is missing.

    Raises:
        InputError: naming the ``report_to`` field, the tracker and the pip command.
    """
    for name in names:
        if not _installed(name):
            raise InputError(f"report_to: {name} is not installed; {_INSTALL[name]}, or set "
                             "report_to: none")


def accelerator_kwargs(config: DistillationConfig) -> dict[str, Any]:
    """Keyword arguments for `Accelerator` that turn on ``config.report_to`` (none: ``{}``).

    Raises:
        InputError: a named tracker is not installed.
    """
    if not config.report_to:
        return {}
    from accelerate.utils import ProjectConfiguration

    check_installed(config.report_to)
    out = Path(config.output_dir)
    return {
        "log_with": list(config.report_to),
        "project_config": ProjectConfiguration(project_dir=str(out),
                                               logging_dir=str(out / TRACKING_DIR)),
    }


def flat_hparams(config: DistillationConfig) -> dict[str, Any]:
    """The resolved config as flat ``{"teacher_adaptation.max_steps": 24, ...}`` hyperparameters.

    Nested sections become dotted keys; lists become JSON text, since TensorBoard's hparams take
    scalars only.
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list):
            out[prefix] = json.dumps(value)
        else:
            out[prefix] = value

    walk("", config.model_dump(mode="json"))
    return out


def start_tracking(
    accelerator: Accelerator, config: DistillationConfig, resume_step: int | None = None
) -> None:
    """Start the trackers' run (no-op without ``report_to``), logging the config.

    Args:
        accelerator: made with `accelerator_kwargs`.
        config: the run's settings; logged as hyperparameters.
        resume_step: the step a resumed run continues from. TensorBoard then hides the events
            past it that the interrupted run wrote, as the history file drops those rows.
    """
    if not config.report_to:
        return
    run_name = Path(config.output_dir).name
    init_kwargs: dict[str, dict] = {"wandb": {"name": run_name}, "mlflow": {"run_name": run_name}}
    if resume_step is not None:
        init_kwargs["tensorboard"] = {"purge_step": resume_step + 1}
    accelerator.init_trackers(PROJECT, config=flat_hparams(config), init_kwargs=init_kwargs)


def row_values(row: Mapping[str, Any]) -> dict[str, float]:
    """A history row as tracker scalars: ``{"<event>/<key>": value}``, step and text left out.

    ``train`` and ``eval`` rows both carry ``elapsed``; the event prefix keeps them apart. A
    missing value (``grad_norm`` without clipping) is left out; ``best`` becomes 0/1.
    """
    event = row.get("event", "train")
    values = {}
    for key, value in row.items():
        if key in ("event", "step") or value is None or isinstance(value, str):
            continue
        if isinstance(value, bool | int | float):
            values[f"{event}/{key}"] = float(value)
    return values


def log_row(accelerator: Accelerator, config: DistillationConfig, row: Mapping[str, Any]) -> None:
    """Log one ``training_history.jsonl`` row to the trackers at its step (no-op without any)."""
    if config.report_to:
        accelerator.log(row_values(row), step=int(row["step"]))


def end_tracking(accelerator: Accelerator, config: DistillationConfig) -> None:
    """Close the trackers' run, flushing what they buffer (no-op without ``report_to``)."""
    if config.report_to:
        accelerator.end_training()
