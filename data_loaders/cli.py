"""The ``distillgraph prepare`` command: tables in, a QA-pair dataset directory out.

    distillgraph prepare DATA... --out DIR [--config FILE] [--max-pairs N] [--seed S] [key=value...]

DATA are files (.csv .tsv .txt .json .jsonl .parquet) or SQLAlchemy URLs; arguments shaped like
``key=value`` (``split.test_fraction=0.2``) that are not existing files are config overrides.
Writes ``train/val/test.jsonl`` (+ ``test_templates.jsonl``) and ``manifest.json`` atomically,
shows a progress bar while generating and a one-screen summary at the end. Bad input raises
`InputError` (exit code 2) before anything is written.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from data_loaders.dataset import Dataset

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Separate data sources from ``key=value`` overrides (an existing file is always data)."""
    sources, overrides = [], []
    for a in args:
        if _OVERRIDE.match(a) and not Path(a).exists():
            overrides.append(a)
        else:
            sources.append(a)
    return sources, overrides


def prepare_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="DATA... [KEY=VALUE...]",
            help="Table files or SQLAlchemy URLs, then optional config overrides key=value.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to write.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (see configs/).")
    ] = None,
    max_pairs: Annotated[
        int | None, typer.Option("--max-pairs", help="Pair budget over all splits.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling/splitting seed.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar/summary.")] = False,
) -> None:
    """Turn tables into train/val/test QA pairs (entity-disjoint) with a manifest."""
    from data_loaders.config import PrepareConfig
    from data_loaders.config_loader import load_config
    from data_loaders.dataset import prepare
    from data_loaders.errors import InputError

    start = time.perf_counter()
    sources, overrides = split_args(inputs)
    if not sources:
        raise InputError("no input tables given; pass at least one file or SQLAlchemy URL")
    if max_pairs is not None:
        overrides.append(f"max_pairs={max_pairs}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    cfg = load_config(PrepareConfig, config, overrides)
    ds, path = prepare(sources, cfg, out, progress=not quiet)
    if not quiet:
        print_summary(ds, path, time.perf_counter() - start)


def print_summary(ds: Dataset, path: Path, seconds: float) -> None:
    """One screen: each table (rows, typed columns, the choices made), pairs per split and type.

    The choices (entity column or columns, row noun, columns left out, units read from names)
    are printed as a ``table:`` section with the reasons as comments, ready to paste.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    from data_loaders.choices import choices_yaml
    from data_loaders.schema import QUESTION_TYPES

    console = Console()
    for t in ds.tables:
        by_type: dict[str, list[str]] = {}
        for col, kind in t.column_types.items():
            if t.entity_parts and col == t.entity_column:
                continue  # made of the parts, which are listed
            by_type.setdefault(kind, []).append(col)
        typed = "; ".join(f"{k}: {', '.join(v)}" for k, v in by_type.items())
        if t.entity_parts:
            entity = f"entity columns {' + '.join(t.entity_parts)} (rows named like "
            entity += f"{t.entity_of(0)!r})"
        else:
            entity = f"entity column {t.entity_column or '(none: rows named row N)'}"
        console.print(
            f"[bold]{t.source}[/bold]  {len(t.df):,} rows, {len(t.column_types)} columns, "
            f"[cyan]{escape(entity)}[/cyan]"
        )
        console.print(f"  {typed}", highlight=False)
        console.print(
            "  choices made (paste under table: in the --config YAML to keep or change them):",
            highlight=False,
        )
        for line in choices_yaml(t).split("\n"):
            console.print(f"    {line}", markup=False, highlight=False, soft_wrap=True)
    grid = RichTable(title="QA pairs", title_justify="left")
    grid.add_column("type")
    for split in ds.splits:
        grid.add_column(split, justify="right")
    for qtype in QUESTION_TYPES:
        grid.add_row(qtype, *(str(sum(p.qtype == qtype for p in ps)) for ps in ds.splits.values()))
    grid.add_row("[bold]total[/bold]", *(f"[bold]{len(ps)}[/bold]" for ps in ds.splits.values()))
    console.print(grid)
    passed = ds.checked - len(ds.failed)
    console.print(f"recompute check: {passed}/{ds.checked} pairs passed (failures dropped)")
    files = ", ".join([f"{s}.jsonl" for s in ds.splits] + ["manifest.json"])
    console.print(f"wrote [green]{path}[/green] ({files}) in {seconds:.1f} s")


def register(app: typer.Typer) -> None:
    """Add ``prepare`` to the root CLI."""
    app.command("prepare")(prepare_command)
