"""One chat turn: run the graph asynchronously and mirror it in Chainlit as it happens.

`stream_turn` consumes ``graph.astream`` with LangGraph's ``tasks`` and ``messages`` stream
modes: a node's start opens a `cl.Step` (so its duration is real), its result fills the step
(`app.render.step_view`), and the tokens of the answering node stream into the reply
`cl.Message`. The finished reply carries the supporting rows as a `cl.Dataframe` and the turn's
question, task, context and check in its metadata, where `app.feedback` finds them when a user
rates it. Nothing here blocks the event loop: the graph's model calls stream from their own
threads, so other conversations keep going while one waits on the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import chainlit as cl
from chainlit.utils import utc_now
from langchain_core.messages import HumanMessage

from app.render import ANSWER_NODES, TASK_OF_ROUTE, parse_context, step_view
from app.uploads import NOT_DISTILLED_NOTE

ASSISTANT = "distillgraph"
# Nodes the graph runs for bookkeeping only would add noise as steps; all of ours are shown.
HIDDEN_NODES: frozenset[str] = frozenset()


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


async def stream_turn(
    graph: Any,
    thread_id: str,
    question: str,
    *,
    model_label: str | None = None,
    undistilled_tables: set[str] | frozenset[str] = frozenset(),
) -> TurnResult:
    """Answer `question` in conversation `thread_id`, streaming steps and tokens to the UI.

    Args:
        graph: A compiled graph from `graphs.build_graph` (with a checkpointer).
        thread_id: The Chainlit thread id, used as the graph's ``thread_id``.
        question: The user's text.
        model_label: Name of the answering model, shown in the steps.
        undistilled_tables: Uploaded tables; a reply drawn from one says the student was not
            distilled on it.

    Returns:
        The reply message, the merged state updates of the turn and the steps shown.
    """
    parent = cl.context.current_step.id if cl.context.current_step else None
    reply = cl.Message(content="", author=ASSISTANT)
    result = TurnResult(message=reply)
    open_steps: dict[str, cl.Step] = {}
    answer_node: str | None = None  # the node the route picked; only its tokens are the reply
    generation_id: str | None = None

    async for mode, event in graph.astream(
        {"messages": [HumanMessage(content=question)]},
        config=graph_config(thread_id),
        stream_mode=["tasks", "messages"],
    ):
        if mode == "messages":
            chunk, meta = event
            node = meta.get("langgraph_node")
            if node not in ANSWER_NODES or (answer_node and node != answer_node):
                continue
            text = _token_text(chunk)
            if not text:
                continue
            chunk_id = getattr(chunk, "id", None)
            if generation_id is not None and chunk_id != generation_id:
                # A second model call (a retry or the fallback) replaces the first reply.
                await reply.stream_token(text, is_sequence=True)
            else:
                await reply.stream_token(text)
            generation_id = chunk_id
            result.streamed_tokens += 1
        elif "result" not in event:  # a node starts
            node = event["name"]
            if node in HIDDEN_NODES or node.startswith("__"):
                continue
            step = cl.Step(name=step_view(node, {}).title, type="tool", parent_id=parent)
            step.start = utc_now()
            await step.send()
            open_steps[event["id"]] = step
        else:  # a node finished
            node = event["name"]
            step = open_steps.pop(event["id"], None)
            update = event.get("result") or {}
            if not isinstance(update, dict):
                update = {}
            before = dict(result.state)
            result.state.update(update)
            if node == "route" and update.get("task"):
                answer_node = update["task"]
            if step is None:
                continue
            view = step_view(node, update, model_label, before)
            step.name = view.title
            step.end = utc_now()
            if event.get("error"):
                step.is_error = True
                step.output = f"{type(event['error']).__name__}: {event['error']}"
            else:
                step.output = view.body
            await step.update()
            result.steps.append(step)

    state = result.state
    answer = state.get("answer") or reply.content or ""
    if state.get("table") in undistilled_tables:
        answer = f"{answer}\n\n_{NOT_DISTILLED_NOTE.format(table=state['table'])}_"
    reply.content = answer
    reply.metadata = _turn_metadata(question, state)
    if context := state.get("context"):
        rows, _ = parse_context(context)
        if len(rows):
            reply.elements = [
                cl.Dataframe(data=rows.reset_index(), name="supporting rows", display="inline")
            ]
    await reply.send()
    return result
