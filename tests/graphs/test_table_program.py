"""The table program behind a turn's answer is in the graph state (the chat charts it)."""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeListChatModel

from graphs import build_graph


def test_computed_group_program_is_in_the_state_and_checkpointed(cars, tmp_path):
    db = tmp_path / "memory.sqlite"
    g = build_graph(FakeListChatModel(responses=["x"]), [cars], checkpointer=str(db))
    cfg = {"configurable": {"thread_id": "t"}}
    s = g.invoke({"messages": [("user", "What is the average horsepower of cars with model "
                                         "year 1970?")]}, cfg)
    program = s["table_program"]
    assert program["op"] == "aggregate" and program["where"][0]["column"] == "Year"
    assert type(program["where"][0]["value"]) is int  # a plain int, not numpy: checkpointable
    s = g.invoke({"messages": [("user", "Summarize the cars with origin Japan.")]}, cfg)
    assert s["table_program"]["op"] == "summary_group"
    s = g.invoke({"messages": [("user", "What is the horsepower of ford torino?")]}, cfg)
    assert s["table_program"]["op"] == "lookup"
    assert g.get_state(cfg).values["table_program"]["op"] == "lookup"
