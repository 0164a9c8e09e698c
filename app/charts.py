"""Charts of what the table computed: per-group values, or the rows a comparison ranks.

A turn whose answer the table computed from a program over groups or rows (the graph state's
``table_program``, see `graphs.state`) gets a bar chart of the values behind it:

=================  =========================================================================
``aggregate``      the same statistic for every value of the filter's ``==`` column (the
                   asked group highlighted): "mean horsepower of cars from USA" → mean
                   horsepower by origin
``group``          the statistic by group, as computed
``summary_group``  the first summarized column for each row of the group (a small group),
                   else its mean by the filter's ``==`` column, as for ``aggregate``
``superlative``    the rows with the highest (lowest) values in the filter, the winner first
``top``            the ``k`` rows the reply lists
``compare``        the two rows' values, the winner highlighted
=================  =========================================================================

Everything here is a pure function of a `Table` and a program (`chart_data`) or of a list of
``(label, value)`` pairs (`bar_figure`), with no Chainlit import, so it is unit-tested without
a UI; a new op plugs in by adding its function to `CHARTS`. Figures are matplotlib `Figure`
objects made without pyplot (no global state, safe in worker threads).
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from data_loaders.naming import plural
from data_loaders.programs import (
    ProgramError,
    group_values,
    index_for,
    rows_where,
    run_program,
    top_rows,
)
from data_loaders.serialize import format_number, format_value
from data_loaders.table import Table
from data_loaders.templates import col_words, entity_noun, where_with

log = logging.getLogger(__name__)

MAX_BARS = 20  # more groups or rows than this are cut to the first MAX_BARS (the note says so)
MAX_GROUPS = 30  # a filter column with more values than this is not charted by group
SUPERLATIVE_BARS = 10  # rows a superlative's chart ranks
BAR_COLOR = "#94a3b8"
HIGHLIGHT_COLOR = "#2563eb"


@dataclass(frozen=True)
class ChartData:
    """A bar chart: labelled values in display order, and the labels the answer is about."""

    title: str
    value_label: str  # the value axis, e.g. "mean horsepower (hp)"
    bars: tuple[tuple[str, float], ...]
    highlight: frozenset[str] = field(default_factory=frozenset)
    note: str = ""  # e.g. "first 20 of 35 groups"
    decimals: int = 2


def _axis_label(table: Table, agg: str, column: str | None, unit: bool = True) -> str:
    if agg == "count" or column is None:
        return f"number of {plural(entity_noun(table))}"
    word = {"mean": "mean", "sum": "total", "min": "lowest", "max": "highest"}.get(agg, agg)
    shown = table.units.get(column) if unit else None
    return f"{word} {col_words(table, column)}" + (f" ({shown})" if shown else "")


def _column_label(table: Table, column: str) -> str:
    unit = table.units.get(column)
    return col_words(table, column) + (f" ({unit})" if unit else "")


def _among(table: Table, where: list[dict], decimals: int) -> str:
    return f" with {where_with(table, where, decimals)}" if where else ""


def _capped(bars: list[tuple[str, float]], what: str) -> tuple[tuple[tuple[str, float], ...], str]:
    if len(bars) > MAX_BARS:
        return tuple(bars[:MAX_BARS]), f"first {MAX_BARS} of {len(bars)} {what}"
    return tuple(bars), ""


def _by_condition(table: Table, where: list[dict]) -> tuple[dict, list[dict]] | None:
    """The first ``==`` condition whose column splits the table into 2..MAX_GROUPS groups."""
    idx = index_for(table)
    for i, c in enumerate(where):
        if c["op"] == "==" and 2 <= len(idx.groups((c["column"],))) <= MAX_GROUPS:
            return c, where[:i] + where[i + 1 :]
    return None


def _group_chart(
    table: Table, agg: str, column: str | None, by: str, where: list[dict], d: int,
    highlight: frozenset[str] = frozenset(),
) -> ChartData | None:
    spec = {"agg": agg, "column": column, "by": by, "where": where}
    values = group_values(table, spec)  # largest first
    if pd.api.types.is_numeric_dtype(table.df[by].dtype):  # years, counts: in their own order
        keys = {format_value(k, table.units.get(by), 2): k for k in index_for(table).groups((by,))}
        values.sort(key=lambda kv: keys[kv[0]])
    bars, note = _capped(values, "groups")
    if len(bars) < 2:
        return None
    what = _axis_label(table, agg, column, unit=False)
    title = f"{what[0].upper()}{what[1:]} by {col_words(table, by)}{_among(table, where, d)}"
    return ChartData(title, _axis_label(table, agg, column), bars, highlight, note, d)


def _aggregate(table: Table, p: dict, d: int) -> ChartData | None:
    found = _by_condition(table, p["where"])
    if found is None:
        return None
    cond, rest = found
    asked = format_value(cond["value"], table.units.get(cond["column"]), 2)
    column = p.get("column") if p["agg"] != "count" else None
    return _group_chart(table, p["agg"], column, cond["column"], rest, d, frozenset({asked}))


def _group(table: Table, p: dict, d: int) -> ChartData | None:
    column = p.get("column") if p["agg"] != "count" else None
    return _group_chart(table, p["agg"], column, p["by"], p["where"], d)


def _row_bars(table: Table, rows: Sequence[int], column: str) -> list[tuple[str, float]]:
    idx = index_for(table)
    x = idx.numeric(column)
    return [(idx.entity_name(int(r)), float(x[r])) for r in rows if not np.isnan(x[r])]


def _summary_group(table: Table, p: dict, d: int) -> ChartData | None:
    numeric = set(table.columns_of("numeric"))
    column = next((c for c in p["columns"] if c in numeric), None)
    if column is None:
        return None
    rows = rows_where(table, p["where"])
    if table.entity_column is not None and 2 <= len(rows) <= MAX_BARS:
        bars = sorted(_row_bars(table, rows, column), key=lambda kv: -kv[1])
        if len(bars) >= 2:
            nouns = plural(entity_noun(table))
            title = f"{col_words(table, column).capitalize()} of the {len(rows)} {nouns}" + (
                _among(table, p["where"], d)
            )
            return ChartData(title, _column_label(table, column), tuple(bars), decimals=d)
    return _aggregate(table, {"agg": "mean", "column": column, "where": p["where"]}, d)


def _ranked(table: Table, p: dict, d: int, k: int, winner: bool) -> ChartData | None:
    spec = {"k": k, "direction": p["direction"], "column": p["column"], "where": p["where"]}
    rows = top_rows(table, spec)
    bars, note = _capped(_row_bars(table, rows, p["column"]), "rows (ties kept)")
    if len(bars) < 2:
        return None
    most = "highest" if p["direction"] == "max" else "lowest"
    nouns = plural(entity_noun(table))
    title = (f"The {len(bars)} {nouns}{_among(table, p['where'], d)} with the {most} "
             f"{col_words(table, p['column'])}")
    highlight = frozenset({bars[0][0]}) if winner else frozenset()
    return ChartData(title, _column_label(table, p["column"]), bars, highlight, note, d)


def _superlative(table: Table, p: dict, d: int) -> ChartData | None:
    return _ranked(table, p, d, SUPERLATIVE_BARS, winner=True)


def _top(table: Table, p: dict, d: int) -> ChartData | None:
    return _ranked(table, p, d, p["k"], winner=False)


def _compare(table: Table, p: dict, d: int) -> ChartData | None:
    bars = _row_bars(table, p["row_ids"], p["column"])
    if len(bars) < 2:
        return None  # an empty cell: the reply says so, there is nothing to compare
    try:
        highlight = frozenset({run_program(table, p)})
    except ProgramError:  # a tie: both bars, neither highlighted
        highlight = frozenset()
    a, b = p["entities"]
    title = f"{col_words(table, p['column']).capitalize()} of {a} and {b}"
    return ChartData(title, _column_label(table, p["column"]), tuple(bars), highlight, "", d)


# op → the chart of a program with that op (an op missing here gets no chart).
CHARTS: dict[str, Callable[[Table, dict, int], ChartData | None]] = {
    "aggregate": _aggregate,
    "group": _group,
    "summary_group": _summary_group,
    "superlative": _superlative,
    "top": _top,
    "compare": _compare,
}


def chart_data(table: Table, program: Mapping[str, Any]) -> ChartData | None:
    """The bars behind a program's answer, or None when it has no chart (a lookup, one group).

    Raises:
        ProgramError: The program does not run on `table`.
    """
    make = CHARTS.get(program.get("op", ""))
    if make is None:
        return None
    p = {"where": [], **program}
    try:
        return make(table, p, int(p.get("decimals", 2)))
    except KeyError as e:
        raise ProgramError(f"program {p.get('op')!r} lacks key {e}") from None


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def bar_figure(data: ChartData) -> Figure:
    """A horizontal bar chart of `data` (first bar on top, highlighted bars in blue)."""
    labels = [label for label, _ in data.bars]
    values = [value for _, value in data.bars]
    height = min(8.0, 1.2 + 0.34 * len(labels))
    fig = Figure(figsize=(6.4, height), layout="constrained")
    ax = fig.add_subplot()
    colors = [HIGHLIGHT_COLOR if label in data.highlight else BAR_COLOR for label in labels]
    ypos = np.arange(len(labels))
    bars = ax.barh(ypos, values, color=colors)
    ax.set_yticks(ypos, labels=[_short(label) for label in labels], fontsize=8)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[format_number(v, data.decimals) for v in values], padding=3,
                 fontsize=8)
    ax.set_xlabel(data.value_label + (f" — {data.note}" if data.note else ""), fontsize=9)
    ax.set_title("\n".join(textwrap.wrap(data.title, 60)), fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.15)
    return fig


def chart_for(state: Mapping[str, Any], tables: Sequence[Table]) -> Figure | None:
    """The chart of a graph turn: its ``table_program`` over its ``table``, else None.

    Args:
        state: The turn's graph state (or the merged updates of its nodes).
        tables: The tables the graph answers about (the turn's ``table`` is looked up by name).
    """
    program, name = state.get("table_program"), state.get("table")
    if not program or not name:
        return None
    table = next((t for t in tables if t.name == name), None)
    if table is None:
        return None
    try:
        data = chart_data(table, program)
    except ProgramError as e:  # the answer says why the program did not run
        log.info("no chart for %s: %s", program.get("op"), e)
        return None
    return bar_figure(data) if data is not None else None
