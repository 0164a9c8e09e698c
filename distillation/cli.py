"""Commands of the distillation stage: ``distillgraph distill``, ``evaluate`` and ``export``.

    distillgraph distill --config configs/default.yaml [--resume] [key=value ...]
    distillgraph evaluate --model TEACHER --model STUDENT --data DATASET_DIR [--out DIR]
    distillgraph export --model STUDENT --format gguf --quant q8_0 [--data DIR] [--push-to-hub ID]

Thin layers over `distillation.trainer.run_distillation`,
`distillation.evaluation.evaluate_models` and `distillation.gguf_export.export_gguf` (with its
round trip, model card and Hub push): the YAML plus ``key=value`` overrides are validated into
`DistillationConfig` (unknown keys refused by name), the work runs, and a short summary is
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
    """Add ``distill``, ``evaluate`` and ``export`` to the root CLI."""
    app.command("distill")(distill_command)
    app.command("evaluate")(evaluate_command)
    app.command("export")(export_command)


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


def export_command(
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Student directory (<output_dir>/student).")
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="gguf: one llama.cpp file with tokenizer and chat template, an Ollama "
            "Modelfile and a model card beside it. hf: the model directory as it is "
            "(only with --push-to-hub).",
        ),
    ] = "gguf",
    quant: Annotated[
        str, typer.Option(help="GGUF weights: f16 or q8_0 (8-bit blocks, about half the size).")
    ] = "q8_0",
    out: Annotated[
        Path | None,
        typer.Option(help="The .gguf file; default <model>-<quant>/<model>-<quant>.gguf beside "
                     "the model directory (Modelfile and README.md go into the same folder)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Dataset directory: the round trip compares greedy answers on its "
                     "--split (default: 4 built-in chats)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split of --data for the round trip.")] = "test",
    check_examples: Annotated[
        int, typer.Option(min=1, help="Prompts of --data the round trip compares.")
    ] = 30,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Longest greedy answer in the round trip.")
    ] = 48,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check",
                     help="Load the GGUF back with transformers and compare it with --model."),
    ] = True,
    push_to_hub: Annotated[
        str | None,
        typer.Option("--push-to-hub", metavar="REPO_ID",
                     help="Upload the export to this Hub model repo (token: HF_TOKEN)."),
    ] = None,
    private: Annotated[
        bool, typer.Option(help="Create the Hub repository private.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Export the student as GGUF (llama.cpp, Ollama) and optionally push it to the Hub."""
    from rich.console import Console
    from rich.table import Table

    from data_loaders.errors import InputError
    from distillation.gguf_export import check_model_dir, export_gguf
    from distillation.hub import check_repo_id, push_folder, resolve_token

    if fmt not in ("gguf", "hf"):
        raise InputError(f"--format {fmt}: unknown; choose gguf or hf")
    if push_to_hub is not None:  # refuse a bad id or a missing token before any work
        check_repo_id(push_to_hub)
        resolve_token()
    console = Console(stderr=True)
    table = Table(title=f"distillgraph export ({fmt})", show_header=False)
    if fmt == "hf":
        if push_to_hub is None:
            raise InputError("--format hf only uploads the model directory as it is; add "
                             "--push-to-hub REPO_ID (or use --format gguf)")
        model = check_model_dir(model)
        url = push_folder(model, push_to_hub, private=private)
        table.add_row("pushed", f"{model} → {url}")
        console.print(table)
        return
    from distillation.gguf_check import (
        DEFAULT_CHECK_MESSAGES,
        check_roundtrip,
        dataset_messages,
        write_gguf_card,
    )

    chats, source = DEFAULT_CHECK_MESSAGES, "built-in chats"
    if check and data is not None:  # a bad --data fails before the export, not after it
        chats, source = dataset_messages(data, split, check_examples)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars of the 4 loads; export has its own
    start = time.perf_counter()
    result = export_gguf(model, out, quant=quant, progress=not quiet)
    table.add_row("file", f"{result.path} ({result.size_bytes / 2**20:.1f} MiB)")
    table.add_row("tensors", ", ".join(f"{n} {t}" for t, n in sorted(result.tensor_types.items())))
    table.add_row("Modelfile", f"{result.modelfile}  (ollama create NAME -f {result.modelfile})")
    roundtrip = None
    if check:
        roundtrip = check_roundtrip(model, result.path, chats, max_new_tokens=max_new_tokens)
        roundtrip["source"] = source
        table.add_row("round trip", f"greedy answers equal on {roundtrip['answers_agree']}/"
                      f"{roundtrip['n']} {source}")
        table.add_row("tokenizer ids equal", str(roundtrip["token_ids_equal"]))
        table.add_row("chat template kept", str(roundtrip["chat_template_equal"]))
        table.add_row("max |logit diff|", f"{roundtrip['max_abs_logit_diff']:.3g}")
    card = write_gguf_card(result, Path(model), roundtrip)
    table.add_row("model card", str(card))
    if push_to_hub is not None:
        files = [result.path.name, result.modelfile.name, card.name, "model_card.json"]
        url = push_folder(result.path.parent, push_to_hub, files=files, private=private)
        table.add_row("pushed", url)
    table.add_row("time", f"{time.perf_counter() - start:.0f} s")
    console.print(table)

