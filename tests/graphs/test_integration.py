"""End to end with real (tiny random, or SmolLM2) models: plumbing, memory, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from graphs import AgenticWorkflow, build_graph

SMALL = ["student.max_new_tokens=4", "retrieval.max_chars=800"]  # keep CPU time low


def _cfg(tid: str) -> dict:
    return {"configurable": {"thread_id": tid}}


def test_tiny_model_end_to_end_with_restart(tiny_model_dir, cars, tmp_path):
    db = tmp_path / "memory.sqlite"
    g = build_graph(str(tiny_model_dir), [cars], checkpointer=str(db), overrides=SMALL)
    s = g.invoke(
        {"messages": [("user", "What is the horsepower of chevrolet chevelle malibu?")]},
        _cfg("e2e"),
    )
    assert s["task"] == "qa" and 0 in s["row_ids"] and s["answer"]
    assert s["entity"] == "chevrolet chevelle malibu"
    # a random model babbles: its answer is unsupported, and the table's lookup replaces it
    assert s["answered_by"] in ("student", "table")
    assert s["route_source"] == "rules"  # a random model fails the router probes
    g.checkpointer.conn.close()
    g2 = build_graph(str(tiny_model_dir), [cars], checkpointer=str(db), overrides=SMALL)
    s2 = g2.invoke({"messages": [("user", "and its weight?")]}, _cfg("e2e"))
    assert s2["query"] == "What is the weight of chevrolet chevelle malibu?"
    assert 0 in s2["row_ids"] and len(s2["messages"]) == 4


def test_sixteen_concurrent_conversations(tiny_chat, cars, tmp_path):
    names = [cars.entity_of(i) for i in range(0, 160, 10)]  # 16 different cars
    g = build_graph(tiny_chat, [cars], checkpointer=str(tmp_path / "m.sqlite"))

    async def main():
        return await asyncio.gather(
            *(
                g.ainvoke(
                    {"messages": [("user", f"What is the horsepower of {name}?")]}, _cfg(f"t{i}")
                )
                for i, name in enumerate(names)
            )
        )

    states = asyncio.run(main())
    for i, (name, s) in enumerate(zip(names, states, strict=True)):
        assert s["entity"] == name and name in [cars.entity_of(r) for r in s["row_ids"]]
        assert s["messages"][0].content == f"What is the horsepower of {name}?"
        assert s["messages"][-1].content == s["answer"] and len(s["messages"]) == 2
        saved = g.get_state(_cfg(f"t{i}")).values
        assert saved["entity"] == name and saved["answer"] == s["answer"]


def test_agentic_workflow(tiny_chat, cars):
    wf = AgenticWorkflow(tiny_chat, tables=[cars])
    assert "could not find" in wf.run(query="What is the horsepower of the batmobile?")
    assert wf.run(query="Is it true that chevrolet chevelle malibu has 8 cylinders?").startswith(
        "Yes"
    )


@pytest.mark.slow
def test_smollm2_end_to_end(cars, tmp_path):
    from distillation.embedded import embedded_teacher_dir

    db = tmp_path / "memory.sqlite"
    model_dir = str(embedded_teacher_dir())
    g = build_graph(
        model_dir, [cars], checkpointer=str(db), overrides=["student.max_new_tokens=24"]
    )
    s = g.invoke(
        {"messages": [("user", "What is the horsepower of chevrolet chevelle malibu?")]}, _cfg("s")
    )
    assert s["task"] == "qa" and s["answer"] and 0 in s["row_ids"]
    g.checkpointer.conn.close()
    g2 = build_graph(
        model_dir, [cars], checkpointer=str(db), overrides=["student.max_new_tokens=24"]
    )
    s2 = g2.invoke({"messages": [("user", "and its weight?")]}, _cfg("s"))
    assert "chevrolet chevelle malibu" in s2["query"] and s2["answer"]
    claim = g2.invoke(
        {"messages": [("user", "Is it true that chevrolet chevelle malibu has 8 cylinders?")]},
        _cfg("s2"),
    )
    assert claim["answer"].startswith("Yes")
