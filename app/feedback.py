"""Export rated chat turns (thumbs up/down) as JSON Lines the datasets stage can take back.

Chainlit stores each rating in the ``feedbacks`` table against the answer message's step. The
app puts the turn's question, task, context and row ids into that message's metadata, so one
record per rating is rebuilt from the database alone. Field names follow
`data_loaders.schema.QAPair` where they mean the same thing (``id``, ``task``, ``question``,
``answer``, ``context``); ``rating`` is ``"up"`` or ``"down"``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import sqlite_url
from data_loaders.errors import InputError
from data_loaders.io import atomic_write_text

_RATED = """
SELECT f."id" AS feedback_id, f."value" AS value, f."comment" AS comment,
       s."id" AS step_id, s."threadId" AS thread_id, s."output" AS answer,
       s."metadata" AS metadata, s."createdAt" AS created_at, t."userIdentifier" AS user
FROM feedbacks f
JOIN steps s ON s."id" = f."forId"
LEFT JOIN threads t ON t."id" = s."threadId"
ORDER BY s."createdAt"
"""
# The question of a turn whose metadata lacks one: the last user message before the answer.
_QUESTION = """
SELECT "output" FROM steps
WHERE "threadId" = :thread_id AND "type" = 'user_message' AND "createdAt" <= :created_at
ORDER BY "createdAt" DESC LIMIT 1
"""


def resolve_db_url(db: str) -> str:
    """Accept a SQLAlchemy URL or a path to the SQLite history file (which must exist)."""
    url = db if "://" in db else sqlite_url(db)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise InputError(
            f"{parsed.database}: no chat history database there; pass --db with the chat's "
            "history.db or a SQLAlchemy URL"
        )
    return url


def _metadata(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def feedback_record(row: dict[str, Any], question: str | None) -> dict[str, Any]:
    """One JSONL record from a joined feedback/step row and the turn's question."""
    meta = _metadata(row.get("metadata")).get("distillgraph", {})
    verdict = meta.get("verdict") or {}
    return {
        "id": f"feedback-{row['feedback_id']}",
        "task": meta.get("task"),
        "question": meta.get("question") or question or "",
        "answer": meta.get("answer") or row.get("answer") or "",
        "context": meta.get("context", ""),
        "rating": "up" if int(row["value"]) > 0 else "down",
        "comment": row.get("comment") or "",
        "table": meta.get("table"),
        "row_ids": meta.get("row_ids", []),
        "answered_by": meta.get("answered_by"),
        "supported": verdict.get("supported"),
        "thread_id": row.get("thread_id"),
        "user": row.get("user"),
        "created_at": row.get("created_at"),
    }


async def collect_feedback(url: str) -> list[dict[str, Any]]:
    """All rated turns in the history database at `url`, oldest first."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            if not {"feedbacks", "steps", "threads"} <= tables:
                raise InputError(f"{url}: not a chat history database (no feedbacks/steps tables)")
            rows = [dict(r._mapping) for r in await conn.execute(text(_RATED))]
            records = []
            for row in rows:
                question = None
                if not _metadata(row.get("metadata")).get("distillgraph", {}).get("question"):
                    found = await conn.execute(
                        text(_QUESTION),
                        {"thread_id": row["thread_id"], "created_at": row["created_at"]},
                    )
                    question = found.scalar()
                records.append(feedback_record(row, question))
    finally:
        await engine.dispose()
    return records


def export_feedback(db: str, out: str | Path) -> tuple[int, int]:
    """Write rated turns to `out` atomically; return (thumbs up, thumbs down) counts."""
    records = asyncio.run(collect_feedback(resolve_db_url(db)))
    body = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    atomic_write_text(out, body)
    ups = sum(r["rating"] == "up" for r in records)
    return ups, len(records) - ups
