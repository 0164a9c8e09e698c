"""The one text format a model sees: table rows and facts serialized as context, plus the prompt.

Training pairs, evaluation and the agent graph all call these functions, so the student reads at
serving time exactly what it read in training.

Context format (one line per row or fact, no header):

    [row 12] name: chevrolet chevelle malibu | fuel economy: 18 mpg | cylinders: 8
    [fact] mean horsepower where origin = USA: 119.05 (over 245 rows)

* ``[row N]`` — N is the row id (0-based position in the source table, after loading).
* each cell is ``<display name>: <value>[ <unit>]`` (``%`` without the space); the display
  name is the column's alias from the config, else the column name; null cells are skipped;
  text is collapsed to one line and cut at 200 characters.
* ``[fact]`` lines carry values computed with pandas (counts, means, extremes) so the model
  reads rather than calculates.

Prompt: a short system message, then a user message holding the context, a blank line, and
``Question: <question>``. The answer is the assistant message.

Routing prompt (`build_route_messages`): the agent graph's router asks the student which task a
request is (``qa``, ``summarize`` or ``validate``: a dataset pair's ``task``). It holds the user's
request only, never table content, so a cell cannot steer the route; distillation adds such
routing examples to the training data so the student learns to answer it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, get_args

import pandas as pd

from data_loaders.schema import Task

SYSTEM_PROMPT = "Answer using only the table rows given. Reply briefly."
ROUTER_SYSTEM = (
    "Classify the user's request about a table. Reply with one word: "
    "qa (a question about values), summarize (describe rows or a group), "
    "or validate (check whether a claim is true)."
)
ROUTER_USER = "Request: {query}\nLabel:"
ROUTE_TASKS: tuple[str, ...] = get_args(Task)  # the answers of a routing prompt
MAX_CELL_CHARS = 200
_WS = re.compile(r"\s+")


def format_number(x: float | int, decimals: int = 2) -> str:
    """Normalize a number for display: integers without a decimal point, floats rounded.

    ``18.0 -> "18"``, ``3.14159 -> "3.14"``, ``2.50 -> "2.5"``, ``1234567 -> "1234567"``.
    """
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    xf = float(x)
    if math.isnan(xf):
        return ""
    if math.isinf(xf):
        return "inf" if xf > 0 else "-inf"
    r = round(xf, decimals)
    if r == int(r) and abs(r) < 1e15:
        return str(int(r))
    return f"{r:.{decimals}f}".rstrip("0").rstrip(".")


def format_value(value: Any, unit: str | None = None, decimals: int = 2) -> str:
    """Format one cell value (number, date, text) with its unit, as questions and answers use it."""
    if value is None or value is pd.NaT or value is pd.NA:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        value = value.item()
    if hasattr(value, "isoformat") and not isinstance(value, str):  # date / Timestamp
        s = value.isoformat()
        s = s[:10] if s.endswith("T00:00:00") or len(s) == 19 and s[11:] == "00:00:00" else s
        return s
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        s = format_number(value, decimals)
    else:
        s = _WS.sub(" ", str(value)).strip()
        if len(s) > MAX_CELL_CHARS:
            s = s[: MAX_CELL_CHARS - 1] + "…"
    if not unit or not s:
        return s
    return f"{s}{unit}" if unit == "%" else f"{s} {unit}"  # "12.5%", "18 mpg"


def serialize_row(
    row_id: int,
    row: Mapping[str, Any],
    columns: Sequence[str],
    display: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
) -> str:
    """Serialize one row as ``[row N] name: value | name: value unit | ...``."""
    display = display or {}
    units = units or {}
    cells = []
    for col in columns:
        v = format_value(row.get(col), units.get(col))
        if v != "":
            cells.append(f"{display.get(col, col)}: {v}")
    return f"[row {row_id}] " + " | ".join(cells)


def serialize_fact(text: str) -> str:
    """Serialize a computed fact as ``[fact] <text>``."""
    return f"[fact] {_WS.sub(' ', text).strip()}"


def build_messages(context: str, question: str) -> list[dict[str, str]]:
    """The chat messages for one example (without the answer)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"{context}\n\nQuestion: {question}"},
    ]


def build_route_messages(query: str) -> list[dict[str, str]]:
    """The chat messages asking which task a request is; the answer is one of `ROUTE_TASKS`."""
    return [
        {"role": "system", "content": ROUTER_SYSTEM},
        {"role": "user", "content": ROUTER_USER.format(query=query)},
    ]
