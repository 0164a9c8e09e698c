"""Conversation memory: the LangGraph checkpointer that stores each thread's state.

`open_checkpointer(spec)` turns a setting into a saver:

* ``None`` or ``"memory"`` — in-memory (`InMemorySaver`), for tests and one-process use;
* a file path (``"runs/memory.sqlite"``) — SQLite, the default for the CLI; the saver serves
  both ``invoke`` and ``ainvoke`` (`ThreadedSqliteSaver`), so one file works for every caller,
  and a graph rebuilt on the same file continues its conversations;
* ``"postgresql://..."`` — Postgres through the optional ``langgraph-checkpoint-postgres``
  (``pip install 'distillgraph[postgres]'``), imported only when asked for, and likewise
  usable from sync and async callers;
* an existing saver — used as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from data_loaders.errors import InputError
from data_loaders.loaders import mask_url


class AsyncInThreads:
    """Async checkpointer methods that run the sync ones in a worker thread.

    LangGraph's `SqliteSaver` refuses async use and `AsyncSqliteSaver` refuses sync use from the
    event loop's thread, and `PostgresSaver` has no async methods; a graph served both ways (CLI
    ``invoke``, UI and server ``astream``) needs both. Both savers serialize their calls with
    their own lock and the calls are short, so a thread hop per call keeps the event loop free
    at little cost. Mixed in before the saver class.
    """

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async `get_tuple` (in a worker thread)."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async `list` (read in a worker thread, then yielded)."""
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async `put` (in a worker thread)."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async `put_writes` (in a worker thread)."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async `delete_thread` (in a worker thread)."""
        await asyncio.to_thread(self.delete_thread, thread_id)


class ThreadedSqliteSaver(AsyncInThreads, SqliteSaver):
    """`SqliteSaver` usable from sync and async callers (see `AsyncInThreads`)."""


def sqlite_saver(path: str | Path) -> ThreadedSqliteSaver:
    """A SQLite checkpointer on `path` (created with its parent directory if missing)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False is safe: SqliteSaver guards the connection with a lock.
        conn = sqlite3.connect(str(path), check_same_thread=False)
    except (OSError, sqlite3.Error) as e:
        raise InputError(
            f"{path}: cannot open the memory file ({e}); pass a writable path"
        ) from None
    saver = ThreadedSqliteSaver(conn)
    try:
        saver.setup()
    except sqlite3.DatabaseError as e:
        conn.close()
        raise InputError(
            f"{path}: not a usable SQLite memory file ({e}); pass a new file name"
        ) from None
    return saver


def postgres_saver(url: str) -> BaseCheckpointSaver:
    """A Postgres checkpointer (needs the ``postgres`` extra)."""
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg import Connection
        from psycopg.rows import dict_row
    except ImportError:
        raise InputError(
            "memory: a postgresql:// URL needs langgraph-checkpoint-postgres; "
            "install it with pip install 'distillgraph[postgres]'"
        ) from None
    class ThreadedPostgresSaver(AsyncInThreads, PostgresSaver):
        """`PostgresSaver` usable from sync and async callers (see `AsyncInThreads`)."""

    try:
        conn = Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    except Exception as e:  # psycopg.OperationalError: host down, bad password, no database
        raise InputError(f"memory: cannot connect to {mask_url(url)} ({e})") from None
    saver = ThreadedPostgresSaver(conn)
    saver.setup()
    return saver



def open_checkpointer(spec: Any = None) -> BaseCheckpointSaver:
    """Turn a memory setting into a checkpointer (see the module docstring)."""
    if isinstance(spec, BaseCheckpointSaver):
        return spec
    if spec is None or spec == "memory":
        return InMemorySaver()
    if isinstance(spec, str | Path):
        s = str(spec)
        if s.startswith(("postgresql://", "postgres://")):
            return postgres_saver(s)
        return sqlite_saver(s)
    raise InputError(f"memory: {spec!r} is not a file path, a postgresql:// URL or a saver")


def close_checkpointer(saver: Any) -> None:
    """Close the connection behind a saver opened by `open_checkpointer` (no-op otherwise)."""
    conn = getattr(saver, "conn", None)
    if conn is not None and hasattr(conn, "close"):
        with contextlib.suppress(Exception):
            conn.close()
