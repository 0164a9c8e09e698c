"""History database: Chainlit's data layer on our schema, inline elements, feedback export."""

import asyncio
import json

import chainlit as cl
import chainlit.data as cl_data
import pandas as pd
import pytest
from chainlit.types import Feedback, Pagination, ThreadFilter
from chainlit.utils import utc_now

from app.config import sqlite_url
from app.data_layer import HistoryDataLayer, InlineStorageClient, schema_statements
from app.feedback import export_feedback, resolve_db_url
from data_loaders.errors import InputError
from data_loaders.io import read_jsonl

META = {
    "distillgraph": {
        "question": "What is the fuel economy of ford torino?",
        "answer": "17 mpg",
        "task": "qa",
        "context": "[row 4] name: ford torino | fuel economy: 17 mpg",
        "table": "cars",
        "row_ids": [4],
        "answered_by": "student",
        "verdict": {"supported": True},
    }
}


async def fill_history(url: str, recording_context) -> dict[str, str]:
    """One user, one thread: a question, a route step, a rated answer with a rows table."""
    recording_context(thread_id="t-1")
    layer = HistoryDataLayer(url)
    user = await layer.create_user(cl.User(identifier="alice"))
    await layer.update_thread("t-1", name="torino", user_id=user.id, metadata={"uploads": []})
    question = cl.Message(content="What is the fuel economy of ford torino?", type="user_message")
    question.created_at = utc_now()  # what send() sets
    await layer.create_step(question.to_dict())
    step = cl.Step(name="Route → qa", type="tool")
    step.output = "**qa**"
    await layer.create_step(step.to_dict())
    answer = cl.Message(content="17 mpg", metadata=META, created_at=utc_now())
    await layer.create_step(answer.to_dict())
    unrated = cl.Message(content="Summary of amc gremlin")  # no rating: not exported
    await layer.create_step(unrated.to_dict())
    rows = cl.Dataframe(data=pd.DataFrame({"row": [4], "name": ["ford torino"]}), name="rows")
    rows.for_id = answer.id
    rows.thread_id = "t-1"
    await layer.create_element(rows)
    await layer.upsert_feedback(Feedback(forId=answer.id, value=1, threadId="t-1", comment="right"))
    down = cl.Message(content="8", created_at=utc_now())  # a reply without our metadata
    await layer.create_step(down.to_dict())
    await layer.upsert_feedback(Feedback(forId=down.id, value=0, threadId="t-1"))
    await layer.close()
    return {"user": user.id, "answer": answer.id}


def test_schema_is_created_and_every_chainlit_field_persists(tmp_path, chainlit_context):
    url = sqlite_url(tmp_path / "history.db")

    async def scenario():
        ids = await fill_history(url, chainlit_context)
        layer = HistoryDataLayer(url)  # a fresh process after a restart
        threads = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=ids["user"]))
        thread = await layer.get_thread("t-1")
        author = await layer.get_thread_author("t-1")
        bob = await layer.create_user(cl.User(identifier="bob"))
        bobs = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=bob.id))
        await layer.close()
        return ids, threads, thread, author, bobs

    ids, threads, thread, author, bobs = asyncio.run(scenario())
    assert [t["id"] for t in threads.data] == ["t-1"]
    assert bobs.data == []  # with login on, a user's history lists only their own threads
    assert author == "alice"
    assert json.loads(thread["metadata"]) == {"uploads": []}
    steps = {s["id"]: s for s in thread["steps"]}
    assert len(steps) == 5  # no insert was lost to a missing column
    answer = steps[ids["answer"]]
    assert answer["output"] == "17 mpg"
    assert answer["feedback"]["value"] == 1 and answer["feedback"]["comment"] == "right"
    assert json.loads(answer["metadata"])["distillgraph"]["row_ids"] == [4]
    (element,) = thread["elements"]
    assert element["forId"] == ids["answer"]
    assert element["url"].startswith("data:")


def test_a_step_updated_right_after_it_is_sent_is_stored_finished(tmp_path, chainlit_context):
    """A node that ends within milliseconds of starting: the stored row is the finished step.

    `Step.send` and `Step.update` each persist in a task of their own; Chainlit's create_step
    upserts the thread first, so without ordering its stale copy often committed last.
    """
    db = tmp_path / "history.db"

    async def scenario():
        chainlit_context(thread_id="t-1")
        cl_data._data_layer = layer = HistoryDataLayer(sqlite_url(db))
        steps = []
        for i in range(8):  # what app.turn does for each graph node
            step = cl.Step(name="Route", type="tool")
            await step.send()
            step.name, step.output, step.end = f"Route to qa {i}", f"why {i}", utc_now()
            await step.update()
            steps.append(step)
        gone = cl.Step(name="Stopped", type="tool")
        await gone.send()
        await gone.remove()
        # the writes run in tasks Chainlit does not keep: wait for every other task
        await asyncio.gather(*asyncio.all_tasks() - {asyncio.current_task()})
        thread = await layer.get_thread("t-1")
        await layer.close()
        return steps, thread

    steps, thread = asyncio.run(scenario())
    stored = {s["id"]: s for s in thread["steps"]}
    assert set(stored) == {s.id for s in steps}  # the removed step stayed removed
    for step in steps:
        assert (stored[step.id]["name"], stored[step.id]["output"]) == (step.name, step.output)
        assert stored[step.id]["end"]


def test_postgres_schema_uses_native_types():
    stmts = "\n".join(schema_statements("postgresql"))
    assert '"id" UUID PRIMARY KEY' in stmts and '"metadata" JSONB' in stmts
    assert '"tags" TEXT[]' in stmts
    assert all("IF NOT EXISTS" in s for s in schema_statements("sqlite"))


def test_inline_storage_skips_large_elements():
    client = InlineStorageClient(max_bytes=4)
    small = asyncio.run(client.upload_file("k", b"abc", mime="text/plain"))
    big = asyncio.run(client.upload_file("k", b"abcdef"))
    assert small["url"] == "data:text/plain;base64,YWJj" and small["object_key"] is None
    assert big["url"] is None


def test_feedback_export_writes_rated_turns(tmp_path, chainlit_context):
    db = tmp_path / "history.db"
    asyncio.run(fill_history(sqlite_url(db), chainlit_context))
    out = tmp_path / "rated.jsonl"
    ups, downs = export_feedback(str(db), out)
    assert (ups, downs) == (1, 1)
    up, down = read_jsonl(out)
    assert up["question"] == "What is the fuel economy of ford torino?"
    assert up["answer"] == "17 mpg" and up["task"] == "qa" and up["rating"] == "up"
    assert up["context"].startswith("[row 4]") and up["row_ids"] == [4] and up["comment"] == "right"
    assert up["user"] == "alice" and up["thread_id"] == "t-1"
    # without our metadata the question is the thread's last user message before the reply
    assert down["question"] == "What is the fuel economy of ford torino?"
    assert down["answer"] == "8" and down["rating"] == "down" and down["task"] is None
    assert not list(tmp_path.glob(".rated.jsonl.*"))  # atomic: no temp file left


def test_feedback_export_cli(tmp_path, capsys, chainlit_context):
    from app.cli import main

    db = tmp_path / "history.db"
    asyncio.run(fill_history(sqlite_url(db), chainlit_context))
    out = tmp_path / "rated.jsonl"
    assert main(["feedback", "export", "--db", str(db), "--out", str(out)]) == 0
    assert len(read_jsonl(out)) == 2
    assert main(["feedback", "export", "--db", str(tmp_path / "none.db"), "--out", str(out)]) == 2
    assert "no chat history database" in capsys.readouterr().err


def test_resolve_db_url_passes_urls_through(tmp_path):
    assert resolve_db_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(InputError):
        resolve_db_url(str(tmp_path / "missing.db"))
