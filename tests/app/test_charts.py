"""Charts of what the table computed (`app.charts`): the bars match pandas, no Chainlit needed."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from app.charts import (
    CHARTS,
    HIGHLIGHT_COLOR,
    MAX_BARS,
    ChartData,
    bar_figure,
    chart_data,
    chart_for,
)
from data_loaders.config import TableConfig
from data_loaders.config_loader import load_config
from data_loaders.loaders import load_tables, table_from_dataframe
from data_loaders.programs import ProgramError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cars():
    cfg = load_config(TableConfig, REPO / "configs" / "prepare_cars.yaml", section="table")
    return load_tables([REPO / "examples" / "data" / "cars.csv"], cfg)[0]


def _bars(data: ChartData) -> dict[str, float]:
    return dict(data.bars)


def test_aggregate_over_a_group_charts_every_group_and_highlights_the_asked_one(cars):
    p = {"op": "aggregate", "agg": "mean", "column": "Horsepower",
         "where": [{"column": "Origin", "op": "==", "value": "USA"}]}
    data = chart_data(cars, p)
    expected = cars.df.groupby("Origin")["Horsepower"].mean()
    assert _bars(data) == pytest.approx(expected.to_dict())
    assert data.highlight == {"USA"}
    assert [v for _, v in data.bars] == sorted(expected, reverse=True)  # largest first
    assert "by origin" in data.title.lower() and "(hp)" in data.value_label


def test_count_and_other_conditions_stay_as_the_filter(cars):
    p = {"op": "aggregate", "agg": "count",
         "where": [{"column": "Origin", "op": "==", "value": "Japan"},
                   {"column": "Cylinders", "op": "==", "value": 4}]}
    data = chart_data(cars, p)
    expected = cars.df[cars.df["Cylinders"] == 4]["Origin"].value_counts()
    assert _bars(data) == expected.astype(float).to_dict()
    assert data.highlight == {"Japan"} and data.value_label == "number of cars"
    assert "cylinders 4" in data.title


def test_numeric_groups_are_in_their_own_order(cars):
    p = {"op": "group", "agg": "mean", "column": "Miles_per_Gallon", "by": "Cylinders",
         "where": []}
    data = chart_data(cars, p)
    expected = cars.df.groupby("Cylinders")["Miles_per_Gallon"].mean().dropna()
    assert [label for label, _ in data.bars] == [str(k) for k in expected.index]
    assert [v for _, v in data.bars] == pytest.approx(expected.tolist())
    assert data.highlight == frozenset()


def test_no_chart_without_groups_to_compare(cars):
    threshold = {"op": "aggregate", "agg": "mean", "column": "Weight_in_lbs",
                 "where": [{"column": "Horsepower", "op": ">", "value": 150}]}
    assert chart_data(cars, threshold) is None
    lookup = {"op": "lookup", "entity": "ford torino", "row_id": 4, "column": "Horsepower"}
    assert chart_data(cars, lookup) is None
    assert chart_data(cars, {"op": "no such op"}) is None


def test_superlative_ranks_the_top_rows_with_the_winner_first(cars):
    p = {"op": "superlative", "column": "Horsepower", "direction": "max",
         "where": [{"column": "Origin", "op": "==", "value": "Japan"}]}
    data = chart_data(cars, p)
    japan = cars.df[cars.df["Origin"] == "Japan"]
    top = japan.nlargest(10, "Horsepower", keep="all")
    assert [v for _, v in data.bars] == top["Horsepower"].tolist()
    assert data.bars[0][0] == japan.loc[japan["Horsepower"].idxmax(), "Name"]
    assert data.highlight == {data.bars[0][0]}


def test_top_k_and_a_long_list_is_cut(cars):
    p = {"op": "top", "k": 3, "column": "Weight_in_lbs", "direction": "min", "where": []}
    data = chart_data(cars, p)
    assert [v for _, v in data.bars] == cars.df.nsmallest(3, "Weight_in_lbs")[
        "Weight_in_lbs"].tolist()
    p = {"op": "group", "agg": "count", "by": "Year", "where": []}
    assert len(chart_data(cars, p).bars) == cars.df["Year"].nunique() <= MAX_BARS


def test_compare_shows_both_rows_and_the_winner(cars):
    p = {"op": "compare", "entities": ["chevrolet chevelle malibu", "buick skylark 320"],
         "row_ids": [0, 1], "column": "Horsepower", "direction": "max"}
    data = chart_data(cars, p)
    assert data.bars == (("chevrolet chevelle malibu", 130.0), ("buick skylark 320", 165.0))
    assert data.highlight == {"buick skylark 320"}


def test_a_tie_is_charted_without_a_winner():
    df = pd.DataFrame({"Name": ["a", "b"], "Power": [5, 5]})
    t = table_from_dataframe(df, name="things", source="test",
                             config=TableConfig(entity_column="Name"))
    p = {"op": "compare", "entities": ["a", "b"], "row_ids": [0, 1], "column": "Power",
         "direction": "max"}
    data = chart_data(t, p)
    assert _bars(data) == {"a": 5.0, "b": 5.0} and data.highlight == frozenset()


def test_group_summary_small_group_by_row_large_group_by_group(cars):
    small = {"op": "summary_group", "columns": ["Horsepower"], "noun": "car", "evidence": "rows",
             "where": [{"column": "Origin", "op": "==", "value": "Japan"},
                       {"column": "Year", "op": "==", "value": 1970}]}
    data = chart_data(cars, small)
    rows = cars.df[(cars.df["Origin"] == "Japan") & (cars.df["Year"] == 1970)]
    assert 2 <= len(rows) <= MAX_BARS
    assert _bars(data) == dict(zip(rows["Name"], rows["Horsepower"].astype(float), strict=True))
    large = {**small, "where": small["where"][:1]}
    data = chart_data(cars, large)
    assert _bars(data) == pytest.approx(cars.df.groupby("Origin")["Horsepower"].mean().to_dict())
    assert data.highlight == {"Japan"}


def test_a_program_that_does_not_run_raises_and_chart_for_gives_none(cars):
    bad = {"op": "aggregate", "agg": "mean", "column": "Price",
           "where": [{"column": "Origin", "op": "==", "value": "USA"}]}
    with pytest.raises(ProgramError, match="Price"):
        chart_data(cars, bad)
    with pytest.raises(ProgramError, match="lacks key"):
        chart_data(cars, {"op": "compare", "column": "Horsepower"})
    assert chart_for({"table": "cars", "table_program": bad}, [cars]) is None


def test_a_new_op_plugs_in(cars, monkeypatch):
    monkeypatch.setitem(CHARTS, "custom", lambda t, p, d: ChartData("t", "v", (("x", 1.0),
                                                                               ("y", 2.0))))
    assert _bars(chart_data(cars, {"op": "custom"})) == {"x": 1.0, "y": 2.0}


def test_bar_figure_draws_one_bar_per_pair_and_highlights():
    data = ChartData("Mean power by origin", "mean power (hp)",
                     (("USA", 120.0), ("Japan", 80.0), ("Europe", 81.5)), frozenset({"Japan"}))
    fig = bar_figure(data)
    (ax,) = fig.axes
    assert [p.get_width() for p in ax.patches] == [120.0, 80.0, 81.5]
    colors = [to_hex(p.get_facecolor()) for p in ax.patches]
    assert colors[1] == HIGHLIGHT_COLOR and colors[0] != HIGHLIGHT_COLOR
    assert [t.get_text() for t in ax.get_yticklabels()] == ["USA", "Japan", "Europe"]
    assert ax.get_title(loc="left") == "Mean power by origin"
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG")


def test_chart_for_a_graph_turn(cars):
    from graphs import build_graph

    g = build_graph(FakeListChatModel(responses=["x"]), [cars])

    def turn(q: str) -> dict:
        return g.invoke({"messages": [("user", q)]}, {"configurable": {"thread_id": q}})

    state = turn("What is the average horsepower of cars with origin USA?")
    fig = chart_for(state, [cars])
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 3
    assert chart_for(state, []) is None  # the turn's table is not among those given
    assert chart_for(turn("What is the horsepower of ford torino?"), [cars]) is None
