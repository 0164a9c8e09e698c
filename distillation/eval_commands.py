"""The ``distillgraph evaluate`` command: a thin Typer wrapper over `evaluate_models`.

`register_evaluate(app)` adds the command; ``distillation/commands.py`` calls it. The body only
parses flags, calls `distillation.evaluation.evaluate_models` (which validates every input and
raises `InputError`, exit code 2) and prints a short summary with rich.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _print_summary(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from distillation.report import fmt_bytes, fmt_ci, fmt_count, fmt_num, fmt_pct

    table = Table(
        title=f"{report['dataset']['n_examples']} examples, split {report['dataset']['split']}"
    )
    for col in ("model", "role", "accuracy (95% CI)", "params", "size", "p50 latency", "speedup"):
        table.add_column(col)
    table.add_column("gap closed")
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
        )
    console = Console()
    console.print(table)
    console.print(f"report: {Path(report['config']['out']) / 'report.md'}")


def register_evaluate(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate")
    def evaluate(
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
        )
        _print_summary(report)
