"""Chainlit handlers of the distillgraph chat UI; start it with ``distillgraph chat``.

Only handlers live here: each one reads the session, calls into `app.runtime` (model, tables,
graphs), `app.turn` (one streamed graph turn), `app.uploads` or `app.render`, and hands the
result to Chainlit. Settings come from ``DISTILLGRAPH_*`` environment variables
(`app.config`); Chainlit's own options that the app depends on are set here in code, so no
``.chainlit/config.toml`` has to be committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `chainlit run .../app/app.py` puts this file's folder first on sys.path, where `import app`
# would find this file instead of the package. Point that entry at the package's parent
# (Chainlit removes sys.path[0] again once the file is loaded).
_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path[0] = str(_HERE.parent)

import asyncio  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

import chainlit as cl  # noqa: E402
from chainlit.config import config as cl_config  # noqa: E402
from chainlit.data import get_data_layer  # noqa: E402

from app import runtime, uploads  # noqa: E402
from app.auth import LOCAL_USER, authenticate, load_users  # noqa: E402
from app.config import ChatSettings  # noqa: E402
from app.data_layer import HistoryDataLayer  # noqa: E402
from app.render import TABLE_ICON, starter_questions, welcome_markdown  # noqa: E402
from app.turn import ASSISTANT, stream_turn  # noqa: E402

cl_config.ui.name = ASSISTANT
cl_config.ui.cot = "full"  # every graph step is visible
cl_config.features.auto_tag_thread = False  # tags are lists, which the SQLite schema stores as text
cl_config.features.spontaneous_file_upload.enabled = True
cl_config.features.spontaneous_file_upload.accept = uploads.ACCEPT
cl_config.features.spontaneous_file_upload.max_files = 3
cl_config.features.spontaneous_file_upload.max_size_mb = 200

SETTINGS = ChatSettings.from_env()
USERS = load_users()


@cl.data_layer
def history() -> HistoryDataLayer:
    """Chat history (threads, steps, elements, feedback) in SQLite or any SQLAlchemy database."""
    return HistoryDataLayer(SETTINGS.database_url)


if USERS:

    @cl.password_auth_callback
    async def password_login(username: str, password: str) -> cl.User | None:
        """Check a login against the configured hashes (PBKDF2 is slow by design: off the loop)."""
        if await asyncio.to_thread(authenticate, USERS, username, password):
            return cl.User(identifier=username, metadata={"provider": "password"})
        return None

else:

    @cl.header_auth_callback
    async def local_login(headers: Any) -> cl.User:
        """No users configured: everyone is the one local user, so history still works."""
        return cl.User(identifier=LOCAL_USER, metadata={"provider": "local"})


@cl.set_chat_profiles
async def profiles(
    user: cl.User | None = None, language: str | None = None
) -> list[cl.ChatProfile]:
    """One profile, whose description is the welcome text naming the loaded tables and model."""
    tables = await runtime.get_tables()
    text = welcome_markdown(tables, runtime.model_label(SETTINGS))
    return [cl.ChatProfile(name="Tables", markdown_description=text, icon=TABLE_ICON, default=True)]


@cl.set_starters
async def starters(user: cl.User | None = None, language: str | None = None) -> list[cl.Starter]:
    """One question of each kind (QA, summary, claim) about a real row of the first table."""
    tables = await runtime.get_tables()
    if not tables:
        return []
    return [cl.Starter(label=label, message=msg) for label, msg in starter_questions(tables[0])]


@cl.on_chat_start
async def start() -> None:
    """Start loading the model in the background; the user can type meanwhile."""
    cl.user_session.set("uploads", [])
    runtime.warm_up()


@cl.on_chat_resume
async def resume(thread: dict[str, Any]) -> None:
    """Reopened from history: the graph memory is keyed by this thread id; restore the uploads."""
    metadata = thread.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    cl.user_session.set("uploads", list(metadata.get("uploads") or []))
    runtime.warm_up()


@cl.on_message
async def message(msg: cl.Message) -> None:
    """Take any attached tables, then answer the text through the graph, streaming."""
    rt = await runtime.get_runtime()
    thread_id = cl.context.session.thread_id
    records: list[dict[str, str]] = list(cl.user_session.get("uploads") or [])
    taken = [t.name for t in rt.tables]
    files = [(e.path, e.name) for e in msg.elements or [] if getattr(e, "path", None)]
    if files:
        records, replies = await uploads.take_files(rt.settings, thread_id, files, records, taken)
        for reply in replies:
            await cl.Message(content=reply, author=ASSISTANT).send()
        cl.user_session.set("uploads", records)
        if data_layer := get_data_layer():  # persisted now, not only when the socket closes
            await data_layer.update_thread(thread_id, metadata={"uploads": records})
    if not msg.content.strip():
        return
    extra = await uploads.session_tables(records, taken)
    graph = await rt.graph_for(extra)
    await stream_turn(
        graph,
        thread_id,
        msg.content,
        model_label=rt.model_label,
        undistilled_tables={t.name for t in extra},
        tables=[*rt.tables, *extra],
    )
