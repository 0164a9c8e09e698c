"""Experiment tracking of a distillation run: TensorBoard, MLflow or W&B via accelerate's trackers.

``report_to`` in the run's config picks the tracker (``none`` by default). This module owns
checking that its package is installed (before any work), the keyword arguments that make the
`Accelerator` log with it, the run's configuration as flat hyperparameters, and turning a
``training_history.jsonl`` row into the metrics the tracker gets: the same numbers under
``train/<name>`` and ``eval/<name>``, at the row's optimizer step. The history file stays the
record of the run; a tracker is a view of it. TensorBoard logs go to
``<output_dir>/tensorboard/<tracking_project>``; MLflow follows ``MLFLOW_TRACKING_URI`` and W&B
its own login (``WANDB_MODE=offline`` keeps it local).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_loaders.errors import InputError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from distillation.config import DistillationConfig

TENSORBOARD_DIR = "tensorboard"
"""Folder of ``<output_dir>`` holding TensorBoard's event files."""

# Tracker → (modules that provide it, what to install).
_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "pip install 'distillgraph[track]'"),
    "mlflow": (("mlflow",), "pip install mlflow"),
    "wandb": (("wandb",), "pip install wandb"),
}


def check_report_to(report_to: str) -> None:
    """Refuse a tracker whose package is missing (accelerate would silently log nowhere).

    Raises:
        InputError: naming ``report_to``, the tracker and the install command.
    """
    if report_to == "none":
        return
    modules, install = _PACKAGES[report_to]
    if not any(importlib.util.find_spec(m) is not None for m in modules):
        raise InputError(f"report_to: {report_to} is not installed; {install}, or set "
                         "report_to=none")


def accelerator_kwargs(config: DistillationConfig) -> dict[str, Any]:
    """Keyword arguments for `Accelerator` that make it log to ``config.report_to``."""
    check_report_to(config.report_to)
    if config.report_to == "none":
        return {}
    return {"log_with": config.report_to,
            "project_dir": str(Path(config.output_dir) / TENSORBOARD_DIR)}


def flat_config(config: DistillationConfig) -> dict[str, str | int | float | bool]:
    """The run's settings as ``{"teacher_adaptation.max_steps": 150, ...}`` scalars.

    Trackers take hyperparameters as scalars only (TensorBoard's hparams refuse lists and
    ``None``), so nested settings get dotted names, lists become JSON and ``None`` ``"null"``.
    """
    flat: dict[str, str | int | float | bool] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif value is None:
            flat[prefix] = "null"
        elif isinstance(value, bool | int | float | str):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(value, default=str)

    walk("", config.model_dump(mode="json"))
    return flat


def start_tracking(accelerator: Accelerator, config: DistillationConfig) -> None:
    """Open the tracker's run (named after the output directory) with the run's settings."""
    if config.report_to == "none":
        return
    run_name = Path(config.output_dir).resolve().name
    accelerator.init_trackers(
        config.tracking_project,
        config=flat_config(config),
        init_kwargs={
            # Events reach the file within seconds, so a run that dies keeps its curves.
            "tensorboard": {"flush_secs": 10},
            "mlflow": {"run_name": run_name},
            "wandb": {"name": run_name, "dir": str(config.output_dir)},
        },
    )


def tracker_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """A history row's numbers as ``{"<event>/<name>": value}`` (step and event are not metrics).

    ``None`` (e.g. no gradient norm without clipping) is left out; booleans become 0/1.
    """
    event = row.get("event", "train")
    return {
        f"{event}/{k}": float(v)
        for k, v in row.items()
        if k not in ("event", "step") and isinstance(v, int | float) and v is not None
    }


def log_row(accelerator: Accelerator, config: DistillationConfig, row: Mapping[str, Any]) -> None:
    """Send one history row to the tracker at the row's optimizer step."""
    if config.report_to != "none":
        accelerator.log(tracker_metrics(row), step=int(row["step"]))


def end_tracking(accelerator: Accelerator, config: DistillationConfig) -> None:
    """Close the tracker's run (flushes TensorBoard's files, marks the MLflow/W&B run done)."""
    if config.report_to != "none":
        accelerator.end_training()
