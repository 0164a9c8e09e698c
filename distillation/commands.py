"""Commands of the distillation stage for the `distillgraph` CLI.

    distillgraph distill --config configs/default.yaml [--resume] [key=value ...]

A thin layer over `distillation.trainer.run_distillation`: the YAML plus ``key=value``
overrides are validated into `DistillationConfig` (unknown keys refused by name), the recipe
runs, and a short summary is printed. `InputError` → exit code 2 (handled by the root CLI); a
diverged run (NaN loss) → exit code 1 with the message naming the last good checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    _register_distill(app)


def _register_distill(app: typer.Typer) -> None:
    app.command("distill")(distill_command)


def distill_command(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[KEY=VALUE...]",
            help="Config overrides, e.g. max_steps=50 data_dir=runs/cars alpha=0.7.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Distill YAML (see configs/).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from <output_dir>/checkpoints/last.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Distill a small student from a teacher on a QA dataset (teacher cache, KD, export)."""
    import logging

    import click

    from distillation.config import load_distill_config
    from distillation.trainer import TrainingDiverged, run_distillation

    cfg = load_distill_config(config, overrides or [])
    if quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars
    else:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    try:
        result = run_distillation(cfg, resume=resume, progress=not quiet)
    except TrainingDiverged as e:
        # ClickException: the root CLI prints it and exits with its code (1)
        raise click.ClickException(str(e)) from None
    if not quiet:
        _print_summary(result, time.perf_counter() - start)


def _print_summary(result, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="distillgraph distill", show_header=False)
    table.add_row("teacher", str(result.teacher))
    table.add_row("steps", f"{result.steps}" + (" (early stop)" if result.stopped_early else ""))
    if result.best:
        table.add_row("best val exact match",
                      f"{result.best['val_exact_match']:.1%} at step {result.best['step']} "
                      f"({result.best['eval_samples']} pairs)")
        table.add_row("best val loss", f"{result.best['val_loss']:.4f}")
    table.add_row("exported", f"{result.exported} checkpoint → {result.student_dir}")
    table.add_row("history", str(result.history_path))
    table.add_row("time", f"{seconds:.0f} s")
    Console(stderr=True).print(table)
