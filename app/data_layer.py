"""Chat history storage: Chainlit's SQLAlchemy data layer, its schema, and inline element storage.

Chainlit's `SQLAlchemyDataLayer` reads and writes five tables (users, threads, steps, elements,
feedbacks) but never creates them. `HistoryDataLayer` creates them (``CREATE TABLE IF NOT
EXISTS``) before its first query, so a fresh SQLite file (the default) or any SQLAlchemy database
works without a migration step. The column lists follow the dicts Chainlit 2.x writes
(`StepDict`, `ElementDict`, `Feedback`): a column Chainlit writes but the table lacks would make
its insert fail, and Chainlit only logs that, so the message would silently vanish from history.

Chainlit writes a step without waiting: `Step.send` and `Step.update` (and `Message`'s) each
start a task, and a node that finishes within milliseconds of starting issues the two writes
back to back. Chainlit's ``create_step`` first upserts the thread row, so the first write makes
more round trips than the second and can commit last: its stale copy (the placeholder title,
empty output) then overwrites the finished step. `HistoryDataLayer` therefore applies step
writes one at a time, in the order they were issued.

Chainlit persists elements (the supporting-rows table, uploaded files) only through a storage
client. `InlineStorageClient` keeps small elements inside the database as ``data:`` URLs, so a
resumed thread shows them again without S3/GCS/Azure; larger ones are kept for the live session
only, with a log line.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.storage_clients.base import BaseStorageClient
from chainlit.step import StepDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# Elements above this size are not embedded in the database (a resumed thread lists them
# without content). Supporting-row tables are a few KB; uploaded tables can be large.
MAX_INLINE_BYTES = 2_000_000

# Portable schema: TEXT for ids, JSON and lists works on SQLite and most SQL databases.
_GENERIC_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        "id" TEXT PRIMARY KEY,
        "identifier" TEXT NOT NULL UNIQUE,
        "metadata" TEXT NOT NULL,
        "createdAt" TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS threads (
        "id" TEXT PRIMARY KEY,
        "createdAt" TEXT,
        "name" TEXT,
        "userId" TEXT,
        "userIdentifier" TEXT,
        "tags" TEXT,
        "metadata" TEXT,
        FOREIGN KEY ("userId") REFERENCES users("id") ON DELETE CASCADE
    )""",
    """CREATE TABLE IF NOT EXISTS steps (
        "id" TEXT PRIMARY KEY,
        "name" TEXT NOT NULL,
        "type" TEXT NOT NULL,
        "threadId" TEXT NOT NULL,
        "parentId" TEXT,
        "streaming" BOOLEAN NOT NULL,
        "waitForAnswer" BOOLEAN,
        "isError" BOOLEAN,
        "metadata" TEXT,
        "tags" TEXT,
        "input" TEXT,
        "output" TEXT,
        "createdAt" TEXT,
        "command" TEXT,
        "modes" TEXT,
        "start" TEXT,
        "end" TEXT,
        "generation" TEXT,
        "showInput" TEXT,
        "language" TEXT,
        "indent" INTEGER,
        "defaultOpen" BOOLEAN,
        "autoCollapse" BOOLEAN,
        FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
    )""",
    """CREATE TABLE IF NOT EXISTS elements (
        "id" TEXT PRIMARY KEY,
        "threadId" TEXT,
        "type" TEXT,
        "url" TEXT,
        "chainlitKey" TEXT,
        "name" TEXT NOT NULL,
        "display" TEXT,
        "objectKey" TEXT,
        "size" TEXT,
        "page" INTEGER,
        "language" TEXT,
        "forId" TEXT,
        "mime" TEXT,
        "props" TEXT,
        "autoPlay" BOOLEAN,
        "playerConfig" TEXT,
        FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
    )""",
    """CREATE TABLE IF NOT EXISTS feedbacks (
        "id" TEXT PRIMARY KEY,
        "forId" TEXT NOT NULL,
        "threadId" TEXT,
        "value" INTEGER NOT NULL,
        "comment" TEXT,
        FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
    )""",
)


def _postgres_schema() -> tuple[str, ...]:
    """The documented Chainlit schema types for PostgreSQL (UUID, JSONB, TEXT[])."""
    swaps = {
        '"id" TEXT PRIMARY KEY': '"id" UUID PRIMARY KEY',
        '"userId" TEXT': '"userId" UUID',
        '"threadId" TEXT NOT NULL': '"threadId" UUID NOT NULL',
        '"threadId" TEXT,': '"threadId" UUID,',
        '"parentId" TEXT': '"parentId" UUID',
        '"forId" TEXT NOT NULL': '"forId" UUID NOT NULL',
        '"forId" TEXT': '"forId" UUID',
        '"metadata" TEXT': '"metadata" JSONB',
        '"generation" TEXT': '"generation" JSONB',
        '"modes" TEXT': '"modes" JSONB',
        '"playerConfig" TEXT': '"playerConfig" JSONB',
        '"tags" TEXT': '"tags" TEXT[]',
    }
    out = []
    for stmt in _GENERIC_SCHEMA:
        for old, new in swaps.items():
            stmt = stmt.replace(old, new)
        out.append(stmt)
    return tuple(out)


def schema_statements(dialect: str) -> tuple[str, ...]:
    """The ``CREATE TABLE IF NOT EXISTS`` statements for a SQLAlchemy dialect name."""
    return _postgres_schema() if dialect == "postgresql" else _GENERIC_SCHEMA


async def create_schema(engine: AsyncEngine) -> None:
    """Create Chainlit's history tables on `engine` if they are missing (idempotent)."""
    async with engine.begin() as conn:
        for stmt in schema_statements(engine.dialect.name):
            await conn.execute(text(stmt))


def connect_args_for(url: str) -> dict[str, Any]:
    """Driver arguments: SQLite waits for a locked file instead of failing at once."""
    return {"timeout": 30} if url.startswith("sqlite") else {}


class InlineStorageClient(BaseStorageClient):
    """Stores element bytes inside the history database as ``data:`` URLs (no object store)."""

    def __init__(self, max_bytes: int = MAX_INLINE_BYTES) -> None:
        self.max_bytes = max_bytes

    async def upload_file(
        self,
        object_key: str,
        data: bytes | str,
        mime: str = "application/octet-stream",
        overwrite: bool = True,
        content_disposition: str | None = None,
    ) -> dict[str, Any]:
        """Return the element as a ``data:`` URL; no object key, so Chainlit keeps the URL."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if len(raw) > self.max_bytes:
            log.info("element %s (%d bytes) kept for the live session only", object_key, len(raw))
            return {"url": None, "object_key": None}
        encoded = base64.b64encode(raw).decode("ascii")
        return {"url": f"data:{mime};base64,{encoded}", "object_key": None}

    async def delete_file(self, object_key: str) -> bool:
        """Nothing to delete: the bytes live in the element row itself."""
        return True

    async def get_read_url(self, object_key: str) -> str:
        """Never called: elements carry no object key."""
        raise KeyError(object_key)

    async def close(self) -> None:
        """No connection to close."""


class HistoryDataLayer(SQLAlchemyDataLayer):
    """`SQLAlchemyDataLayer` that creates its tables first and applies step writes in order."""

    def __init__(self, url: str) -> None:
        super().__init__(
            conninfo=url,
            connect_args=connect_args_for(url),
            storage_provider=InlineStorageClient(),
        )
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()
        # FIFO: each write task takes it in its first step, and tasks start in creation order.
        # (Writes Chainlit queues before a thread's first message, it replays one by one
        # itself, outside this lock; the app sends no step before then.)
        self._step_writes = asyncio.Lock()

    async def ensure_schema(self) -> None:
        """Create the tables once per process (cheap no-op afterwards)."""
        if self._schema_ready:
            return
        async with self._schema_lock:
            if not self._schema_ready:
                await create_schema(self.engine)
                self._schema_ready = True

    async def execute_sql(self, query: str, parameters: dict):
        """Run a query after making sure the schema exists."""
        await self.ensure_schema()
        return await super().execute_sql(query, parameters)

    async def create_step(self, step_dict: StepDict) -> None:
        """Upsert a step once every step write issued before it has been applied."""
        async with self._step_writes:
            await super().create_step(step_dict)

    async def update_step(self, step_dict: StepDict) -> None:
        """Upsert a step, in order with the other step writes."""
        async with self._step_writes:
            # Chainlit's update_step is its create_step; calling our create_step here would
            # wait on the lock this call holds.
            await super().create_step(step_dict)

    async def delete_step(self, step_id: str) -> None:
        """Delete a step, in order with the other step writes."""
        async with self._step_writes:
            await super().delete_step(step_id)
