"""How a typed table is described: what names its rows, what is left out, how columns read.

`describe` takes a loaded, typed table and settles, config first and then from the data:

* the entity: ``table.entity_column`` (one column, or a list of columns that name rows
  together), else the best single name column (`columns.detect_entity_column`), else two
  columns that are unique together (`columns.detect_entity_pair`), else none (rows are
  ``row N``). A name made of several columns gets a column of its own (``"county, state"``
  holding ``"NOBLE, IN"``) that is the entity column from then on; rows without a name, then
  rows repeating an earlier row's name, are dropped (the first is kept);
* index columns (`columns.index_columns`: ``rownames``, ``PID``, a leading row counter) are left
  out, unless the config names them or leaving them out would leave nothing to ask about;
* display names and units read from column names (`naming.unit_from_name`), which the config's
  ``alias``/``unit`` override;
* the row noun: ``table.entity_noun``, else the table name's (`naming.row_noun`), else the
  entity column name's (``county``), else ``entry``.

Each decision and its reason go into a `TableChoices` (printed by ``distillgraph prepare`` and
kept in ``manifest.json``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_loaders.choices import TableChoices
from data_loaders.columns import (
    MIN_ENTITY_UNIQUE,
    detect_entity_column,
    detect_entity_pair,
    entity_key_values,
    index_columns,
    is_index_name,
)
from data_loaders.config import ColumnType, TableConfig
from data_loaders.errors import InputError
from data_loaders.naming import row_noun, unit_from_name

logger = logging.getLogger("data_loaders.loaders")  # one logger for the whole loading step

USABLE_TYPES = ("numeric", "categorical", "date")
DEFAULT_NOUN = "entry"


@dataclass
class Description:
    """A table's columns and names once every choice is made (see the module docstring)."""

    df: pd.DataFrame
    column_types: dict[str, ColumnType]
    entity_column: str | None
    entity_parts: tuple[str, ...]
    display: dict[str, str]
    units: dict[str, str]
    noun: str
    choices: TableChoices


def describe(
    df: pd.DataFrame,
    types: dict[str, ColumnType],
    *,
    name: str,
    source: str,
    config: TableConfig,
    choices: TableChoices,
) -> Description:
    """Choose the entity, drop index columns, read names and units, find the row noun.

    Args:
        df: The typed table (columns in table order).
        types: Column name to type, in table order.
        name: The table's name (file stem or SQL table), read for the row noun.
        source: Where it came from, for messages.
        config: The table config; what it sets wins over every heuristic.
        choices: Where the decisions are recorded (holds the config's own already).

    Returns:
        The described table.

    Raises:
        InputError: Configured entity columns that are not unique together.
    """
    parts = config.entity_columns
    if len(parts) == 1:
        choices.entity = "set in the config"
    elif parts:
        _check_unique_together(df, parts, source)
        choices.entity = "set in the config"
    elif (single := detect_entity_column(df, types)) is not None:
        parts = [single]
        choices.entity = "detected: the most unique short text column"
    elif (pair := detect_entity_pair(df, types)) is not None:
        parts = list(pair)
        choices.entity = "detected: no column names rows alone; these are unique together"
    else:
        choices.entity = "no column or pair of columns names the rows: they are called 'row N'"

    keep = {*parts, *config.columns}
    found = index_columns(df, types, keep)
    rest = [c for c, t in types.items() if t in USABLE_TYPES and c not in found and c not in parts]
    if found and not rest:
        logger.info("%s: kept index-like columns %s: nothing else to ask about", source, found)
        found = {}
    if found:
        df = df.drop(columns=list(found))
        types = {c: t for c, t in types.items() if c not in found}
        choices.ignored.update(found)

    entity = parts[0] if len(parts) == 1 else None
    if len(parts) > 1:
        entity = ", ".join(parts)
        if entity in df.columns:
            entity += " (name)"
        df = df.copy()
        df.insert(0, entity, entity_key_values(df, parts))
        types = {entity: "text", **types}
    if entity is not None:
        df = unique_entities(df, entity, source)

    _read_names(types, entity, choices)
    display = {c: r["alias"] for c, r in choices.from_names.items() if "alias" in r}
    units = {c: r["unit"] for c, r in choices.from_names.items() if "unit" in r}
    for col, cc in config.columns.items():
        if col not in types:
            continue
        if cc.alias:
            display[col] = cc.alias
        if cc.unit:
            units[col] = cc.unit
        elif cc.unit == "":  # the config says: no unit, whatever the name says
            units.pop(col, None)
    noun = _row_noun(config, name, parts, choices)
    return Description(
        df, types, entity, tuple(parts) if len(parts) > 1 else (), display, units, noun, choices
    )


def _check_unique_together(df: pd.DataFrame, parts: list[str], source: str) -> None:
    both = df[parts].dropna()
    repeated = both.duplicated(keep="first")
    if len(both) and 1 - repeated.mean() >= MIN_ENTITY_UNIQUE:
        return
    example = entity_key_values(both[repeated].head(1), parts)
    shown = f" (e.g. {example.iloc[0]!r})" if len(example) else ""
    raise InputError(
        f"{source}: entity_column {parts} is not unique together: {int(repeated.sum())} of "
        f"{len(both)} rows repeat an earlier row's values{shown}; add a column to the list "
        "or name another column"
    )


def _read_names(types: dict[str, ColumnType], entity: str | None, choices: TableChoices) -> None:
    """Display names and units read from numeric column names; R row names read as 'name'."""
    for col, kind in types.items():
        if kind != "numeric" or col == entity:
            continue
        read = unit_from_name(col, types)
        if read is not None:
            choices.from_names[col] = {"alias": read[0], "unit": read[1]}
    if (
        entity is not None
        and is_index_name(entity)
        and not any(c.lower() == "name" for c in types)
    ):
        choices.from_names[entity] = {"alias": "name"}


def _row_noun(
    config: TableConfig, name: str, parts: list[str], choices: TableChoices
) -> str:
    if config.entity_noun:
        choices.noun = "set in the config"
        return config.entity_noun
    noun = row_noun(name)
    if noun is not None:
        choices.noun = f"read from the table name {name!r}"
        return noun
    noun = row_noun(parts[0]) if parts else None
    if noun is not None:
        choices.noun = f"read from the entity column {parts[0]!r} ({name!r} is not a noun)"
        return noun
    choices.noun = f"{name!r} does not read as a noun; name what one row is"
    return DEFAULT_NOUN


def unique_entities(df: pd.DataFrame, entity: str, source: str) -> pd.DataFrame:
    """Drop rows with no entity value, then rows repeating an earlier entity (keep the first)."""
    missing = df[entity].isna()
    duplicate = df[entity].duplicated(keep="first") & ~missing
    n_missing, n_dup = int(missing.sum()), int(duplicate.sum())
    if n_missing:
        logger.warning("%s: dropped %d rows with no %r value", source, n_missing, entity)
    if n_dup:
        examples = df.loc[duplicate, entity].head(3).astype(str).tolist()
        logger.warning(
            "%s: dropped %d rows whose %r repeats an earlier row (kept the first), e.g. %s",
            source,
            n_dup,
            entity,
            ", ".join(examples),
        )
    if n_missing or n_dup:
        df = df.loc[~(missing | duplicate)].reset_index(drop=True)
    if df.empty:
        raise InputError(f"{source}: no row has a value in the entity column {entity!r}")
    values = df[entity]
    if pd.api.types.is_float_dtype(values.dtype) and np.all(np.mod(values.to_numpy(), 1) == 0):
        df[entity] = values.astype("int64")  # ids read as floats because of nulls
    return df
