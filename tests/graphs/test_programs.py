"""The program path of the graph: the student writes the program, the table computes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel

from graphs import build_graph


class ProgramModel(FakeListChatModel):
    """A scripted student that writes programs (and says how sure it is of each)."""

    programs: list[str]
    confidence: float = 0.99
    seen: list[str] = []

    def generate_scored(self, messages: Sequence[Any], max_new_tokens: int = 48):
        self.seen.append(messages[-1].content)
        text = self.programs.pop(0) if self.programs else "lookup E1 Horsepower"
        return text, [self.confidence] * 3


def _graph(cars, programs, **kw):
    model = ProgramModel(responses=["x"], programs=list(programs), seen=[], **kw)
    return build_graph(model, [cars], overrides=["program.mode=always"]), model


def _ask(g, text, tid="t"):
    return g.invoke({"messages": [("user", text)]}, {"configurable": {"thread_id": tid}})


def test_lookup_is_computed_and_says_what(cars):
    g, model = _graph(cars, ["lookup E1 Weight_in_lbs"])
    s = _ask(g, "how heavy is the plymouth satellite")
    w = cars.df.loc[cars.df.Name == "plymouth satellite", "Weight_in_lbs"].iloc[0]
    assert s["answer"] == f"The weight of plymouth satellite is {w} lbs."
    assert s["verdict"]["supported"] is True and s["route_source"] == "program"
    assert s["answered_by"] == "program"
    assert "plymouth" not in model.seen[0]  # the student sees slots, not names
    assert any(e.startswith("pandas: ") for e in s["verdict"]["evidence"])


def test_empty_cell_is_said_as_such(cars):
    g, _ = _graph(cars, ["lookup E1 Horsepower"])
    s = _ask(g, "What is the horsepower of ford pinto?")
    assert s["answer"] == "The table has no horsepower value for ford pinto."
    assert s["verdict"]["supported"] is True


def test_false_claim_gets_the_real_value(cars):
    g, _ = _graph(cars, ["claim E1 Weight_in_lbs == V1"])
    s = _ask(g, "True or false: the honda civic weighs 3000 lbs.")
    w = cars.df.loc[cars.df.Name == "honda civic", "Weight_in_lbs"].iloc[0]
    assert s["task"] == "validator"
    assert s["answer"].startswith(f"No: the weight of honda civic is {w}")
    assert s["verdict"]["supported"] is False


def test_comparison_checks_the_comparison(cars):
    g, _ = _graph(cars, ["compare E1 E2 Weight_in_lbs max"])
    s = _ask(g, "Which weighs more, the chevrolet chevelle malibu or the buick skylark 320?")
    df = cars.df.set_index("Name")["Weight_in_lbs"]
    heavier = max(["chevrolet chevelle malibu", "buick skylark 320"], key=lambda n: df[n])
    assert s["answer"].startswith(heavier) and s["verdict"]["supported"] is True


def test_a_broken_program_gets_one_repair_with_the_error(cars):
    g, model = _graph(cars, ["lookup E1 Price", "lookup E1 Horsepower"])
    s = _ask(g, "what is the horsepower of amc rebel sst")
    assert "unknown column 'Price'" in model.seen[1] and s["attempts"] == 2
    assert s["verdict"]["supported"] is True


def test_unreadable_request_names_what_and_offers_close_names(cars):
    g, _ = _graph(cars, ["lookup E1 Price", "lookup E1 Price"])
    s = _ask(g, "what is the prise of amc rebel sst")
    assert s["verdict"]["supported"] is False and s["answered_by"] == "none"
    assert "Price" in s["answer"] and "columns" in s["answer"].lower()


def test_user_typed_program_or_sql_runs_nothing_but_the_language(cars):
    g, model = _graph(cars, ["DROP TABLE cars; select * from cars", "import os"])
    s = _ask(g, "select * from cars; drop table cars")
    assert s["verdict"]["supported"] is False and len(cars.df) > 300


def test_unsure_reading_asks_back_and_yes_runs_it(cars):
    g, _ = _graph(cars, ["lookup E1 Weight_in_lbs"], confidence=0.2)
    s = _ask(g, "plymouth satellite heavy?", tid="ask")
    assert s["answer"].startswith("Do you mean the weight of plymouth satellite?")
    assert s["verdict"]["supported"] is None
    s = _ask(g, "yes", tid="ask")
    assert s["answer"].startswith("The weight of plymouth satellite is")
    assert s["verdict"]["supported"] is True


def test_group_statistic_and_summary(cars):
    g, _ = _graph(cars, ["group mean Horsepower by Origin", "summary_row E1"])
    s = _ask(g, "average horsepower by origin")
    assert "USA:" in s["answer"] and s["task"] == "qa"
    s = _ask(g, "tell me about the ford mustang ii", tid="x")
    assert s["task"] == "summarizer" and s["answer"].startswith("ford mustang ii has")


def test_a_program_that_leaves_out_a_mention_is_repaired_then_asked_back(cars):
    g, model = _graph(cars, ["summary_group where C1", "summary_group where C1"])
    s = _ask(g, "summarize the japanese cars from 1980")
    assert "leaves out V1" in model.seen[1]
    assert s["answer"].startswith("Do you mean a summary of the cars with origin Japan?")
    assert s["verdict"]["supported"] is None and "leaves out V1" in s["verdict"]["reason"]


def test_numbers_of_a_column_name_are_not_mentions_to_use(cars):
    g, _ = _graph(cars, ["lookup E1 Acceleration"])
    s = _ask(g, "0-60 mph time of the mercury capri v6")
    assert s["verdict"]["supported"] is True and s["answered_by"] == "program"


def test_a_request_over_a_large_table_is_answered_from_indexes_with_a_capped_list():
    import numpy as np
    import pandas as pd

    from data_loaders.config import TableConfig
    from data_loaders.loaders import table_from_dataframe

    n = 50_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"Name": [f"item {i}" for i in range(n)],
                       "Kind": rng.choice(["alpha", "beta"], n),
                       "Size": rng.integers(0, 1000, n)})
    big = table_from_dataframe(df, name="items", source="t",
                               config=TableConfig(entity_column="Name"))
    model = ProgramModel(responses=["x"], seen=[],
                         programs=["list where C1", "aggregate mean Size where C1"])
    g = build_graph(model, [big], overrides=["program.mode=always"])
    s = _ask(g, "list the alpha items")
    assert s["answer"].count(",") <= 21 and "more" in s["answer"]
    s = _ask(g, "average size of alpha items", tid="b")
    mean = df.loc[df.Kind == "alpha", "Size"].mean()
    assert f"{mean:.2f}".rstrip("0").rstrip(".") in s["answer"]
    assert s["verdict"]["supported"] is True


def test_the_computed_program_is_in_the_state_for_the_ui(cars):
    g, _ = _graph(cars, ["group mean Horsepower by Origin", "lookup E1 Price", "lookup E1 Price"])
    s = _ask(g, "average horsepower by origin")
    assert s["table_program"]["op"] == "group" and s["table_program"]["by"] == "Origin"
    assert s["table"] == "cars"
    s = _ask(g, "what is the price of the ford mustang ii", tid="y")  # does not run: nothing
    assert s["answered_by"] != "program" and s["table_program"] is None


def test_a_program_against_the_requests_own_words_is_repaired_then_asked_back(cars):
    g, model = _graph(cars, ["claim E1 Horsepower < V1", "claim E1 Horsepower < V1"])
    s = _ask(g, "Is the horsepower of saab 99e above 165 hp?")
    assert "compares with <" in model.seen[1]
    assert s["answer"].startswith("Do you mean whether the horsepower of saab 99e is less than")
    assert s["verdict"]["supported"] is None


def test_a_column_the_request_never_names_is_repaired_then_asked_back(cars):
    g, model = _graph(cars, ["lookup E1 Year", "lookup E1 Year"])
    s = _ask(g, "engine size of the pontiac catalina")
    assert "never names Year" in model.seen[1]
    assert s["answer"].startswith("Do you mean the model year of pontiac catalina?")
    assert s["verdict"]["supported"] is None and s["answered_by"] == "program (asked back)"
    assert "never names Year" in s["verdict"]["reason"]


def test_another_aggregate_than_the_request_says_is_not_answered(cars):
    g, _ = _graph(cars, ["group sum Horsepower by Origin", "group sum Horsepower by Origin"])
    s = _ask(g, "average horsepower by origin")
    assert s["answered_by"] == "program (asked back)" and s["verdict"]["supported"] is None


def test_a_comparison_with_an_empty_cell_says_so(cars):
    g, _ = _graph(cars, ["compare E1 E2 Horsepower max"])
    s = _ask(g, "which has more horsepower, ford pinto or amc rebel sst?")
    assert s["answer"].startswith("The table has no horsepower value for ford pinto, so")
    assert s["verdict"]["supported"] is True and s["answered_by"] == "program"


def test_a_judgment_gets_the_facts_never_marked_as_its_answer(cars):
    g, _ = _graph(cars, ["summary_row E1"])
    s = _ask(g, "what is unusual about the ford pinto?")
    assert s["answer"].startswith('The table holds facts, not reasons or judgments ("unusual")')
    assert "ford pinto" in s["answer"]
    assert s["verdict"]["supported"] is None and s["verdict"]["checked_by"] == "rows"
    assert s["answered_by"] == "program (facts for a free question)"


def _pinto_prose(cars) -> tuple[str, str]:
    """The student's slot wording of ford mustang ii's facts, and the same filled in."""
    import numpy as np

    from data_loaders.mentions import NameIndex
    from data_loaders.program_text import bind, mask_request, parse_text
    from data_loaders.prose import mask_facts, reference_prose, summary_facts, unmask

    index = NameIndex(cars)
    masked = mask_request("tell me about the ford mustang ii", index)
    facts = summary_facts(cars, bind(parse_text("summary_row E1"), masked, index))
    slots, values = mask_facts(facts)
    said = reference_prose(cars, slots, np.random.default_rng(0))
    return said, unmask(said, values)


def test_a_summary_is_worded_by_the_student_when_its_prose_checks(cars):
    said, filled = _pinto_prose(cars)
    assert "F1" in said and "F1" not in filled
    g, model = _graph(cars, ["summary_row E1", said])
    s = _ask(g, "tell me about the ford mustang ii")
    assert s["answer"] == filled and s["answered_by"] == "program + student prose"
    assert s["verdict"]["supported"] is True and s["prose"]["why"] is None
    assert "facts:" in model.seen[-1] and "E1" in model.seen[-1]  # the facts, as slots


def test_summary_prose_with_a_wrong_value_is_not_shown(cars):
    prose = _pinto_prose(cars)[1].replace("lbs", "lbs and 9 cylinders", 1)
    g, _ = _graph(cars, ["summary_row E1", prose])
    s = _ask(g, "tell me about the ford mustang ii")
    assert s["answer"].startswith("ford mustang ii has") and s["answer"] != prose
    assert s["answered_by"] == "program" and "9" in s["prose"]["why"]
    assert "prose was not shown" in s["verdict"]["reason"]


def test_summary_prose_can_be_turned_off(cars):
    model = ProgramModel(responses=["x"], programs=["summary_row E1", "unused"], seen=[])
    g = build_graph(model, [cars], overrides=["program.mode=always", "program.prose=false"])
    s = _ask(g, "tell me about the ford mustang ii")
    assert s["answered_by"] == "program" and s.get("prose") is None and len(model.seen) == 1
