"""Chat history in Postgres (what compose.yaml wires): threads, steps and the chart persist."""

from __future__ import annotations

import asyncio
import uuid

import chainlit as cl
import pytest
from chainlit.types import Pagination, ThreadFilter
from chainlit.utils import utc_now
from matplotlib.figure import Figure

from app.data_layer import HistoryDataLayer
from app.turn import chart_image
from tests.pg import postgres_server

DRIVER = "postgresql+asyncpg"  # the URL compose.yaml gives DISTILLGRAPH_DATABASE_URL


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("asyncpg")
    yield from postgres_server()


def test_history_with_a_chart_persists_in_postgres(pg_url, chainlit_context):
    url = pg_url.replace("postgresql", DRIVER, 1)
    thread_id = str(uuid.uuid4())

    async def scenario():
        chainlit_context(thread_id=thread_id)
        layer = HistoryDataLayer(url)
        user = await layer.create_user(cl.User(identifier="alice"))
        await layer.update_thread(thread_id, name="usa", user_id=user.id,
                                  metadata={"uploads": []})
        question = cl.Message(content="mean horsepower of cars from USA?", type="user_message")
        question.created_at = utc_now()
        await layer.create_step(question.to_dict())
        answer = cl.Message(content="122.47 hp", created_at=utc_now())
        await layer.create_step(answer.to_dict())
        fig = Figure()
        fig.add_subplot().barh([0, 1], [122.47, 81.66])
        chart = chart_image(fig)  # as the app makes it
        chart.for_id, chart.thread_id = answer.id, thread_id
        await layer.create_element(chart)
        await layer.close()
        fresh = HistoryDataLayer(url)  # a restarted app
        threads = await fresh.list_threads(Pagination(first=10), ThreadFilter(userId=user.id))
        thread = await fresh.get_thread(thread_id)
        await fresh.close()
        return answer.id, threads, thread

    answer_id, threads, thread = asyncio.run(scenario())
    assert [t["id"] for t in threads.data] == [thread_id]
    assert {s["output"] for s in thread["steps"]} >= {"122.47 hp"}
    (element,) = thread["elements"]
    assert element["type"] == "image" and element["forId"] == answer_id
    assert element["url"].startswith("data:image/png;base64,")
