"""``distillgraph ask``: one question to the agent graph from the command line.

Conversations persist in a SQLite file (``--memory``), so ``--thread ID`` continues one across
invocations: ``ask "What is the horsepower of ford pinto?" --thread t1`` then
``ask "and its weight?" --thread t1``. Heavy imports happen inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphs.config import DEFAULT_STUDENT_DIR, DEFAULT_TABLE_CONFIG, DEFAULT_TABLES, GraphConfig

MODEL_HELP = (
    f"Student model directory, or the URL of an OpenAI-compatible endpoint serving it "
    f"(http://host:port/v1). Default: {DEFAULT_STUDENT_DIR} if it exists (made by "
    "`make demo`), else the embedded SmolLM2-135M-Instruct teacher (not distilled on your data)."
)
DATA_HELP = (
    "Table file or SQL URL the dataset was built from (repeat for several). Default: the "
    f"config's tables, else {', '.join(DEFAULT_TABLES)} with {DEFAULT_TABLE_CONFIG}'s aliases."
)


def graph_config_from_options(
    config: Path | None,
    overrides: list[str] | None,
    data: list[str] | None,
    table_config: str | None,
) -> GraphConfig:
    """The graph settings of ``--config``, ``--set``, ``--data`` and ``--table-config``.

    ``--data`` replaces the config's tables; without either, the demo's tables are used
    (`graphs.graph.with_defaults`). Shared by ``ask`` and ``serve``.
    """
    from graphs.config import load_graph_config
    from graphs.graph import with_defaults  # loads LangGraph: not at import time

    cfg = load_graph_config(config, overrides)
    if data:
        cfg = cfg.model_copy(update={"tables": list(data)})
    else:
        cfg = with_defaults(cfg)
    if table_config:
        cfg = cfg.model_copy(update={"table_config": table_config})
    return cfg


def ask_command(
    question: Annotated[str, typer.Argument(help="Your question about the tables.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    data: Annotated[list[str] | None, typer.Option("--data", "-d", help=DATA_HELP)] = None,
    table_config: Annotated[
        str | None,
        typer.Option("--table-config", help="YAML with the `table:` section used at prepare time."),
    ] = None,
    thread: Annotated[
        str | None,
        typer.Option("--thread", "-t", help="Conversation id to continue (new if unset)."),
    ] = None,
    memory: Annotated[
        Path, typer.Option("--memory", help="SQLite file holding the conversations.")
    ] = Path("runs/memory.sqlite"),
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Graph YAML (see configs/graph.yaml).")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Config override key=value (repeatable).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print the route, context and check.")
    ] = False,
) -> None:
    """Ask the agent graph one question; the answer goes to stdout, details to stderr."""
    import time
    import uuid

    from rich.console import Console

    from graphs.graph import build_graph
    from graphs.memory import close_checkpointer, open_checkpointer
    from graphs.validation import verdict_label

    cfg = graph_config_from_options(config, overrides, data, table_config)
    saver = open_checkpointer(memory)
    try:
        graph = build_graph(model=model, config=cfg, checkpointer=saver)
        tid = thread or uuid.uuid4().hex[:12]
        t0 = time.perf_counter()
        state = graph.invoke(
            {"messages": [("user", question)]}, config={"configurable": {"thread_id": tid}}
        )
        elapsed = time.perf_counter() - t0
    finally:
        close_checkpointer(saver)
    typer.echo(state["answer"])
    err = Console(stderr=True)
    verdict = state.get("verdict") or {}
    supported = verdict_label(verdict)
    err.print(
        f"[dim]task {state.get('task') or '-'} ({state.get('route_source') or '-'}) · "
        f"answered by {state.get('answered_by')} · {supported} · {elapsed:.2f} s · "
        f"thread {tid}[/dim]",
        highlight=False,
    )
    if verbose:
        err.print("[bold]query[/bold]", state.get("query"), highlight=False)
        err.print("[bold]context[/bold]\n" + (state.get("context") or "(none)"), highlight=False)
        err.print("[bold]check[/bold]", verdict.get("reason", "-"), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``ask`` to the root CLI."""
    app.command("ask", help="Ask the agent graph a question about your tables.")(ask_command)
