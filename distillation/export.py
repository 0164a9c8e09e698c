"""Export a trained student as a plain Hugging Face model directory, with its model card.

The directory this module writes is the hand-off to every later stage: it loads with plain
``AutoModelForCausalLM.from_pretrained(dir)`` / ``AutoTokenizer.from_pretrained(dir)``, holds
safetensors weights, the tokenizer with its chat template, a ``generation_config.json`` that stops
at the tokenizer's eos, a ``README.md`` model card and ``training_metadata.json``. LoRA adapters
are merged into the weights by default. The directory is written aside and renamed into place,
so a crash never leaves a half-written model.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from data_loaders.io import atomic_dir, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CARD_JSON = "model_card.json"
"""The card's data beside README.md, so a later stage can add to it and re-render."""

METADATA_JSON = "training_metadata.json"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency, but an exporter needs none for a plain model
        return False
    return isinstance(model, PeftModel)


def _base_name(model: Any) -> str | None:
    """The spec/path the (PEFT) model's base was loaded from, if known."""
    cfg = getattr(model, "peft_config", None)
    if cfg:
        first = next(iter(cfg.values()))
        if getattr(first, "base_model_name_or_path", None):
            return first.base_model_name_or_path
    return getattr(getattr(model, "config", None), "name_or_path", None) or None


def export_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    *,
    merge_lora: bool = True,
    card: dict | None = None,
    metadata: dict | None = None,
) -> Path:
    """Save ``model`` and ``tokenizer`` to ``out_dir`` as a self-contained model directory.

    Args:
        model: a plain causal LM or a ``PeftModel``. It is never modified: LoRA is merged into
            a copy (which briefly needs the model's memory twice).
        tokenizer: saved with its chat template.
        out_dir: destination, replaced atomically if it exists.
        merge_lora: merge a ``PeftModel``'s adapters into the weights (the result is a plain
            model). ``False`` saves only the adapter, whose ``adapter_config.json`` names the base
            model; transformers loads such a directory if that base can be found.
        card: model card data, see `write_model_card`.
        metadata: extra JSON-serialisable facts for ``training_metadata.json`` (config, step
            counts, metrics).

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    peft = _is_peft(model)
    base = _base_name(model)
    merged = False
    if peft and merge_lora:
        model = copy.deepcopy(model).merge_and_unload()
        merged = True

    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_generation_config(model, tokenizer, tmp, saved_full_model=not (peft and not merged))
        card = dict(card or {})
        if peft and not merged:
            card.setdefault(
                "notes",
                f"This directory holds a LoRA adapter only; its base model is `{base}` "
                "(see adapter_config.json).",
            )
        write_model_card(tmp, card)
        meta = {
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "distillgraph_version": _version(),
            "format": "lora_adapter" if peft and not merged else "full_model",
            "lora_merged": merged,
            "base_model": base,
            **(metadata or {}),
        }
        atomic_write_json(tmp / METADATA_JSON, meta)
    return out_dir


def _write_generation_config(model, tokenizer, directory: Path, *, saved_full_model: bool) -> None:
    """Make sure ``generation_config.json`` stops at the tokenizer's eos and knows its pad id."""
    from transformers import GenerationConfig

    path = directory / "generation_config.json"
    if path.exists():
        gen = GenerationConfig.from_pretrained(directory)
    elif saved_full_model and getattr(model, "generation_config", None) is not None:
        gen = copy.deepcopy(model.generation_config)
    else:
        return
    changed = False
    for attr in ("eos_token_id", "pad_token_id", "bos_token_id"):
        if getattr(gen, attr, None) is None and getattr(tokenizer, attr, None) is not None:
            setattr(gen, attr, getattr(tokenizer, attr))
            changed = True
    if changed or not path.exists():
        gen.save_pretrained(directory)


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("distillgraph")
    except PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------


def _hub_id(name: Any) -> str | None:
    """The Hub id for a model name, if it is one (``"embedded"`` maps to SmolLM2's)."""
    from distillation.embedded import EMBEDDED_HUB_ID, EMBEDDED_TEACHER

    if name == EMBEDDED_TEACHER:
        return EMBEDDED_HUB_ID
    if isinstance(name, str) and _HUB_ID.match(name) and not Path(name).exists():
        return name
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict]) -> str:
    """Render a list of dicts as a Markdown table (columns in first-seen order)."""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def _as_rows(value: Any) -> list[dict] | None:
    """Accept a list of dicts, or a ``{name: value}`` / ``{name: {col: value}}`` mapping."""
    if isinstance(value, list) and all(isinstance(r, dict) for r in value):
        return value
    if isinstance(value, dict):
        if all(isinstance(v, dict) for v in value.values()):
            return [{"": k, **v} for k, v in value.items()]
        return [{"metric": k, "value": v} for k, v in value.items()]
    return None


def render_model_card(card: dict) -> str:
    """Render card data as README.md text (YAML front matter, then Markdown sections).

    Known keys, all optional: ``title``, ``summary``, ``library_name`` (front matter; default
    ``transformers``), ``tags`` (added to the front matter's), ``base_model`` (the student's
    starting point), ``teacher``, ``data`` (str or dict), ``headline`` and ``metrics`` and
    ``evaluation`` (tables: a list of row dicts or a mapping), ``config`` (dict, shown as YAML),
    ``notes``, and ``sections`` (``{heading: markdown}``) for anything else.
    """
    base = card.get("base_model")
    front: dict[str, Any] = {
        "library_name": card.get("library_name", "transformers"),
        "pipeline_tag": "text-generation",
    }
    if _hub_id(base):
        front["base_model"] = _hub_id(base)
    front["tags"] = ["distillgraph", "distillation", *card.get("tags", [])]
    out = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", ""]
    out += [f"# {card.get('title', 'Distilled student model')}", ""]
    out += [
        card.get(
            "summary",
            "A small causal language model distilled with distillgraph to answer questions "
            "about tables. Load it with `AutoModelForCausalLM.from_pretrained(<this dir>)`; "
            "prompt it with the tokenizer's chat template.",
        ),
        "",
    ]

    facts = []
    for key, label in (("teacher", "Teacher"), ("base_model", "Student initialised from")):
        if card.get(key) is not None:
            hub = _hub_id(card[key])
            shown = f"`{card[key]}`" + (f" ({hub})" if hub and hub != card[key] else "")
            facts.append(f"- **{label}:** {shown}")
    if facts:
        out += ["## Models", "", *facts, ""]
    data = card.get("data")
    if data is not None:
        out += ["## Data", ""]
        if isinstance(data, dict):
            out += [f"- **{k}:** {_fmt(v)}" for k, v in data.items()]
        else:
            out.append(str(data))
        out.append("")
    for key, heading in (
        ("headline", "Headline results"),
        ("evaluation", "Evaluation"),
        ("metrics", "Training metrics"),
    ):
        rows = _as_rows(card.get(key))
        if rows:
            out += [f"## {heading}", "", _table(rows), ""]
    if card.get("config"):
        dumped = yaml.safe_dump(
            json.loads(json.dumps(card["config"], default=str)), sort_keys=False
        )
        out += ["## Training configuration", "", "```yaml", dumped.rstrip(), "```", ""]
    for heading, body in (card.get("sections") or {}).items():
        out += [f"## {heading}", "", str(body).rstrip(), ""]
    if card.get("notes"):
        out += ["## Notes", "", str(card["notes"]), ""]
    return "\n".join(out)


def write_model_card(out_dir: Path, card: dict) -> None:
    """Write ``README.md`` (rendered) and ``model_card.json`` (the data) into ``out_dir``.

    To add to an existing card (e.g. evaluation's headline table), read it with
    `read_model_card`, update the dict and call this again. Both files are written atomically.
    """
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / CARD_JSON, json.loads(json.dumps(card, default=str)))
    atomic_write_text(out_dir / "README.md", render_model_card(card))


def read_model_card(model_dir: Path) -> dict:
    """Return the card data written by `write_model_card` (``{}`` if there is none)."""
    path = Path(model_dir) / CARD_JSON
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
