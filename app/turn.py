"""One chat turn: run the graph asynchronously and mirror it in Chainlit as it happens.

`stream_turn` consumes ``graph.astream`` with LangGraph's ``tasks`` and ``messages`` stream
modes: a node's start opens a `cl.Step` (so its duration is real), its result fills the step
(`app.render.step_view`), and the tokens of the answering node stream into the reply
`cl.Message`. The finished reply carries the supporting rows as a `cl.Dataframe`, a bar chart
(`cl.Pyplot`, `app.charts`) when the table computed the answer over groups or ranked rows, and
the turn's question, task, context and check in its metadata, where `app.feedback` finds them
when a user rates it. Nothing here blocks the event loop: the graph's model calls stream from
their own threads, and the chart is drawn in one, so other conversations keep going while one
waits on the model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import chainlit as cl
from chainlit.utils import utc_now
from langchain_core.messages import HumanMessage
from matplotlib.figure import Figure

from app.charts import chart_for
from app.render import ANSWER_NODES, TASK_OF_ROUTE, parse_context, step_view
from app.uploads import NOT_DISTILLED_NOTE
from data_loaders.table import Table

log = logging.getLogger(__name__)

ASSISTANT = "distillgraph"
CHART_NAME = "chart"


@dataclass
class TurnResult:
    """What one turn produced (also returned to tests)."""

    message: cl.Message
    state: dict[str, Any] = field(default_factory=dict)
    steps: list[cl.Step] = field(default_factory=list)
    streamed_tokens: int = 0


def graph_config(thread_id: str) -> dict[str, Any]:
    """The LangGraph run config: the checkpointer keys memory by the Chainlit thread id."""
    return {"configurable": {"thread_id": thread_id}}


def _token_text(chunk: Any) -> str:
    content = getattr(chunk, "content", "")
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)


def _turn_metadata(question: str, state: dict[str, Any]) -> dict[str, Any]:
    """What `app.feedback` exports for a rated reply (JSON-safe)."""
    route = state.get("task")
    return {
        "distillgraph": {
            "question": question,
            "answer": state.get("answer", ""),
            "task": TASK_OF_ROUTE.get(route, route),
            "context": state.get("context", ""),
            "table": state.get("table"),
            "row_ids": [int(r) for r in state.get("row_ids") or []],
            "answered_by": state.get("answered_by"),
            "verdict": dict(state.get("verdict") or {}),
        }
    }


def chart_image(figure: Figure) -> cl.Pyplot:
    """A figure as the reply's inline PNG (typed, so history stores it as ``image/png``)."""
    return cl.Pyplot(name=CHART_NAME, figure=figure, display="inline", size="large",
                     mime="image/png")


def _chart_element(state: dict[str, Any], tables: Sequence[Table]) -> cl.Pyplot | None:
    """The turn's chart as an inline image (drawing and PNG encoding block: run in a thread)."""
    try:
        figure = chart_for(state, tables)
        return chart_image(figure) if figure is not None else None
    except Exception:  # a chart is an extra: the reply goes out without it
        log.exception("could not draw the chart of this turn")
        return None


class _Mirror:
    """Mirrors one graph run in the UI: node starts/ends as steps, answer tokens into the reply."""

    def __init__(self, reply: cl.Message, parent: str | None, model_label: str | None):
        self.reply = reply
        self.parent = parent
        self.model_label = model_label
        self.state: dict[str, Any] = {}
        self.steps: list[cl.Step] = []
        self.open_steps: dict[str, cl.Step] = {}
        self.answer_node: str | None = None  # the routed node; only its tokens are the reply
        self.generation_id: str | None = None
        self.tokens = 0

    async def token(self, chunk: Any, meta: dict[str, Any]) -> None:
        node = meta.get("langgraph_node")
        if node not in ANSWER_NODES or (self.answer_node and node != self.answer_node):
            return
        text = _token_text(chunk)
        if not text:
            return
        chunk_id = getattr(chunk, "id", None)
        # A second model call (the wider retry or the fallback) replaces the first reply.
        replace = self.generation_id is not None and chunk_id != self.generation_id
        await self.reply.stream_token(text, is_sequence=replace)
        self.generation_id = chunk_id
        self.tokens += 1

    async def node_started(self, event: dict[str, Any]) -> None:
        if event["name"].startswith("__"):  # LangGraph's own bookkeeping, not a graph node
            return
        step = cl.Step(name=step_view(event["name"], {}).title, type="tool", parent_id=self.parent)
        step.start = utc_now()
        await step.send()
        self.open_steps[event["id"]] = step

    async def node_finished(self, event: dict[str, Any]) -> None:
        node = event["name"]
        update = event.get("result")
        update = update if isinstance(update, dict) else {}
        before = dict(self.state)
        self.state.update(update)
        if node == "route" and update.get("task"):
            self.answer_node = update["task"]
        step = self.open_steps.pop(event["id"], None)
        if step is None:
            return
        view = step_view(node, update, self.model_label, before)
        step.name = view.title
        step.end = utc_now()
        if event.get("error"):
            step.is_error = True
            step.output = f"{type(event['error']).__name__}: {event['error']}"
        else:
            step.output = view.body
        await step.update()
        self.steps.append(step)

    async def close_open_steps(self, why: str) -> None:
        for step in self.open_steps.values():
            step.is_error = True
            step.output = why
            step.end = utc_now()
            await step.update()
        self.open_steps.clear()


async def stream_turn(
    graph: Any,
    thread_id: str,
    question: str,
    *,
    model_label: str | None = None,
    undistilled_tables: set[str] | frozenset[str] = frozenset(),
    tables: Sequence[Table] = (),
) -> TurnResult:
    """Answer `question` in conversation `thread_id`, streaming steps and tokens to the UI.

    Args:
        graph: A compiled graph from `graphs.build_graph` (with a checkpointer).
        thread_id: The Chainlit thread id, used as the graph's ``thread_id``.
        question: The user's text.
        model_label: Name of the answering model, shown in the steps.
        undistilled_tables: Uploaded tables; a reply drawn from one says the student was not
            distilled on it.
        tables: The graph's tables, to chart what the table computed (`app.charts`); empty:
            no chart.

    Returns:
        The reply message, the merged state updates of the turn and the steps shown.
    """
    parent = cl.context.current_step.id if cl.context.current_step else None
    reply = cl.Message(content="", author=ASSISTANT)
    mirror = _Mirror(reply, parent, model_label)
    try:
        async for mode, event in graph.astream(
            {"messages": [HumanMessage(content=question)]},
            config=graph_config(thread_id),
            stream_mode=["tasks", "messages"],
        ):
            if mode == "messages":
                await mirror.token(*event)
            elif "result" in event:
                await mirror.node_finished(event)
            else:
                await mirror.node_started(event)
    except asyncio.CancelledError:  # the user pressed stop: no step may stay "running"
        await mirror.close_open_steps("Stopped.")
        raise
    except Exception as e:
        await mirror.close_open_steps(f"{type(e).__name__}: {e}")
        raise

    state = mirror.state
    answer = state.get("answer") or reply.content or ""
    if state.get("table") in undistilled_tables:
        answer = f"{answer}\n\n_{NOT_DISTILLED_NOTE.format(table=state['table'])}_"
    reply.content = answer
    reply.metadata = _turn_metadata(question, state)
    elements: list[cl.Element] = []
    if context := state.get("context"):
        rows, _ = parse_context(context)
        if len(rows):
            elements.append(
                cl.Dataframe(data=rows.reset_index(), name="supporting rows", display="inline")
            )
    if tables and (chart := await asyncio.to_thread(_chart_element, state, tables)):
        elements.append(chart)
    if elements:
        reply.elements = elements
    await reply.send()
    return TurnResult(message=reply, state=state, steps=mirror.steps, streamed_tokens=mirror.tokens)
