"""The Chainlit handlers against the real graph with a fake chat model and a recording UI."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import chainlit as cl
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from app import runtime
from app.config import ChatSettings, sqlite_url
from app.runtime import Runtime, default_graph_factory, load_default_tables
from graphs.memory import close_checkpointer, open_checkpointer

REPO = Path(__file__).resolve().parents[2]
CARS = REPO / "examples" / "data" / "cars.csv"
CARS_CONFIG = REPO / "configs" / "prepare_cars.yaml"
QA = "What is the fuel economy of chevrolet chevelle malibu?"


class SlowFake(GenericFakeChatModel):
    """A fake model that takes `delay` seconds per reply, like a real one on CPU."""

    delay: float = 0.0

    def _stream(self, *args, **kwargs):
        time.sleep(self.delay)  # the graph's nodes run in worker threads: this blocks only one
        yield from super()._stream(*args, **kwargs)


def fake_model(text: str = "The fuel economy is 18 mpg.", delay: float = 0.0) -> SlowFake:
    return SlowFake(messages=itertools.cycle([AIMessage(content=text)]), delay=delay)


def make_settings(tmp_path: Path) -> ChatSettings:
    return ChatSettings(
        model=None,
        tables=(str(CARS),),
        graph_config=None,
        table_config=str(CARS_CONFIG) if CARS_CONFIG.is_file() else None,
        chat_dir=tmp_path / "chat",
        database_url=sqlite_url(tmp_path / "chat" / "history.db"),
    )


def install_runtime(settings: ChatSettings, model, checkpointer, tables=None) -> Runtime:
    tables = tables if tables is not None else load_default_tables(settings)
    rt = Runtime(
        settings=settings,
        chat_model=model,
        model_label="fake student",
        tables=tables,
        checkpointer=checkpointer,
        graph_factory=default_graph_factory(settings, model, checkpointer),
    )
    runtime.set_runtime(rt)
    return rt


@pytest.fixture(scope="module")
def cars_tables(tmp_path_factory):
    return load_default_tables(make_settings(tmp_path_factory.mktemp("cars")))


@pytest.fixture
def handlers(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLGRAPH_CHAT_DIR", str(tmp_path / "chat"))
    import app.app as module

    yield module
    runtime.set_runtime(None)


def steps_named(emitter, prefix: str) -> list[dict]:
    return [d for d in emitter.of("update_step") if d.get("name", "").startswith(prefix)]


def final_reply(emitter) -> dict:
    replies = [d for d in emitter.of("send_step") if d.get("type") == "assistant_message"]
    return replies[-1]


def test_answer_streams_tokens_and_shows_every_step(
    handlers, tmp_path, chainlit_context, cars_tables
):
    install_runtime(make_settings(tmp_path), fake_model(), InMemorySaver(), cars_tables)

    async def turn():
        ctx = chainlit_context("t-qa")
        await handlers.start()
        await handlers.message(cl.Message(content=QA, type="user_message"))
        return ctx.emitter

    emitter = asyncio.run(turn())
    # tokens streamed into the reply before it was finalized
    (start,) = emitter.of("stream_start")
    tokens = [e for e in emitter.of("send_token") if e["id"] == start["id"]]
    assert start["type"] == "assistant_message" and len(tokens) >= 3
    reply = final_reply(emitter)
    assert reply["id"] == start["id"] and "18 mpg" in reply["output"]
    # one step per node, opened when the node starts and filled when it ends
    opened = [d["name"] for d in emitter.of("send_step") if d.get("type") == "tool"]
    assert opened == ["Read the question", "Route", "Answer - question answering",
                      "Check against the table"]
    (route,) = steps_named(emitter, "Route")
    assert route["name"] == "Route to qa" and "question about values" in route["output"]
    (answer,) = steps_named(emitter, "Answer")
    assert "supporting rows of table **cars**" in answer["output"]
    assert "| chevrolet chevelle malibu |" in answer["output"]
    assert "student model (fake student)" in answer["output"]
    (check,) = steps_named(emitter, "Check")
    assert "Supported by the table" in check["output"] or "Not supported" in check["output"]
    assert all(d["start"] and d["end"] for d in emitter.of("update_step") if d["type"] == "tool")
    # the rows also come as a table element under the reply, and the turn in its metadata
    (element,) = emitter.of("send_element")
    assert element["type"] == "dataframe" and element["forId"] == reply["id"]
    meta = reply["metadata"]["distillgraph"]
    assert meta["question"] == QA and meta["task"] == "qa" and meta["table"] == "cars"
    assert meta["row_ids"] and meta["context"].startswith("[row ")


@pytest.mark.parametrize(
    ("question", "route", "title"),
    [
        ("Summarize chevrolet chevelle malibu.", "summarizer", "Answer - summary"),
        ("Is it true that chevrolet chevelle malibu has 8 cylinders?", "validator",
         "Answer - claim check"),
    ],
)
def test_summary_and_claim_routes(handlers, tmp_path, chainlit_context, cars_tables, question,
                                  route, title):
    install_runtime(make_settings(tmp_path), fake_model("It has 8 cylinders."), InMemorySaver(),
                    cars_tables)

    async def turn():
        ctx = chainlit_context(f"t-{route}")
        await handlers.message(cl.Message(content=question, type="user_message"))
        return ctx.emitter

    emitter = asyncio.run(turn())
    assert steps_named(emitter, "Route")[0]["name"] == f"Route to {route}"
    assert steps_named(emitter, title)
    reply = final_reply(emitter)
    assert reply["output"]
    assert reply["metadata"]["distillgraph"]["task"] == {"summarizer": "summarize"}.get(
        route, "validate"
    )


def test_starters_and_welcome_use_the_loaded_table(handlers, tmp_path, cars_tables):
    install_runtime(make_settings(tmp_path), fake_model(), InMemorySaver(), cars_tables)
    starters = asyncio.run(handlers.starters())
    assert [s.label for s in starters] == ["Ask a question", "Summarize a row", "Check a claim"]
    assert all("chevrolet chevelle malibu" in s.message for s in starters)
    (profile,) = asyncio.run(handlers.profiles())
    assert "**cars** (" in profile.markdown_description


def test_uploaded_table_is_answered_with_a_note(
    handlers, tmp_path, chainlit_context, cars_tables
):
    settings = make_settings(tmp_path)
    install_runtime(settings, fake_model("rex has 4 legs."), InMemorySaver(), cars_tables)
    pets = tmp_path / "pets.csv"
    pets.write_text("name,legs,weight_kg\nrex,4,30\ntweety,2,0.1\nnemo,0,0.01\n")

    async def turn():
        ctx = chainlit_context("t-up")
        upload = cl.File(name="pets.csv", path=str(pets), mime="text/csv")
        await handlers.message(
            cl.Message(content="What is the legs of rex?", type="user_message", elements=[upload])
        )
        return ctx.emitter, cl.user_session.get("uploads")

    emitter, records = asyncio.run(turn())
    outputs = [d["output"] for d in emitter.of("send_step") if d["type"] == "assistant_message"]
    assert outputs[0].startswith("Added table **pets** (3 rows × 3 columns)")
    assert "not distilled" in outputs[-1] and "pets" in outputs[-1]
    assert final_reply(emitter)["metadata"]["distillgraph"]["table"] == "pets"
    # kept beside the thread, so a resumed chat still has it
    assert records == [{"name": "pets", "path": str(settings.uploads_dir / "t-up" / "pets.csv")}]
    assert Path(records[0]["path"]).is_file()


@pytest.mark.parametrize(("name", "body", "says"), [
    ("photo.png", b"\x89PNG", "not a table file"),
    ("empty.csv", b"", "empty.csv"),
])
def test_bad_upload_gets_the_input_error_as_reply(
    handlers, tmp_path, chainlit_context, cars_tables, name, body, says
):
    install_runtime(make_settings(tmp_path), fake_model(), InMemorySaver(), cars_tables)
    bad = tmp_path / name
    bad.write_bytes(body)

    async def turn():
        ctx = chainlit_context("t-bad")
        upload = cl.File(name=name, path=str(bad))
        await handlers.message(cl.Message(content="", type="user_message", elements=[upload]))
        return ctx.emitter

    emitter = asyncio.run(turn())
    (reply,) = [d["output"] for d in emitter.of("send_step") if d["type"] == "assistant_message"]
    assert reply.startswith(f"Could not use {name}:") and says in reply
    assert not emitter.of("stream_start")  # no question, no graph run


def test_memory_survives_a_restart_and_resume(
    handlers, tmp_path, chainlit_context, cars_tables
):
    settings = make_settings(tmp_path)
    memory = tmp_path / "chat" / "memory.sqlite"

    async def first_process():
        saver = await asyncio.to_thread(open_checkpointer, memory)
        install_runtime(settings, fake_model(), saver, cars_tables)
        chainlit_context("t-mem")
        await handlers.message(cl.Message(content=QA, type="user_message"))
        close_checkpointer(runtime._runtime.checkpointer)

    async def second_process():
        saver = await asyncio.to_thread(open_checkpointer, memory)
        install_runtime(settings, fake_model("130 hp"), saver, cars_tables)
        ctx = chainlit_context("t-mem")
        await handlers.resume({"id": "t-mem", "metadata": '{"uploads": []}'})
        await handlers.message(cl.Message(content="and its horsepower?", type="user_message"))
        close_checkpointer(runtime._runtime.checkpointer)
        return ctx.emitter

    asyncio.run(first_process())
    runtime.set_runtime(None)
    emitter = asyncio.run(second_process())
    (read,) = steps_named(emitter, "Read the question")
    # the follow-up was resolved against the entity remembered from before the restart
    assert "horsepower of chevrolet chevelle malibu" in read["output"]


def test_two_conversations_do_not_wait_on_each_other(handlers, tmp_path, chainlit_context,
                                                     cars_tables):
    delay = 0.6
    install_runtime(make_settings(tmp_path), fake_model(delay=delay), InMemorySaver(), cars_tables)
    lags: list[float] = []

    async def conversation(thread_id: str):
        chainlit_context(thread_id)
        await handlers.message(cl.Message(content=QA, type="user_message"))

    async def ticker(stop: asyncio.Event):
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t0 - 0.01)

    async def main():
        await runtime._runtime.graph_for()  # compile once, outside the timing
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        t0 = time.perf_counter()
        await asyncio.gather(
            asyncio.create_task(conversation("t-a")), asyncio.create_task(conversation("t-b"))
        )
        elapsed = time.perf_counter() - t0
        stop.set()
        await tick
        return elapsed

    elapsed = asyncio.run(main())
    assert elapsed < 2 * delay  # the two model calls overlapped
    assert max(lags) < delay / 2  # the event loop never waited on the model


class BrokenModel(SlowFake):
    def _stream(self, *args, **kwargs):
        raise RuntimeError("model crashed")
        yield  # pragma: no cover


def test_a_failing_model_leaves_no_step_running(handlers, tmp_path, chainlit_context, cars_tables):
    install_runtime(make_settings(tmp_path), BrokenModel(messages=iter([])), InMemorySaver(),
                    cars_tables)

    async def turn():
        ctx = chainlit_context("t-err")
        with pytest.raises(RuntimeError, match="model crashed"):
            await handlers.message(cl.Message(content=QA, type="user_message"))
        return ctx.emitter

    emitter = asyncio.run(turn())
    opened = {d["id"] for d in emitter.of("send_step") if d.get("type") == "tool"}
    closed = {d["id"]: d for d in emitter.of("update_step") if d.get("type") == "tool"}
    assert opened == set(closed)  # every step that started was closed
    failed = [d for d in closed.values() if d["isError"]]
    assert failed and "model crashed" in failed[0]["output"]


def test_a_group_answer_comes_with_a_chart(handlers, tmp_path, chainlit_context, cars_tables):
    install_runtime(make_settings(tmp_path), fake_model("It is 122.47 hp."), InMemorySaver(),
                    cars_tables)

    async def turn():
        ctx = chainlit_context("t-chart")
        await handlers.start()
        await handlers.message(cl.Message(
            content="What is the average horsepower of cars with origin USA?",
            type="user_message"))
        return ctx.emitter

    emitter = asyncio.run(turn())
    reply = final_reply(emitter)
    kinds = {e["type"]: e for e in emitter.of("send_element")}
    assert set(kinds) == {"dataframe", "image"}  # the rows and the chart
    chart = kinds["image"]
    assert chart["name"] == "chart" and chart["display"] == "inline"
    assert chart["mime"] == "image/png"
    assert chart["forId"] == reply["id"]
