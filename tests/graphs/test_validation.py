"""The table checks: answers must be supported; claims are decided from the table."""

from __future__ import annotations

import pytest

from graphs.retrieval import Retriever, parse_query
from graphs.validation import check_answer, check_claim, compute, read_yes_no


@pytest.fixture(scope="module")
def retriever(cars):
    return Retriever([cars])


def _check(retriever, question, answer, mode="qa"):
    """As the QA node checks: against the table's computed result when the question has one."""
    r = retriever.retrieve(question)
    computed = compute(r.parse) if mode == "qa" and r.parse is not None else None
    return check_answer(answer, r, retriever.indexes[0], mode=mode, computed=computed)


@pytest.mark.parametrize(
    ("question", "answer", "ok"),
    [
        ("What is the horsepower of chevrolet chevelle malibu?", "130 hp", True),
        ("What is the horsepower of chevrolet chevelle malibu?", "130.004", True),  # tolerance
        ("What is the horsepower of chevrolet chevelle malibu?", "131 hp", False),
        (
            "What is the horsepower of chevrolet chevelle malibu?",
            "3504 lbs",
            False,
        ),  # wrong column's value
        ("What is the horsepower of chevrolet chevelle malibu?", "", False),
        ("What is the horsepower of chevrolet chevelle malibu?", "HACKED", False),
        (
            "Which has the higher weight: chevrolet chevelle malibu or amc gremlin?",
            "chevrolet chevelle malibu",
            True,
        ),
        # the lighter car is a row of the context, but not what the comparison computes
        (
            "Which has the higher weight: chevrolet chevelle malibu or amc gremlin?",
            "amc gremlin",
            False,
        ),
        (
            "Which has the higher weight: chevrolet chevelle malibu or amc gremlin?",
            "chevrolet chevelle malibu or amc gremlin",
            False,
        ),
        (
            "Which has the higher weight: chevrolet chevelle malibu or amc gremlin?",
            "buick skylark 320",
            False,
        ),
        ("How many cars have origin Japan?", "59", None),  # value checked below
        ("What is the origin of chevrolet chevelle malibu?", "USA", True),
        ("What is the origin of chevrolet chevelle malibu?", "Japan", False),
        # "which" questions need a row's name, not numbers that happen to be in the rows
        ("Which car has the higher fuel economy, honda civic or ford maverick?", "24 mpg", False),
        ("Which car has the higher fuel economy, honda civic or ford maverick?", "honda civic",
         True),
        # a bare yes/no answers only a yes/no question
        ("How many cars have origin Japan?", "yes", False),
        ("Which has the higher weight: chevrolet chevelle malibu or amc gremlin?", "no", False),
        # no program reads this question: the answer is only read from the rows
        ("Is the origin of chevrolet chevelle malibu USA?", "yes", "rows"),
        # a value of the right type from another row or column never passes
        ("What is the horsepower of chevrolet chevelle malibu?", "165 hp", False),
        ("What is the horsepower of chevrolet chevelle malibu?", "130 hp or 165 hp", False),
        ("What is the origin of chevrolet chevelle malibu?", "USA or Japan", False),
        ("What is the origin of chevrolet chevelle malibu?", "the amc gremlin is from USA", False),
    ],
)
def test_check_answer(cars, retriever, question, answer, ok):
    v = _check(retriever, question, answer)
    if ok is None:
        n = int((cars.df["Origin"] == "Japan").sum())
        assert _check(retriever, question, str(n))["supported"]
        assert not _check(retriever, question, str(n + 7))["supported"]
        return
    if ok == "rows":
        assert v["supported"] is None and v["checked_by"] == "rows", v["reason"]
    else:
        assert v["supported"] is ok, v["reason"]
    assert v["reason"]


def test_free_answer_says_where_its_value_is_and_never_borrows_a_neighbours(retriever):
    # "heavy" names no column: no program; the answer is read from the named row only
    q = "How heavy is the plymouth satellite?"
    v = _check(retriever, q, "150 hp")
    assert v["supported"] is None
    assert v["reason"].endswith("150 hp is the horsepower of plymouth satellite")
    assert _check(retriever, q, "3436 lbs")["reason"].endswith(
        "3436 lbs is the weight of plymouth satellite")
    r = retriever.retrieve(q, wide=True)
    other = next(i for i in r.row_ids if i not in r.parse.row_ids)
    value = retriever.tables[0].df.iloc[other]["Horsepower"]
    v = check_answer(f"{value:g} hp", r, retriever.indexes[0])
    assert v["supported"] is False, v  # a value of another row in the context


def test_ford_pinto_hp_fixture(cars):
    # The parametrized cases above assume these cells; fail loudly if the sample data changes.
    row = cars.df[cars.df["Name"] == "chevrolet chevelle malibu"].iloc[0]
    assert (row["Horsepower"], row["Weight_in_lbs"], row["Origin"]) == (130, 3504, "USA")


def test_summary_mode_checks_only_stated_values(retriever):
    q = "Summarize the row for chevrolet chevelle malibu."
    ok = _check(retriever, q, "A small USA car with 130 hp.", mode="summary")
    assert ok["supported"] is None and ok["checked_by"] == "rows"  # prose is never "computed"
    assert _check(retriever, q, "A small car with 300 hp.", mode="summary")["supported"] is False


@pytest.mark.parametrize("summary", [
    "I don't know",  # states nothing of the row
    "It is a great car.",
    "A 1982 car with 165 hp.",  # numbers of other rows, not of the row summarized
])
def test_summary_that_states_nothing_of_its_row_is_refused(retriever, summary):
    q = "tell me about the chevrolet chevelle malibu"
    assert _check(retriever, q, summary, mode="summary")["supported"] is False


def test_evidence_lists_supporting_rows(retriever):
    v = _check(retriever, "What is the horsepower of chevrolet chevelle malibu?", "130 hp")
    assert any("chevrolet chevelle malibu" in e for e in v["evidence"])


@pytest.mark.parametrize(
    ("claim", "true"),
    [
        ("Is it true that chevrolet chevelle malibu has 8 cylinders?", True),
        ("Is it true that chevrolet chevelle malibu has 4 cylinders?", False),
        ("Is the horsepower of chevrolet chevelle malibu 130 hp?", True),
        ("Claim: the weight of chevrolet chevelle malibu is 3000 lbs. Is this correct?", False),
        ("Does chevrolet chevelle malibu have origin Japan?", False),
        ("True or false: chevrolet chevelle malibu is from USA.", True),
        ("Answer yes or no: chevrolet chevelle malibu has a model year of 1970.", True),
    ],
)
def test_check_claim(retriever, claim, true):
    res = check_claim(parse_query(claim, retriever.indexes[0]))
    assert res is not None and res.true is true
    assert res.answer.startswith("Yes" if true else "No")
    assert res.verdict["evidence"] and "chevrolet chevelle malibu" in res.verdict["evidence"][0]


def test_unparseable_claim_returns_none(retriever):
    assert (
        check_claim(
            parse_query("Is it true that cars were better back then?", retriever.indexes[0])
        )
        is None
    )


def test_read_yes_no():
    assert read_yes_no("Yes, it is.") is True
    assert read_yes_no("no") is False
    assert read_yes_no("maybe") is None


@pytest.mark.parametrize("claim", [
    "Is the horsepower of ford pinto 100?",
    "Does ford pinto have a horsepower of 100 hp?",
])
def test_claim_about_an_empty_cell_is_neither_true_nor_false(cars, retriever, claim):
    assert cars.df.loc[cars.df["Name"] == "ford pinto", "Horsepower"].isna().all()
    res = check_claim(retriever.retrieve(claim).parse)
    assert res is not None and res.true is None and res.verdict["supported"] is None
    assert res.answer.startswith("The table has no horsepower value for ford pinto")


def test_what_is_the_maximum_asks_for_a_value_and_which_for_a_row(retriever):
    from graphs.validation import table_program

    p = retriever.retrieve("For cars whose origin is Japan, what is the maximum horsepower?").parse
    assert table_program(p)["op"] == "aggregate" and table_program(p)["agg"] == "max"
    p = retriever.retrieve("Which car with origin Japan has the highest horsepower?").parse
    assert table_program(p)["op"] == "superlative"


@pytest.mark.parametrize("question", [
    "how many cars are not from japan",
    "how many cars are from outside japan",
])
def test_a_negated_filter_is_not_computed_as_the_filter(retriever, question):
    from graphs.validation import table_program

    assert table_program(retriever.retrieve(question).parse) is None


def test_a_number_no_filter_reads_leaves_the_question_uncomputed(retriever):
    """"more than 5 kg" over a column in grams is read as no filter: never count the group."""
    from graphs.validation import table_program

    p = retriever.retrieve("how many cars from japan weigh more than 2 tons").parse
    assert table_program(p) is None
    p = retriever.retrieve("how many cars are from japan").parse
    assert table_program(p)["agg"] == "count"
    p = retriever.retrieve("what is the 0-60 mph time of ford pinto").parse
    assert table_program(p)["op"] == "lookup"


@pytest.mark.parametrize(("claim", "true"), [
    ("is the weight of honda civic under 2000 lbs?", False),
    ("is the weight of honda civic below 3000 lbs?", True),
    ("does the honda civic have a weight over 2000 lbs?", True),
])
def test_comparison_claims_are_decided_by_the_comparison(cars, retriever, claim, true):
    weight = cars.df.loc[cars.df["Name"] == "honda civic", "Weight_in_lbs"].iloc[0]
    assert 2000 < weight < 3000
    res = check_claim(retriever.retrieve(claim).parse)
    assert res is not None and res.true is true and res.verdict["supported"] is true
    assert res.answer.startswith("Yes" if true else "No")
