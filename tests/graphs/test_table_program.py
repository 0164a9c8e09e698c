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


def test_an_extreme_word_before_a_measure_asks_for_the_value_and_distinct_is_not_a_count(cars):
    from graphs.retrieval import Retriever
    from graphs.validation import table_program

    r = Retriever([cars])
    p = r.parse("Largest fuel economy among cars whose 0-60 mph time is below 13.5 s?")[0]
    assert table_program(p)["op"] == "aggregate"
    p = r.parse("How many different origin values do cars with cylinders 4 have")[0]
    assert table_program(p) is None
