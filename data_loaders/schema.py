"""The dataset record: one question–answer pair as written to ``train/val/test.jsonl``.

Every later stage reads these fields, so they change only with a format version bump
(`DATASET_FORMAT_VERSION`, recorded in ``manifest.json``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

DATASET_FORMAT_VERSION = 1

Task = Literal["qa", "summarize", "validate"]
QUESTION_TYPES = (
    "lookup",
    "compare",
    "superlative",
    "aggregate",
    "claim",
    "summary_row",
    "summary_group",
    "list",
    "top",
    "distinct",
    "group",
)
TASK_OF_TYPE: dict[str, str] = {
    "lookup": "qa",
    "compare": "qa",
    "superlative": "qa",
    "aggregate": "qa",
    "claim": "validate",
    "summary_row": "summarize",
    "summary_group": "summarize",
    "list": "qa",
    "top": "qa",
    "distinct": "qa",
    "group": "qa",
}


class Provenance(BaseModel):
    """Where an answer comes from, and the program that recomputes it from the table."""

    source: str = Field(description="Path or SQL URL (password removed) of the source table.")
    table: str = Field(description="Table name (file stem or SQL table).")
    table_hash: str = Field(description="sha256 of the table's content (first 16 hex digits).")
    row_ids: list[int] = Field(description="Row ids (0-based positions) the answer rests on.")
    columns: list[str] = Field(description="Columns the answer reads.")
    program: dict[str, Any] = Field(
        description="Structured spec that `data_loaders.programs.run_program` re-executes."
    )


class QAPair(BaseModel):
    """One training/evaluation example."""

    id: str = Field(description="Stable id: hash of table, template and slots.")
    task: Task = Field(description="Route label for the agent graph.")
    qtype: str = Field(description="Question type, one of QUESTION_TYPES.")
    template: str = Field(description="Template id, e.g. 'lookup/2'.")
    question: str
    answer: str = Field(description="Normalized answer text (numbers rounded, units appended).")
    context: str = Field(description="Supporting rows and facts in the `serialize` format.")
    entities: list[str] = Field(description="Entity names the pair mentions or shows.")
    provenance: Provenance
    program_input: str | None = Field(
        None,
        description="The program prompt's user message: compact schema, mention slots and the "
        "request with its mentions masked (`data_loaders.program_text.program_messages`).",
    )
    program_text: str | None = Field(
        None,
        description="The program in the student's one-line language over the mention slots "
        "(the training target); None when the request does not show every mention it needs.",
    )
    prose_input: str | None = Field(
        None,
        description="Summary pairs: the prose prompt's user message, the facts the table computes "
        "for the summary program as slots E1/F1 (`data_loaders.prose.prose_messages`).",
    )
    prose_text: str | None = Field(
        None,
        description="Summary pairs: those facts worded as prose over the slots (the training "
        "target; filled in by `data_loaders.prose.unmask`, it passes `check_prose`).",
    )
