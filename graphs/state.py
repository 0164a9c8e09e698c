"""The agent graph's state: one conversation turn's working data plus the message history.

A call passes only `InputState` (``messages``). Only ``messages`` accumulates across turns
(through `add_messages`); every other key is reset by the ``process_input`` node at the start
of a turn, except ``entity``, which keeps the previous turn's entity so a follow-up ("and its
<column>?") can resolve against it, and ``pending_program``, a reading the graph asked back
about, which a 'yes' on the next turn runs. The checkpointer stores the whole state per
``thread_id``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict  # pydantic (LangGraph's schemas) needs it on Python < 3.12

Route = Literal["qa", "summarizer", "validator"]
ROUTES: tuple[Route, ...] = ("qa", "summarizer", "validator")


def merge_timings(
    left: dict[str, float] | None, right: dict[str, float] | None
) -> dict[str, float]:
    """Reducer for ``timings``: writes add keys; the first node's write starts a new turn."""
    if right and "process_input" in right:
        return dict(right)
    return {**(left or {}), **(right or {})}


class Verdict(TypedDict, total=False):
    """The table check of an answer or claim."""

    # True: the answer states what the table computed (or a claim is true); False: it does not
    # (or the claim is false); None: not checked (read from the rows, or judged by the model).
    supported: bool | None
    reason: str  # one line saying why
    evidence: list[str]  # the row / fact lines that support (or contradict) it
    # "table" (computed or looked up), "rows" (only found in the retrieved rows) or "model"
    checked_by: str


class InputState(TypedDict):
    """What a caller passes in: the new messages. Other keys are the graph's own and ignored."""

    messages: Annotated[list[AnyMessage], add_messages]


class State(InputState, total=False):
    """The graph state: the messages plus this turn's working data (all set by the nodes)."""

    query: str  # this turn's user text (after follow-up resolution)
    raw_query: str  # this turn's user text as typed
    rejected: str | None  # reason the input was refused (empty, too long); skips the tasks
    task: Route | None  # what the router picked
    route_source: str  # "scores" or "rules"
    route_scores: dict[str, float]  # log-prob of each label when the model scored them
    table: str | None  # name of the table the context was built from
    context: str  # the serialized rows and facts given to the model
    row_ids: list[int]  # rows in the context (0-based positions in `table`)
    answer: str  # the reply text of this turn
    verdict: Verdict  # table check of the answer (qa/summarizer) or of the claim (validator)
    answered_by: str  # "student", "fallback:<name>", "table" or "none"
    attempts: int  # model calls spent on this turn's answer
    entity: str | None  # entity this turn was about (kept for the next turn's follow-ups)
    timings: Annotated[dict[str, float], merge_timings]  # seconds per node this turn
    # The student's reading of the request as a table program (`graphs.programs`): table,
    # masked request, program text, bound spec (None when it failed), error, confidence, task.
    program: dict[str, Any] | None
    # A reading the graph asked back about ("Do you mean ...?"); a 'yes' next turn runs it.
    pending_program: dict[str, Any] | None
    # The dataset program (`data_loaders.programs` spec) over ``table`` that this turn's answer
    # was computed from or is about (the student's, or the one the question reads as), so a
    # caller can show what the table computed (the chat UI charts group values from it).
    table_program: dict[str, Any] | None
    # A summary's prose by the student (`data_loaders.prose`): ``text``, ``why`` (None when
    # every number, name and value in it checks against the table's facts, else the reason it
    # was not shown) and ``facts`` (the fact lines it was checked against).
    prose: dict[str, Any] | None


def turn_defaults() -> dict[str, Any]:
    """The per-turn keys reset at the start of every turn (``entity`` is deliberately absent)."""
    return {
        "rejected": None,
        "task": None,
        "route_source": "",
        "route_scores": {},
        "table": None,
        "context": "",
        "row_ids": [],
        "answer": "",
        "verdict": {},
        "answered_by": "none",
        "attempts": 0,
        "program": None,
        "table_program": None,
        "prose": None,
    }
