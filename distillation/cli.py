"""Commands of the distillation stage: ``distillgraph distill`` and ``distillgraph evaluate``.

    distillgraph distill --config configs/default.yaml [--resume] [key=value ...]
    distillgraph evaluate --model TEACHER --model STUDENT --data DATASET_DIR [--out DIR]

Thin layers over `distillation.trainer.run_distillation` and
`distillation.evaluation.evaluate_models`: the YAML plus ``key=value`` overrides are validated
into `DistillationConfig` (unknown keys refused by name), the work runs, and a short summary is
printed. `InputError` → exit code 2 (handled by the root CLI, `app.cli`); a diverged run (NaN
loss) → exit code 1 with the message naming the last good checkpoint. Heavy imports (torch,
transformers) happen inside the command bodies so ``distillgraph --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``distill`` and ``evaluate`` to the root CLI."""
    app.command("distill")(distill_command)
    app.command("evaluate")(evaluate_command)


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
    import sys

    from distillation.config import load_distill_config
    from distillation.loop import TrainingDiverged
    from distillation.trainer import run_distillation

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
        print(f"error: {e}", file=sys.stderr)  # a run that failed, not bad input: exit code 1
        raise typer.Exit(1) from None
    if not quiet:
        _print_distill_summary(result, time.perf_counter() - start)


def _print_distill_summary(result, seconds: float) -> None:
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


def _print_evaluate_summary(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from distillation.report import fmt_bytes, fmt_ci, fmt_count, fmt_num, fmt_pct

    table = Table(
        title=f"{report['dataset']['n_examples']} examples, split {report['dataset']['split']}"
    )
    for col in ("model", "role", "accuracy (95% CI)", "params", "size", "p50 latency", "speedup"):
        table.add_column(col)
    table.add_column("gap closed")
    programs = report["config"].get("target") == "program"
    if programs:
        table.add_column("program exact / runs")
    for m in report["models"]:
        gap = (m.get("gap_closed") or {}).get("accuracy")
        table.add_row(
            m["label"],
            m["role"],
            fmt_ci(m["accuracy"]["overall"]["accuracy"]),
            fmt_count(m["cost"]["params"]),
            fmt_bytes(m["cost"]["size_bytes"]),
            fmt_num(m["cost"]["latency_ms"]["p50"], 0, " ms"),
            fmt_num(m["vs_reference"]["speedup_p50"], 2, "×"),
            "—" if gap is None else fmt_pct(gap, 0),
            *(
                [f"{fmt_pct(m['program']['exact_match'], 1)} / {fmt_pct(m['program']['runs'], 1)}"]
                if programs
                else []
            ),
        )
    console = Console()
    console.print(table)
    if programs:
        console.print("accuracy scores the answer the table computes from each model's program")
    console.print(f"report: {Path(report['config']['out']) / 'report.md'}")


def evaluate_command(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            help="Model directory (or 'embedded'); repeat for each. The first is the "
            "reference (teacher): speedups and ratios are against it.",
        ),
    ],
    data: Annotated[
        Path, typer.Option("--data", "-d", help="Dataset directory from `prepare`.")
    ],
    split: Annotated[
        str, typer.Option(help="Split to evaluate (<data>/<split>.jsonl).")
    ] = "test",
    out: Annotated[
        Path | None,
        typer.Option(help="Report directory; default <data>/../eval."),
    ] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Evaluate a seeded random subset of N examples.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size of the accuracy pass.")] = 8,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            help="Longest answer, in tokens; default: the longest reference answer + 8."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(help="Display name per --model, in the same order (repeat)."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Label (or --model value) of the undistilled student; every other model "
            "but the first then gets 'gap closed' = (model - baseline) / (first - baseline)."
        ),
    ] = None,
    latency_examples: Annotated[
        int, typer.Option(help="Examples timed one at a time (batch 1) per model.")
    ] = 16,
    history: Annotated[
        Path | None,
        typer.Option(
            help="training_history.jsonl to plot; default: found next to a --model dir."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16.")
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for the subset and bootstrap CIs.")] = 0,
    model_card: Annotated[
        bool,
        typer.Option(
            "--model-card/--no-model-card",
            help="Put the headline table into each evaluated student's README.md.",
        ),
    ] = True,
    target: Annotated[
        str,
        typer.Option(
            help="program: each model writes the pair's program and the table's result is "
            "scored (what the agent graph does); answer: answers read from the context; "
            "auto: program when the dataset carries program targets."
        ),
    ] = "auto",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Evaluate models side by side: accuracy per task/type, gap closed, cost and speed."""
    from distillation.evaluation import evaluate_models

    report = evaluate_models(
        model,
        data,
        split,
        labels=label,
        baseline=baseline,
        out_dir=out,
        max_examples=max_examples,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        latency_examples=latency_examples,
        history=history,
        device=device,
        dtype=dtype,
        seed=seed,
        progress=progress,
        update_model_cards=model_card,
        target=target,
    )
    _print_evaluate_summary(report)
