"""Tables a user uploads in the chat: check, keep beside the thread, load once.

An upload is copied out of Chainlit's per-session folder (deleted when the session ends) into
``<chat dir>/uploads/<thread id>/``, so a resumed conversation still has it, and loaded with
`data_loaders.loaders.load_table`, the loader every other stage uses. A bad file raises the
loader's `InputError`, whose one-line message the chat shows as the reply.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from app.config import ChatSettings
from data_loaders.errors import InputError
from data_loaders.table import Table

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".parquet", ".pq")
# What the upload button offers (browsers match on MIME type or extension).
ACCEPT = {
    "text/csv": [".csv"],
    "text/tab-separated-values": [".tsv"],
    "text/plain": [".txt"],
    "application/json": [".json", ".jsonl", ".ndjson"],
    "application/octet-stream": [".parquet", ".pq"],
    "application/vnd.apache.parquet": [".parquet", ".pq"],
}
NOT_DISTILLED_NOTE = (
    "Answered from your uploaded table {table}: the student model was not distilled on it, "
    "so check the answer against the supporting rows."
)

_loaded: dict[str, Table] = {}


def added_message(table: Table) -> str:
    """The reply to a successful upload."""
    rows, cols = table.df.shape
    return (
        f"Added table **{table.name}** ({rows} rows × {cols} columns); ask about it now. "
        "The student model was not distilled on it, so check its answers against the "
        "supporting rows."
    )


def keep_upload(settings: ChatSettings, thread_id: str, path: str | Path, name: str) -> Path:
    """Copy an uploaded file to the thread's upload folder; return the kept path."""
    safe = Path(name).name or "upload"
    if Path(safe).suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(
            f"{safe}: not a table file; upload a CSV, JSON (records), JSON Lines or Parquet file"
        )
    dest = settings.uploads_dir / Path(thread_id).name / safe
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return dest


def _load(path: Path, taken: Sequence[str]) -> Table:
    from data_loaders.loaders import load_table

    table = load_table(path)
    base, n = table.name, 1
    while table.name in taken:  # an upload named like a served table gets its own name
        n += 1
        table.name = f"{base}_{n}"
    return table


async def load_upload(path: str | Path, taken: Sequence[str] = ()) -> Table:
    """Load a kept upload once per process (off the event loop); `InputError` for a bad file."""
    key = str(Path(path).resolve())
    if key not in _loaded:
        _loaded[key] = await asyncio.to_thread(_load, Path(key), list(taken))
    return _loaded[key]


async def add_upload(
    settings: ChatSettings, thread_id: str, path: str | Path, name: str, taken: Sequence[str]
) -> tuple[Table, dict[str, str]]:
    """Keep and load one uploaded file; return the table and its session record.

    Raises:
        InputError: Not a table file, or the loader refused it (the kept copy is removed).
    """
    kept = await asyncio.to_thread(keep_upload, settings, thread_id, path, name)
    try:
        table = await load_upload(kept, taken)
    except InputError:
        kept.unlink(missing_ok=True)
        raise
    return table, {"name": table.name, "path": str(kept)}


async def take_files(
    settings: ChatSettings,
    thread_id: str,
    files: Sequence[tuple[str, str]],
    records: Sequence[dict[str, str]],
    taken: Sequence[str],
) -> tuple[list[dict[str, str]], list[str]]:
    """Add every attached ``(path, name)`` file; return the new session records and the replies.

    A bad file does not stop the others: its reply is the loader's one-line message.
    """
    records = list(records)
    replies: list[str] = []
    for path, name in files:
        try:
            table, record = await add_upload(
                settings, thread_id, path, name, [*taken, *(r["name"] for r in records)]
            )
        except InputError as e:
            replies.append(f"Could not use {name}: {e}")
            continue
        records.append(record)
        replies.append(added_message(table))
    return records, replies


async def session_tables(records: Sequence[dict[str, str]], taken: Sequence[str]) -> list[Table]:
    """The tables of a session's upload records whose files still exist."""
    tables: list[Table] = []
    for rec in records:
        if Path(rec.get("path", "")).is_file():
            tables.append(await load_upload(rec["path"], [*taken, *(t.name for t in tables)]))
    return tables
