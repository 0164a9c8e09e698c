"""Graph memory in Postgres (what compose.yaml wires): sync and async turns share one thread."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from data_loaders.errors import InputError
from graphs import build_graph
from graphs.memory import close_checkpointer, open_checkpointer
from tests.pg import postgres_server


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("langgraph.checkpoint.postgres")
    yield from postgres_server()


def test_postgres_memory_serves_invoke_and_astream_and_outlives_the_graph(cars, pg_url):
    cfg = {"configurable": {"thread_id": "pg"}}
    g1 = build_graph(FakeListChatModel(responses=["130 hp"]), [cars], checkpointer=pg_url)
    g1.invoke({"messages": [("user", "What is the horsepower of chevrolet chevelle malibu?")]},
              cfg)
    close_checkpointer(g1.checkpointer)
    g2 = build_graph(FakeListChatModel(responses=["3504 lbs"]), [cars], checkpointer=pg_url)

    async def follow_up() -> dict:  # the chat UI and the server stream the graph: async calls
        state: dict = {}
        async for update in g2.astream({"messages": [("user", "and its weight?")]}, cfg,
                                       stream_mode="values"):
            state = update
        return state

    s = asyncio.run(follow_up())
    assert s["answer"] == "3504 lbs" and "chevrolet chevelle malibu" in s["query"]
    assert [m.type for m in s["messages"]] == ["human", "ai", "human", "ai"]
    assert g2.get_state(cfg).values["table_program"]["op"] == "lookup"
    close_checkpointer(g2.checkpointer)


def test_unreachable_postgres_is_one_line_without_the_password():
    pytest.importorskip("langgraph.checkpoint.postgres")
    with pytest.raises(InputError, match=r"cannot connect to postgresql://u:\*\*\*@127\.0\.0\.1"):
        open_checkpointer("postgresql://u:hunter2@127.0.0.1:1/memory?connect_timeout=2")
