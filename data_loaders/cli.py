"""The ``distillgraph prepare`` and ``synth`` commands: tables in, QA-pair dataset directories out.

    distillgraph prepare DATA... --out DIR [--config FILE] [--max-pairs N] [--seed S] [key=value...]
    distillgraph synth --data DIR --base-url URL --model NAME [--out DIR] [--dry-run] ...

DATA are files (.csv .tsv .txt .json .jsonl .parquet) or SQLAlchemy URLs; arguments shaped like
``key=value`` (``split.test_fraction=0.2``) that are not existing files are config overrides.
Writes ``train/val/test.jsonl`` (+ ``test_templates.jsonl``) and ``manifest.json`` atomically,
shows a progress bar while generating and a one-screen summary at the end. Bad input raises
`InputError` (exit code 2) before anything is written. ``synth`` (`data_loaders.synth`) adds
teacher-written requests the table confirms to a dataset's train split and writes a new dataset.
"""

from __future__ import annotations

import os
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


def synth_command(
    data: Annotated[Path, typer.Option("--data", help="Dataset directory from `prepare`.")],
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="OpenAI-compatible endpoint, e.g. "
                     "http://localhost:8000/v1."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name at the endpoint.")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help="Environment variable holding the API key (none: no "
                     "key, for local servers)."),
    ] = None,
    paraphrases: Annotated[
        int | None, typer.Option("--paraphrases", help="Paraphrases per train pair (default 3).")
    ] = None,
    new_requests: Annotated[
        int | None,
        typer.Option("--new-requests", help="New requests with programs per train pair "
                     "(default 1)."),
    ] = None,
    summaries: Annotated[
        int | None,
        typer.Option("--summaries", help="Summaries per train summary pair, checked number by "
                     "number against its facts (default 0)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Dataset directory to write (default "
                                  "DATA_synth).")
    ] = None,
    max_concurrency: Annotated[
        int | None, typer.Option("--max-concurrency", help="Requests in flight (default 4).")
    ] = None,
    max_pairs: Annotated[
        int | None, typer.Option("--max-pairs", help="Use only the first N train pairs.")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Reply cache (default: synth_cache beside "
                                  "the output).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML with a synth: section (prices, "
                                  "retries; see configs/synth.yaml).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the calls, tokens and cost; ask nothing.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar/summary.")] = False,
) -> None:
    """Ask an API teacher for natural requests; keep those the table confirms (new dataset)."""
    from data_loaders.config import SynthConfig
    from data_loaders.config_loader import deep_merge, read_yaml, validate_config
    from data_loaders.synth import client_for, default_out, estimate, make_plan, synthesize

    flags = {"base_url": base_url, "model": model, "api_key_env": api_key_env,
             "paraphrases": paraphrases, "new_requests": new_requests, "summaries": summaries,
             "max_concurrency": max_concurrency, "max_source_pairs": max_pairs,
             "cache_dir": str(cache_dir) if cache_dir else None}
    section = (read_yaml(config).get("synth") or {}) if config else {}
    given = {k: v for k, v in flags.items() if v is not None}
    where = f"{config} (synth:) and options" if config else "options"
    cfg = validate_config(SynthConfig, deep_merge(section, given), where)
    out = out or default_out(data)
    plan = make_plan(data, cfg)
    client = client_for(cfg, out)
    if dry_run:
        print_estimate(estimate(plan, client), cfg)
        if cfg.api_key_env and not os.environ.get(cfg.api_key_env):
            print(f"note: ${cfg.api_key_env} is not set; a real run will refuse to start")
        return
    client.api_key()  # a missing key stops the run before any work
    result = synthesize(plan, client, out, progress=not quiet)
    if not quiet:
        print_synth_summary(result.manifest["synth"], result.out_dir)


def print_estimate(est: dict, cfg: object) -> None:
    """The dry run's screen: calls to make, cached ones, estimated tokens and cost."""
    prices = cfg.prices  # type: ignore[attr-defined]
    print(f"{est['source_pairs']} train pairs -> {est['calls']} teacher calls "
          f"({est['cached']} already cached, {est['to_ask']} to ask)")
    print(f"estimated tokens: {est['estimated_input_tokens']:,} in, "
          f"{est['estimated_output_tokens']:,} out (prompt characters / 4; replies from the "
          "request lengths)")
    print(f"estimated cost: {est['estimated_cost']:.4f} {est['currency']} at "
          f"{prices.input_per_million:g}/{prices.output_per_million:g} per million tokens in/out "
          "(prices from the config's synth.prices)")


def print_synth_summary(record: dict, out: Path) -> None:
    """Kept and rejected requests by reason, calls, tokens and cost, where the dataset went."""
    from rich.console import Console

    console = Console()
    skipped = ", ".join(f"{r} {n}" for r, n in record["skipped_source_pairs"].items() if n)
    console.print(f"asked about {record['source_pairs']} train pairs"
                  + (f" (not asked: {skipped})" if skipped else ""), highlight=False)
    for kind, label in (("paraphrase", "paraphrases"), ("new", "new requests"),
                        ("summary", "summaries")):
        t = record[kind]
        if not t["calls"]:
            continue
        why = ", ".join(f"{r} {n}" for r, n in t["rejected"].items()) or "none"
        bad = ", ".join(f"{r} {n}" for r, n in t["bad_replies"].items())
        console.print(f"{label}: {t['kept']} kept of {t['received']} received "
                      f"(rejected: {why}){f'; unusable replies: {bad}' if bad else ''}",
                      highlight=False, markup=False, soft_wrap=True)
    u = record["usage"]
    console.print(
        f"teacher: {u['calls']} calls made, {u['cached_calls']} from the cache, "
        f"{u['retries']} retries; tokens {u['input_tokens']:,} in / {u['output_tokens']:,} out; "
        f"cost {u['cost']:.4f} {u['currency']}"
        + (f" ({u['unreported']} replies without token counts)" if u["unreported"] else ""),
        highlight=False, markup=False, soft_wrap=True,
    )
    pairs = record["pairs"]
    console.print(f"train pairs: {sum(pairs.values())} "
                  f"({', '.join(f'{k} {v}' for k, v in pairs.items())})", highlight=False)
    console.print(f"wrote [green]{out}[/green] (train.jsonl, val/test copied, manifest.json)")


def register(app: typer.Typer) -> None:
    """Add ``prepare`` and ``synth`` to the root CLI."""
    app.command("prepare")(prepare_command)
    app.command("synth")(synth_command)
