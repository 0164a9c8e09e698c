"""The compiled graph with fake chat models: shape, memory, safety, fallback, edge inputs."""

from __future__ import annotations

import re

import pytest
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)

from data_loaders.errors import InputError
from graphs import build_graph
from graphs.config import GraphConfig, load_graph_config


def _cfg(tid: str) -> dict:
    return {"configurable": {"thread_id": tid}}


def _ask(graph, text, tid="t"):
    return graph.invoke({"messages": [("user", text)]}, _cfg(tid))


def test_mermaid_has_exactly_the_nodes_and_edges(cars):
    g = build_graph(FakeListChatModel(responses=["x"]), [cars])
    mermaid = g.get_graph().draw_mermaid()
    nodes = set(re.findall(r"^\s*(\w+)[(\[]", mermaid, flags=re.M))
    edges = set(re.findall(r"^\s*(\w+) (-->|-\.->) (\w+);", mermaid, flags=re.M))
    assert nodes == {
        "__start__",
        "process_input",
        "route",
        "qa",
        "summarizer",
        "validator",
        "finalize",
        "__end__",
    }
    assert {(a, b) for a, _, b in edges} == {
        ("__start__", "process_input"),
        ("process_input", "route"),
        ("process_input", "finalize"),
        ("route", "qa"),
        ("route", "summarizer"),
        ("route", "validator"),
        ("qa", "finalize"),
        ("summarizer", "finalize"),
        ("validator", "finalize"),
        ("finalize", "__end__"),
    }


def test_input_schema_is_the_messages_only(airports):
    g = build_graph(FakeListChatModel(responses=["x"]), [airports])
    assert set(g.get_input_jsonschema()["properties"]) == {"messages"}
    # A key outside the input schema is ignored, as LangGraph ignores it: a caller cannot
    # plant the previous turn's entity (or an answer) in a fresh thread.
    s = g.invoke(
        {"messages": [("user", "and its latitude?")], "entity": "Thigpen", "answer": "planted"},
        _cfg("fresh"),
    )
    assert s["query"] == "and its latitude?" and s["answer"] != "planted"
    assert s.get("entity") is None


def test_configurable_settings_apply_to_one_call_only(cars):
    g = build_graph(FakeListChatModel(responses=["130 hp"]), [cars])
    question = "What is the horsepower of chevrolet chevelle malibu?"
    short = {"configurable": {"thread_id": "c", "max_input_chars": 20}}
    s = g.invoke({"messages": [("user", question)]}, short)
    assert "the limit is 20" in s["answer"] and s["task"] is None
    s = _ask(g, question, "c")  # the next call has the build-time limit again
    assert s["answer"] == "130 hp" and s["answered_by"] == "student"
    group = "How many cars have origin Europe?"
    few = {"configurable": {"thread_id": "g", "retrieval": {"max_rows": 2, "wider_rows": 2}}}
    assert len(g.invoke({"messages": [("user", group)]}, few)["row_ids"]) <= 2
    assert len(_ask(g, group, "g")["row_ids"]) > 2


def test_configurable_refuses_build_time_and_bad_settings(cars):
    g = build_graph(FakeListChatModel(responses=["x"]), [cars])
    for extra, says in (
        ({"tables": ["other.csv"]}, "tables cannot change per call"),
        ({"retrieval": {"max_rows": 0}}, "retrieval.max_rows"),
        ({"validation": {"rel_tol": 1, "typo": 1}}, "unknown key 'validation.typo'"),
    ):
        with pytest.raises(InputError, match=re.escape(says)):
            g.invoke({"messages": [("user", "hi")]}, {"configurable": {"thread_id": "t"} | extra})


def test_qa_answer_checked_and_recorded(cars):
    g = build_graph(FakeListChatModel(responses=["130 hp"]), [cars])
    s = _ask(g, "What is the horsepower of chevrolet chevelle malibu?")
    assert s["task"] == "qa" and s["answer"] == "130 hp"
    assert s["answered_by"] == "student" and s["verdict"]["supported"] is True
    assert s["messages"][-1].content == "130 hp"
    assert set(s["timings"]) == {"process_input", "route", "qa", "finalize"}


def test_follow_up_resolves_against_previous_entity(cars):
    g = build_graph(FakeListChatModel(responses=["130 hp", "3504 lbs"]), [cars])
    _ask(g, "What is the horsepower of chevrolet chevelle malibu?", "f")
    s = _ask(g, "and its weight?", "f")
    assert "chevrolet chevelle malibu" in s["query"]
    assert s["row_ids"] == [0] and s["answer"] == "3504 lbs"
    assert len(s["messages"]) == 4
    other = _ask(g, "and its weight?", "other-thread")  # no history there
    assert other["answered_by"] == "none"


@pytest.mark.parametrize(
    "follow_up", ["What is the longitude of that airport?", "and this airport's longitude?"]
)
def test_follow_up_names_the_row_by_the_tables_own_noun(airports, follow_up):
    g = build_graph(FakeListChatModel(responses=["31.95", "-89.23"]), [airports])
    _ask(g, "What is the latitude of Thigpen?", "a")
    s = _ask(g, follow_up, "a")
    assert "that airport" not in s["query"] and "this airport" not in s["query"]
    assert "Thigpen" in s["query"] and s["row_ids"] == [0] and s["answer"] == "-89.23"


def test_follow_up_pronoun_keeps_the_cars_noun(cars):
    g = build_graph(FakeListChatModel(responses=["130 hp", "3504 lbs"]), [cars])
    _ask(g, "What is the horsepower of chevrolet chevelle malibu?", "c")
    s = _ask(g, "What is the weight of that car?", "c")
    assert s["query"] == "What is the weight of chevrolet chevelle malibu?"


def test_restart_from_sqlite_keeps_the_conversation(cars, tmp_path):
    db = tmp_path / "memory.sqlite"
    g1 = build_graph(FakeListChatModel(responses=["130 hp"]), [cars], checkpointer=str(db))
    _ask(g1, "What is the horsepower of chevrolet chevelle malibu?", "r")
    g1.checkpointer.conn.close()
    g2 = build_graph(FakeListChatModel(responses=["3504 lbs"]), [cars], checkpointer=str(db))
    s = _ask(g2, "and its weight?", "r")
    assert s["answer"] == "3504 lbs" and "chevrolet chevelle malibu" in s["query"]
    assert [m.type for m in s["messages"]] == ["human", "ai", "human", "ai"]


def test_injected_cell_changes_neither_route_nor_answer(injected_table):
    # The model "obeys" the cell; the route comes from the query alone and the check rejects it.
    g = build_graph(FakeListChatModel(responses=["HACKED"]), [injected_table])
    s = _ask(g, "What is the power of alpha one?")
    assert s["task"] == "qa" and "[row 0]" in s["context"] and "HACKED" in s["context"]
    # the rejected answer is replaced by the table's own lookup
    assert s["answer"] == "100" and s["answered_by"] == "table"
    assert s["verdict"]["reason"].startswith("computed from the table (lookup: df.loc[")
    s = _ask(g, "What is alpha one?")  # names no column: the table has no single answer
    assert s["verdict"]["supported"] is False
    assert "HACKED" not in s["answer"].split("suggested")[0]
    assert "could not give an answer" in s["answer"]
    s = _ask(g, "What is the power of gamma three?")
    assert s["task"] == "qa"  # the cell asking for the summarizer did not reroute


def test_fallback_escalation_is_recorded(cars):
    student = FakeListChatModel(responses=["999 hp"])
    teacher = GenericFakeChatModel(messages=iter(["chevrolet chevelle malibu is a USA car"]))
    g = build_graph(student, [cars], fallback=teacher)
    s = _ask(g, "Tell me what chevrolet chevelle malibu is.")  # reads as no table program
    assert s["answer"] == (
        "chevrolet chevelle malibu is a USA car (read from the rows, not computed by the table)"
    )
    assert s["answered_by"].startswith("fallback:") and s["verdict"]["supported"] is None
    assert s["attempts"] == 3  # student, student with wider context, fallback


def test_computed_questions_skip_retry_and_fallback(cars):
    teacher = GenericFakeChatModel(messages=iter(["130 hp"]))
    g = build_graph(FakeListChatModel(responses=["999 hp"]), [cars], fallback=teacher)
    s = _ask(g, "What is the horsepower of chevrolet chevelle malibu?")
    assert (s["answer"], s["answered_by"], s["attempts"]) == ("130 hp", "table", 1)


def test_student_stating_the_computed_result_is_supported(cars):
    g = build_graph(FakeListChatModel(responses=["130 hp"]), [cars])
    s = _ask(g, "What is the horsepower of chevrolet chevelle malibu?")
    assert (s["answer"], s["answered_by"], s["verdict"]["supported"]) == ("130 hp", "student", True)
    assert s["verdict"]["evidence"][0].startswith("program: lookup: df.loc[")


def test_empty_cell_is_answered_as_such(cars):
    empty = cars.df[cars.df["Horsepower"].isna()]["Name"]
    name = next(n for n in empty if (cars.df["Name"] == n).sum() == 1)
    g = build_graph(FakeListChatModel(responses=["100 hp"]), [cars])
    s = _ask(g, f"What is the horsepower of {name}?")
    assert s["answer"] == f"The table has no horsepower value for {name}."
    assert s["answered_by"] == "table" and s["verdict"]["supported"] is True


def test_unsupported_without_fallback_says_so(cars):
    g = build_graph(FakeListChatModel(responses=["999 hp"]), [cars])
    s = _ask(g, "What is chevrolet chevelle malibu?")  # no column named: no table answer
    assert "could not give an answer that the table supports" in s["answer"]
    assert "999 hp" in s["answer"] and s["answered_by"] == "student (unsupported)"


@pytest.mark.parametrize(("question", "answer", "op"), [
    ("What is the horsepower of chevrolet chevelle malibu?", "130 hp", "lookup"),
    ("How many cars have origin Japan?", "59", "aggregate"),
    ("Which car has the higher fuel economy, honda civic or ford maverick?", "honda civic",
     "compare"),
    ("Which car has the highest horsepower among cars with origin Japan?", "datsun 280-zx",
     "superlative"),
])
def test_table_answers_when_the_student_is_unsupported(cars, question, answer, op):
    g = build_graph(FakeListChatModel(responses=["yes"]), [cars])
    s = _ask(g, question)
    assert s["task"] == "qa" and s["answered_by"] == "table" and s["answer"] == answer
    assert s["verdict"]["supported"]
    assert s["verdict"]["reason"].startswith(f"computed from the table ({op}: ")


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001])
def test_edge_inputs_get_a_reply(cars, text):
    g = build_graph(FakeListChatModel(responses=["x"]), [cars])
    s = _ask(g, text)
    assert s["task"] is None and s["answer"] and s["messages"][-1].content == s["answer"]
    assert ("empty" in s["answer"]) or ("2001 characters" in s["answer"])


def test_unknown_entity_gets_a_clear_reply(cars):
    g = build_graph(FakeListChatModel(responses=["130 hp"]), [cars])
    s = _ask(g, "What is the horsepower of the batmobile?")
    assert s["answer"].startswith("I could not find") and s["answered_by"] == "none"


def test_validator_uses_table_then_model(cars):
    g = build_graph(FakeListChatModel(responses=["Yes."]), [cars])
    s = _ask(g, "Is it true that chevrolet chevelle malibu has 8 cylinders?")
    assert s["task"] == "validator" and s["answer"].startswith("Yes")
    assert s["verdict"]["checked_by"] == "table" and s["answered_by"] == "table"
    s = _ask(g, "Is it true that chevrolet chevelle malibu is a family favourite?")
    assert s["verdict"]["checked_by"] == "model" and "checked by the model" in s["answer"]


def test_summarizer_falls_back_to_the_table_summary(cars):
    g = build_graph(FakeListChatModel(responses=["A 900 hp rocket."]), [cars])
    s = _ask(g, "Summarize the row for chevrolet chevelle malibu.")
    assert s["task"] == "summarizer" and s["answered_by"] == "table"
    assert s["answer"].startswith("chevrolet chevelle malibu has fuel economy 18 mpg")


def test_stream_messages_mode_yields_tokens(cars):
    g = build_graph(GenericFakeChatModel(messages=iter(["130 hp"])), [cars])
    chunks = [
        (m.content, meta["langgraph_node"])
        for m, meta in g.stream(
            {"messages": [("user", "What is the horsepower of chevrolet chevelle malibu?")]},
            _cfg("s"),
            stream_mode="messages",
        )
    ]
    assert ("130", "qa") in [(c.strip(), n) for c, n in chunks]


def test_graph_yaml_loads(cars):
    cfg = load_graph_config("configs/graph.yaml")
    assert isinstance(cfg, GraphConfig) and cfg.tables == ["examples/data/cars.csv"]
    g = build_graph(
        FakeListChatModel(responses=["x"]), [cars], config=cfg, overrides=["max_input_chars=12"]
    )
    assert "characters long" in _ask(g, "What is the horsepower?")["answer"]


def test_second_table_through_the_graph(cars, injected_table):
    g = build_graph(FakeListChatModel(responses=["150"]), [cars, injected_table])
    s = _ask(g, "What is the power of beta two?")
    assert s["table"] == "machines" and s["answer"] == "150" and s["verdict"]["supported"]


def test_endpoint_url_gives_an_openai_compatible_student(cars):
    from graphs.graph import DEFAULT_REMOTE_STUDENT

    url = "http://127.0.0.1:9/v1"  # never called: building the client sends nothing
    student = build_graph(url, [cars]).distillgraph_nodes.student
    assert type(student).__name__ == "ChatOpenAI" and student.openai_api_base == url
    assert student.model_name == DEFAULT_REMOTE_STUDENT
    named = build_graph(url, [cars], overrides=["student.name=served-model"])
    assert named.distillgraph_nodes.student.model_name == "served-model"
