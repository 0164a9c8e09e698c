"""What loading worked out about a table the config did not fully describe, and why.

`TableChoices` records the decisions (entity column or columns, row noun, columns left out,
display names and units read from column names) with a reason for each. `choices_yaml` says them
back as a ``table:`` section, comments giving the reasons, which validates into `TableConfig`
and loads the same table again: ``distillgraph prepare`` prints it so a user can confirm or
change each choice, and ``manifest.json`` keeps it with `choices_record`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_loaders.table import Table

COMMENT_AT = 44  # column where the reason comments start, so they line up
_PLAIN = re.compile(r"[A-Za-z_][\w .\-/]*")
_YAML_WORDS = {"null", "true", "false", "yes", "no", "on", "off", "y", "n", "~"}


@dataclass
class TableChoices:
    """Decisions made while loading one table, each with the reason.

    Attributes:
        entity: Why the entity column(s) were chosen, or why rows have no names.
        noun: Where the row noun comes from.
        ignored: Column → why it is left out of questions and context.
        from_names: Column → ``{"alias": ..., "unit": ...}`` read from its name.
        configured: Column → the settings the config gave it (alias, unit, type, ignore).
    """

    entity: str = ""
    noun: str = ""
    ignored: dict[str, str] = field(default_factory=dict)
    from_names: dict[str, dict[str, str]] = field(default_factory=dict)
    configured: dict[str, dict[str, Any]] = field(default_factory=dict)


def _scalar(value: Any) -> str:
    """A YAML scalar: plain when that reads back the same, else JSON-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = str(value)
    if _PLAIN.fullmatch(text) and text == text.strip() and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def _flow(settings: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in settings.items()) + "}"


def _line(text: str, note: str) -> str:
    return f"{text.ljust(COMMENT_AT)}  # {note}" if note else text


def entity_columns(table: Table) -> list[str]:
    """The columns naming the table's rows: the parts of a combined name, else the entity column."""
    if table.entity_parts:
        return list(table.entity_parts)
    return [table.entity_column] if table.entity_column else []


def choices_yaml(table: Table) -> str:
    """The table's reading as a ``table:`` section body (no ``table:`` line), one choice a line.

    Every column the config set, the loader left out or read a unit from gets a line, with
    the reason as a comment; pasted under ``table:`` it loads the same table.
    """
    from data_loaders.templates import entity_noun

    c = table.choices
    parts = entity_columns(table)
    if len(parts) > 1:
        entity = "[" + ", ".join(_scalar(p) for p in parts) + "]"
    else:
        entity = _scalar(parts[0] if parts else None)
    lines = [
        _line(f"entity_column: {entity}", c.entity),
        _line(f"entity_noun: {_scalar(entity_noun(table))}", c.noun),
    ]
    names = list(dict.fromkeys([*c.configured, *c.ignored, *c.from_names]))
    if names:
        lines.append("columns:")
    for col in names:
        configured = c.configured.get(col, {})
        read = {k: v for k, v in c.from_names.get(col, {}).items() if k not in configured}
        if col in c.ignored:
            settings, note = {"ignore": True}, c.ignored[col]
        else:
            settings = {**configured, **read}
            said = ["set in the config"] if configured else []
            note = "; ".join(said + ([f"{' and '.join(read)} read from the name"] if read else []))
        lines.append(_line(f"  {_scalar(col)}: {_flow(settings)}", note))
    return "\n".join(lines)


def choices_record(table: Table) -> dict[str, Any]:
    """What ``manifest.json`` keeps of a table's choices (with the pasteable section)."""
    from data_loaders.templates import entity_noun

    c = table.choices
    return {
        "entity_columns": entity_columns(table),
        "entity": c.entity,
        "entity_noun": entity_noun(table),
        "noun": c.noun,
        "ignored": dict(c.ignored),
        "units_read": {k: v["unit"] for k, v in c.from_names.items() if "unit" in v},
        "names_read": {k: v["alias"] for k, v in c.from_names.items() if "alias" in v},
        "table_yaml": "table:\n" + "\n".join("  " + ln for ln in choices_yaml(table).split("\n")),
    }
