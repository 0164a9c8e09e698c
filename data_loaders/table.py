"""The in-memory table every stage works on: a DataFrame plus what we know about its columns.

Row ids are 0-based positions after loading (``df`` has a RangeIndex); they are what
``[row N]`` in a context and ``provenance.row_ids`` refer to. A row named by several columns
together (``county`` + ``state``) has that name in a column of its own (``"county, state"``,
values ``"NOBLE, IN"``), which is then the entity column, so every stage looks names up the same
way; `Table.entity_parts` lists the columns it is made of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from data_loaders.choices import TableChoices
from data_loaders.config import ColumnType
from data_loaders.serialize import serialize_row


@dataclass
class Table:
    """A loaded table with typed columns, an entity column, display names and units.

    Attributes:
        entity_parts: The columns whose values make up the entity column's names, when rows
            are named by several columns together; empty otherwise.
        noun: What one row is called in questions ("car"); derived from the name when None
            (see `templates.entity_noun`).
        choices: Why the table reads as it does (entity, noun, ignored columns, units read).
    """

    name: str
    source: str
    df: pd.DataFrame
    content_hash: str
    column_types: dict[str, ColumnType]
    entity_column: str | None
    display: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    entity_parts: tuple[str, ...] = ()
    noun: str | None = None
    choices: TableChoices = field(default_factory=TableChoices)

    @property
    def columns(self) -> list[str]:
        """Usable columns (ignored ones already dropped), in table order."""
        return list(self.column_types)

    def display_name(self, col: str) -> str:
        """The name questions and context use for `col` (its alias, else the column name)."""
        return self.display.get(col, col)

    def columns_of(self, kind: ColumnType) -> list[str]:
        """Columns of one type, excluding the entity column."""
        return [c for c, t in self.column_types.items() if t == kind and c != self.entity_column]

    def row_text(self, row_id: int, columns: list[str] | None = None) -> str:
        """Serialize one row in the context format (entity column first)."""
        cols = columns or self.columns
        if self.entity_column and self.entity_column in cols:
            cols = [self.entity_column] + [c for c in cols if c != self.entity_column]
        row = self.df.iloc[row_id].to_dict()
        return serialize_row(row_id, row, cols, self.display, self.units)

    def entity_of(self, row_id: int) -> str:
        """The entity name of a row (its row id as text when there is no entity column)."""
        if self.entity_column is None:
            return f"row {row_id}"
        return str(self.df.iloc[row_id][self.entity_column])
