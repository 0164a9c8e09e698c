"""How a graph turn looks in the chat: step titles and bodies, the rows table, starter questions.

Pure functions of the graph's stream events and state, with no Chainlit import, so the look of
every step is unit-tested without a UI. `app.app` only hands their output to Chainlit.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from data_loaders.serialize import format_value
from data_loaders.table import Table

# Nodes whose model tokens are the reply (the route picks one of them per turn).
ANSWER_NODES = ("qa", "summarizer", "validator")
# Graph route name → dataset task label (data_loaders.schema.Task).
TASK_OF_ROUTE = {"qa": "qa", "summarizer": "summarize", "validator": "validate"}

# Step titles double as Chainlit avatar ids, which allow only letters, digits, " _.-".
STEP_TITLES = {
    "process_input": "Read the question",
    "route": "Route",
    "qa": "Answer - question answering",
    "summarizer": "Answer - summary",
    "validator": "Answer - claim check",
    "finalize": "Check against the table",
}
ROUTE_WHY = {
    "qa": "a question about values in the table",
    "summarizer": "a request to describe rows or a group",
    "validator": "a claim to check against the table",
}

# Welcome-screen icon (Chainlit shows a profile's description only next to an icon); inline, so
# the page needs no network.
_ICON_SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64'>"
    "<rect width='64' height='64' rx='14' fill='#2563eb'/>"
    "<g fill='none' stroke='#fff' stroke-width='4'>"
    "<rect x='12' y='14' width='40' height='36' rx='3'/>"
    "<path d='M12 26h40M12 38h40M28 14v36'/></g></svg>"
)
TABLE_ICON = "data:image/svg+xml;base64," + base64.b64encode(_ICON_SVG.encode()).decode()

_ROW_LINE = re.compile(r"^\[row (\d+)\]\s?(.*)$")
_FACT_LINE = re.compile(r"^\[fact\]\s?(.*)$")


@dataclass
class StepView:
    """One graph node as a chat step: a title, a markdown body, optional rows table."""

    node: str
    title: str
    body: str
    rows: pd.DataFrame | None = None
    facts: list[str] = field(default_factory=list)


def parse_context(context: str) -> tuple[pd.DataFrame, list[str]]:
    """Split a serialized context into its rows (a frame indexed by row id) and fact lines.

    The context is exactly what the model read (`data_loaders.serialize` format), so the table
    shown in the chat is the evidence the answer rests on, cell for cell.
    """
    records: list[dict[str, str]] = []
    ids: list[int] = []
    facts: list[str] = []
    for line in context.splitlines():
        line = line.strip()
        if m := _ROW_LINE.match(line):
            cells: dict[str, str] = {}
            for cell in m.group(2).split(" | "):
                name, sep, value = cell.partition(": ")
                if sep:
                    cells[name.strip()] = value.strip()
            ids.append(int(m.group(1)))
            records.append(cells)
        elif m := _FACT_LINE.match(line):
            facts.append(m.group(1))
    frame = pd.DataFrame.from_records(records, index=pd.Index(ids, name="row"))
    return frame.fillna(""), facts


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, max_rows: int = 50) -> str:
    """A GitHub-markdown table of `frame` (index as the first column)."""
    shown = frame.head(max_rows)
    head = [shown.index.name or "", *map(str, shown.columns)]
    lines = ["| " + " | ".join(map(_md_cell, head)) + " |", "|" + "---|" * len(head)]
    for idx, row in shown.iterrows():
        lines.append("| " + " | ".join(_md_cell(v) for v in [idx, *row.tolist()]) + " |")
    if len(frame) > max_rows:
        lines.append(f"\n… {len(frame) - max_rows} more rows")
    return "\n".join(lines)


def _route_body(update: dict[str, Any]) -> str:
    task = update.get("task")
    lines = [f"**{task}** — {ROUTE_WHY.get(task, 'route')}"]
    scores = update.get("route_scores") or {}
    source = update.get("route_source") or ""
    if scores:
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        shown = ", ".join(f"{k} {v:.2f}" for k, v in ranked)
        lines.append(f"Model log-probabilities: {shown}.")
    program = update.get("program") or {}
    if source == "program" or program.get("text"):
        lines.append(f"The student read the request as `{program.get('masked', '')}` and wrote "
                     f"the program `{program.get('text', '')}`.")
        if program.get("confidence") is not None:
            lines.append(f"Lowest token probability: {program['confidence']:.2f}.")
        if program.get("error"):
            lines.append(f"It does not run: {program['error']}.")
        misread = [*(f"it leaves out {u}" for u in program.get("unused") or []),
                   *(program.get("contradicts") or []),
                   *(f"the request never names {c}" for c in program.get("unnamed") or [])]
        if misread:
            lines.append("It misreads the request: " + "; ".join(misread) + ".")
        if program.get("judgment"):
            lines.append("The request asks for a reason or judgment ("
                         + ", ".join(program["judgment"]) + "), which no program computes.")
    if source == "rules":
        lines.append("Decided by keyword rules (the model's scores were not confident enough).")
    elif source == "program":
        lines.append("Decided by the program's operation.")
    elif source:
        lines.append(f"Decided by: {source}.")
    return "\n\n".join(lines)


def verdict_markdown(verdict: dict[str, Any]) -> str:
    """The table check as markdown: supported or not, why, who checked, and the evidence lines."""
    if not verdict:
        return "No table check for this turn."
    from graphs.validation import verdict_label

    label = verdict_label(verdict)
    lines = [f"**{label[0].upper()}{label[1:]}**"]
    if reason := verdict.get("reason"):
        lines.append(str(reason))
    if checked_by := verdict.get("checked_by"):
        lines.append(f"Checked by: {checked_by}.")
    evidence = verdict.get("evidence") or []
    if evidence:
        lines.append("Evidence:\n" + "\n".join(f"- `{e}`" for e in evidence))
    return "\n\n".join(lines)


def answered_by_text(answered_by: str | None, model_label: str | None = None) -> str:
    """Who produced the reply, in words."""
    who = answered_by or "none"
    if who.endswith("(unsupported)"):
        return answered_by_text(who.removesuffix("(unsupported)").strip(), model_label) + (
            " Its answer was not supported by the table, so the reply says so."
        )
    if who == "program":
        return (f"The student model{f' ({model_label})' if model_label else ''} wrote the "
                "program; the table computed the answer.")
    if who == "program + student prose":
        return (f"The student model{f' ({model_label})' if model_label else ''} wrote the "
                "program and worded the facts the table computed; every number, name and value "
                "in its prose was checked against those facts.")
    if who == "program (asked back)":
        return ("The student was unsure of its reading, or its program misreads the request's "
                "own words, so the reply asks before answering.")
    if who == "program (facts for a free question)":
        return ("The request asks for a reason or a judgment the table cannot compute; the "
                "reply shows the facts the student's program computed, not marked as the answer.")
    if who == "program (failed)":
        return "The student's program did not run on the table; the reply says why."
    if who == "student":
        return f"Answered by the student model{f' ({model_label})' if model_label else ''}."
    if who.startswith("fallback"):
        name = who.partition(":")[2]
        named = f" ({name})" if name else ""
        return f"Answered by the fallback model{named} after the student's answer failed the check."
    if who == "table":
        return "Answered from the table directly (no model call)."
    return "No model answered this turn."


def step_view(
    node: str,
    update: dict[str, Any],
    model_label: str | None = None,
    state: dict[str, Any] | None = None,
) -> StepView:
    """Turn one node's state update into a chat step.

    Args:
        node: The graph node that ran.
        update: What it wrote to the state.
        model_label: Name of the student model, for "answered by".
        state: The turn's state so far; ``finalize`` reports the check made by the task node.
    """
    title = STEP_TITLES.get(node, node)
    parts: list[str] = []
    rows = None
    facts: list[str] = []
    if node == "process_input":
        if update.get("rejected"):
            parts.append(f"Refused: {update['rejected']}")
        query, raw = update.get("query"), update.get("raw_query")
        if query and raw and query != raw:
            parts.append(f"Read as: *{query}* (follow-up resolved from the previous turn)")
        elif query:
            parts.append(f"Question: *{query}*")
    elif node == "route":
        if update.get("task"):
            title = f"Route to {update['task']}"
            parts.append(_route_body(update))
    elif node in ANSWER_NODES:
        if context := update.get("context"):
            rows, facts = parse_context(context)
            where = f" of table **{update['table']}**" if update.get("table") else ""
            n_facts = f", {len(facts)} facts" if facts else ""
            parts.append(f"{len(rows)} supporting rows{where}{n_facts}.")
            if len(rows):
                parts.append(markdown_table(rows))
            if facts:
                parts.append("\n".join(f"- {f}" for f in facts))
        elif update:
            parts.append("No rows of the tables match the question.")
        if update.get("answered_by"):
            parts.append(answered_by_text(update["answered_by"], model_label))
        if (prose := update.get("prose")) and prose.get("why"):
            parts.append(f"The student's prose was not shown ({prose['why']}): "
                         f"*{prose.get('text', '')[:300]}*")
        if update.get("attempts", 0) > 1:
            parts.append(f"Model calls this turn: {update['attempts']}.")
    elif node == "finalize":
        turn = {**(state or {}), **update}
        if turn.get("rejected"):
            parts.append("The message was refused before any table lookup.")
        else:
            parts.append(verdict_markdown(turn.get("verdict") or {}))
            parts.append(answered_by_text(turn.get("answered_by"), model_label))
    if not parts:
        parts.append("Done.")
    return StepView(node=node, title=title, body="\n\n".join(parts), rows=rows, facts=facts)


def _numeric_column(table: Table) -> str | None:
    cols = table.columns_of("numeric")
    return cols[0] if cols else None


def starter_questions(table: Table) -> list[tuple[str, str]]:
    """One (label, message) per task, made from a real row of `table`.

    QA asks a numeric (else any) column of an entity, summary asks about the entity, and the
    claim states that row's true value so the check has something to confirm.
    """
    if table.df.empty:
        return []
    row_id = 0
    entity = table.entity_of(row_id)
    others = [c for c in table.columns if c != table.entity_column]
    col = _numeric_column(table) or (others[0] if others else None)
    out: list[tuple[str, str]] = []
    if col is not None:
        name = table.display_name(col)
        out.append(("Ask a question", f"What is the {name} of {entity}?"))
    out.append(("Summarize a row", f"Summarize {entity}."))
    if col is not None:
        value = format_value(table.df.iloc[row_id][col], table.units.get(col))
        name = table.display_name(col)
        out.append(("Check a claim", f"Is it true that {entity} has a {name} of {value}?"))
    return out


def table_line(table: Table) -> str:
    """``<table>`` (<n> rows × <m> columns, one row per <entity column>)."""
    rows, cols = table.df.shape
    entity = ""
    if table.entity_column:
        entity = f", one row per {table.display_name(table.entity_column)}"
    return f"**{table.name}** ({rows} rows × {cols} columns{entity})"


def welcome_markdown(tables: list[Table], model_label: str) -> str:
    """The welcome-screen text: which tables and which model this chat uses."""
    if tables:
        shown = "; ".join(table_line(t) for t in tables)
        what = f"Ask about {shown}."
    else:
        what = "No table is loaded: attach a CSV, JSON or Parquet file to ask about it."
    return (
        f"{what}\n\nAnswers come from the {model_label}. Each answer shows the graph's steps: "
        "the route, the supporting rows, the table check and which model answered."
    )
