import pandas as pd

from app.render import (
    markdown_table,
    parse_context,
    starter_questions,
    step_view,
    verdict_markdown,
    welcome_markdown,
)
from data_loaders.table import Table

CONTEXT = (
    "[row 12] name: chevrolet chevelle malibu | fuel economy: 18 mpg | cylinders: 8\n"
    "[row 3] name: amc rebel sst | cylinders: 8\n"
    "[fact] mean horsepower where origin = USA: 119.05 (over 245 rows)"
)


def small_table() -> Table:
    df = pd.DataFrame(
        {"Name": ["ford torino", "amc gremlin"], "mpg": [17.0, 21.0], "origin": ["USA", "USA"]}
    )
    return Table(
        name="cars",
        source="cars.csv",
        df=df,
        content_hash="x",
        column_types={"Name": "text", "mpg": "numeric", "origin": "categorical"},
        entity_column="Name",
        display={"mpg": "fuel economy"},
        units={"mpg": "mpg"},
    )


def test_parse_context_keeps_row_ids_cells_and_facts():
    rows, facts = parse_context(CONTEXT)
    assert list(rows.index) == [12, 3]
    assert rows.loc[12, "fuel economy"] == "18 mpg"
    assert rows.loc[3, "fuel economy"] == ""  # missing cell
    assert facts == ["mean horsepower where origin = USA: 119.05 (over 245 rows)"]


def test_markdown_table_escapes_pipes():
    frame = pd.DataFrame({"a": ["x|y"]}, index=pd.Index([5], name="row"))
    md = markdown_table(frame)
    assert md.splitlines()[0] == "| row | a |"
    assert "x\\|y" in md and md.splitlines()[2].startswith("| 5 |")


def test_route_step_says_which_route_and_why():
    view = step_view("route", {"task": "validator", "route_source": "rules", "route_scores": {}})
    assert view.title == "Route to validator"
    assert "claim" in view.body and "keyword rules" in view.body
    scored = step_view("route", {"task": "qa", "route_source": "scores",
                                 "route_scores": {"qa": -0.1, "summarize": -4.0}})
    assert "qa -0.10, summarize -4.00" in scored.body


def test_answer_step_shows_rows_and_model():
    view = step_view("qa", {"context": CONTEXT, "table": "cars", "answered_by": "student"}, "tiny")
    assert view.rows is not None and len(view.rows) == 2
    assert "2 supporting rows of table **cars**, 1 facts" in view.body
    assert "| 12 | chevrolet chevelle malibu | 18 mpg | 8 |" in view.body
    assert "student model (tiny)" in view.body


def test_verdict_and_fallback_are_spelled_out():
    verdict = {"supported": False, "reason": "18 is not 19", "evidence": ["[row 12] x"],
               "checked_by": "table"}
    body = step_view("finalize", {"answer": "x"}, state={"verdict": verdict,
                                                         "answered_by": "fallback:big"}).body
    assert "Not supported" in body and "18 is not 19" in body and "`[row 12] x`" in body
    assert "fallback model (big)" in body
    assert verdict_markdown({}) == "No table check for this turn."


def test_starters_use_a_real_entity_and_column():
    starters = starter_questions(small_table())
    labels = [label for label, _ in starters]
    assert labels == ["Ask a question", "Summarize a row", "Check a claim"]
    assert starters[0][1] == "What is the fuel economy of ford torino?"
    assert starters[1][1] == "Summarize ford torino."
    assert starters[2][1] == "Is it true that ford torino has a fuel economy of 17 mpg?"


def test_welcome_names_tables_and_model():
    text = welcome_markdown([small_table()], "student model `x`")
    assert "**cars** (2 rows × 3 columns, one row per Name)" in text
    assert "student model `x`" in text
    assert "attach" in welcome_markdown([], "m")


def test_step_titles_are_valid_chainlit_avatar_ids():
    import re

    from app.render import STEP_TITLES

    titles = [*STEP_TITLES.values(), *(f"Route to {t}" for t in ("qa", "summarizer", "validator"))]
    assert all(re.fullmatch(r"[a-zA-Z0-9_ .-]+", t) for t in titles)


def test_route_step_shows_the_students_program():
    from app.render import answered_by_text, step_view

    update = {"task": "qa", "route_source": "program", "route_scores": {},
              "program": {"masked": "how heavy is the E1", "text": "lookup E1 Weight_in_lbs",
                          "confidence": 0.93, "error": None}}
    body = step_view("route", update).body
    assert "`lookup E1 Weight_in_lbs`" in body and "how heavy is the E1" in body
    assert "0.93" in body and "operation" in body
    assert "table computed the answer" in answered_by_text("program")
    update["program"].update(unnamed=["Year"], contradicts=["the request asks for the average "
                                                            "but the program takes sum"])
    body = step_view("route", update).body
    assert "never names Year" in body and "takes sum" in body
    assert "not marked as the answer" in answered_by_text("program (facts for a free question)")
