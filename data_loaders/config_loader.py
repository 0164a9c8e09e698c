"""One config system for every stage: YAML validated into pydantic models, plus overrides.

`load_config(Model, path, ["a.b=3", "c=x"])` reads the YAML file (optional), applies
`key=value` overrides (dotted keys reach nested sections; values are parsed as YAML scalars, so
`3`, `0.5`, `true`, `null` and `[1, 2]` work), and validates. Unknown keys are refused with a
message naming them, because every config model sets ``extra="forbid"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from data_loaders.errors import InputError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config models: unknown keys refused, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into a nested dict ``{"a": {"b": 1}, "c": "x"}``."""
    out: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise InputError(f"override {item!r} is not key=value; write it as e.g. seed=3")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def deep_merge(base: dict, update: dict) -> dict:
    """Return `base` updated recursively with `update` (neither is modified)."""
    merged = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = deep_merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with a one-line error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the config must be a YAML mapping of key: value")
    return data


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line naming every bad field and why."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}' (check the spelling; see configs/ for valid keys)")
        else:
            parts.append(f"'{loc}': {e['msg']}")
    return f"{source}: " + "; ".join(parts)


def validate_config(model: type[M], data: dict, source: str = "config") -> M:
    """Validate a dict into `model`, turning pydantic errors into a one-line `InputError`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InputError(format_validation_error(e, source)) from None


def load_config(
    model: type[M],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    section: str | None = None,
) -> M:
    """Load YAML `path` (optional), apply overrides, validate into `model`.

    Args:
        model: The pydantic config class.
        path: YAML file; ``None`` starts from the model's defaults.
        overrides: ``key=value`` strings applied on top of the file.
        section: If given, read only this top-level section of the YAML file.
    """
    data = read_yaml(path) if path else {}
    if section is not None:
        data = data.get(section, {}) or {}
    data = deep_merge(data, parse_overrides(overrides))
    return validate_config(model, data, str(path) if path else "config")
