"""Process-wide state of the chat app: the model, the tables, the graph memory and the graphs.

Everything heavy happens once per process and off the event loop: `get_runtime` loads the chat
model and the configured tables in a worker thread the first time a chat starts, and opens one
checkpointer (`graphs.memory.open_checkpointer`, SQLite or Postgres: the graph's memory, keyed
by the Chainlit thread id, whose async calls run in worker threads) shared by every
conversation.
Graphs are compiled per set of tables and cached, so a user who uploads a table gets their own
graph while everyone else shares the default one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import ChatSettings
from data_loaders.table import Table
from graphs.memory import open_checkpointer

GraphFactory = Callable[[Sequence[Table]], Any]


@dataclass
class Runtime:
    """What every session of this process shares."""

    settings: ChatSettings
    chat_model: Any  # a LangChain chat model, loaded once
    model_label: str  # what the UI calls it: "student (dir)" or "embedded teacher (dir)"
    tables: list[Table]
    checkpointer: Any
    graph_factory: GraphFactory
    _graphs: dict[tuple[str, ...], Any] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def graph_for(self, extra: Sequence[Table] = ()) -> Any:
        """The compiled graph over the default tables plus `extra` (cached by content hash)."""
        tables = [*self.tables, *extra]
        key = tuple(f"{t.name}:{t.content_hash}" for t in tables)
        async with self._lock:
            if key not in self._graphs:
                # Compiling builds retrieval indexes over every row: keep it off the event loop.
                self._graphs[key] = await asyncio.to_thread(self.graph_factory, tables)
            return self._graphs[key]


_runtime: Runtime | None = None
_runtime_lock = asyncio.Lock()
_tables: list[Table] | None = None
_tables_lock = asyncio.Lock()


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests inject one with a fake model); ``None`` forgets it and tables."""
    global _runtime, _tables
    _runtime = runtime
    _tables = runtime.tables if runtime is not None else None


async def get_tables() -> list[Table]:
    """The configured tables, loaded once (the welcome screen needs them before the model)."""
    global _tables
    if _tables is None:
        async with _tables_lock:
            if _tables is None:
                _tables = await asyncio.to_thread(load_default_tables, ChatSettings.from_env())
    return _tables


_warm_up: asyncio.Task | None = None


def warm_up() -> None:
    """Start loading the runtime in the background (the chat stays usable meanwhile)."""
    global _warm_up
    if _runtime is None and (_warm_up is None or _warm_up.done()):
        # Keep a reference: the event loop holds tasks only weakly. A failure here surfaces
        # again when the first message awaits `get_runtime`.
        _warm_up = asyncio.get_running_loop().create_task(get_runtime())
        _warm_up.add_done_callback(lambda t: t.cancelled() or t.exception())


async def get_runtime() -> Runtime:
    """The process's runtime, built on first use from `ChatSettings.from_env`."""
    global _runtime
    if _runtime is not None:
        return _runtime
    async with _runtime_lock:
        if _runtime is None:
            _runtime = await build_runtime(ChatSettings.from_env())
    return _runtime


def load_default_tables(settings: ChatSettings) -> list[Table]:
    """Load the configured tables with the table config's aliases and units."""
    from data_loaders.config import TableConfig
    from data_loaders.config_loader import load_config
    from data_loaders.loaders import load_tables

    if not settings.tables:
        return []
    config = (
        load_config(TableConfig, settings.table_config, section="table")
        if settings.table_config
        else TableConfig()
    )
    return load_tables(list(settings.tables), config)


def model_label(settings: ChatSettings) -> str:
    """What the UI calls the answering model, known before it is loaded."""
    if settings.model is not None:
        return f"student model `{settings.model}`"
    return "embedded teacher SmolLM2-135M-Instruct (no distilled student found)"


def load_chat_model(settings: ChatSettings) -> tuple[Any, str]:
    """Load the student (or the embedded teacher) once; return it and its UI label."""
    from graphs.chat_model import build_chat_model
    from graphs.config import load_graph_config

    config = load_graph_config(settings.graph_config, list(settings.overrides))
    if settings.model is not None:
        model_dir = Path(settings.model)
    else:
        from distillation.embedded import embedded_teacher_dir

        model_dir = embedded_teacher_dir()
    student = config.student.model_copy(update={"path": str(model_dir), "base_url": None})
    return build_chat_model(student), model_label(settings)


def default_graph_factory(
    settings: ChatSettings, chat_model: Any, checkpointer: Any
) -> GraphFactory:
    """Compile graphs with `graphs.build_graph` around the shared model and memory."""

    def factory(tables: Sequence[Table]) -> Any:
        from graphs import build_graph

        return build_graph(
            model=chat_model,
            tables=list(tables),
            config=settings.graph_config,
            checkpointer=checkpointer,
            overrides=list(settings.overrides),
        )

    return factory


async def build_runtime(settings: ChatSettings) -> Runtime:
    """Load the model and tables (in worker threads) and open the memory."""
    settings.chat_dir.mkdir(parents=True, exist_ok=True)
    (chat_model, label), tables = await asyncio.gather(
        asyncio.to_thread(load_chat_model, settings), get_tables()
    )
    # One connection (SQLite file or Postgres) for all conversations; opening it blocks.
    checkpointer = await asyncio.to_thread(open_checkpointer, settings.memory)
    return Runtime(
        settings=settings,
        chat_model=chat_model,
        model_label=label,
        tables=tables,
        checkpointer=checkpointer,
        graph_factory=default_graph_factory(settings, chat_model, checkpointer),
    )
