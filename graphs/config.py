"""Runtime settings of the agent graph: which model answers, over which tables, within which caps.

`GraphConfig` is validated from ``configs/graph.yaml`` (or any YAML) with
``load_config(GraphConfig, path, overrides)``; unknown keys are refused. The settings are plain
data: `graphs.graph.build_graph` turns them into loaded models, tables and a compiled graph.

Per call, ``config["configurable"]`` may change the settings the nodes read at every turn
(`PER_CALL_KEYS`: ``max_input_chars``, ``retrieval``, ``validation``), in the YAML's shape and
validated the same way, e.g. ``{"configurable": {"thread_id": "t", "retrieval": {"max_rows":
16}}}``; `GraphConfig.for_call` applies them, as react-agent's
``Configuration.from_runnable_config`` does. The models and tables are loaded once, when the
graph is built, so their keys are refused per call.

The environment variables a server-built graph (`graphs.graph.make_graph`) and the chat app
(`app.config`) both read are named here, once, with the demo's defaults:

=================================  ==============================================================
``DISTILLGRAPH_MODEL``             student model directory (default `DEFAULT_STUDENT_DIR` when
                                   it was trained, else the embedded teacher)
``DISTILLGRAPH_TABLES``            tables, separated by ``os.pathsep`` (default `DEFAULT_TABLES`)
``DISTILLGRAPH_GRAPH_CONFIG``      graph YAML (``configs/graph.yaml`` format); optional
``DISTILLGRAPH_TABLE_CONFIG``      YAML whose ``table:`` section has aliases/units (default
                                   `DEFAULT_TABLE_CONFIG` with the default tables)
=================================  ==============================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from data_loaders.config_loader import StrictModel, deep_merge, load_config, validate_config
from data_loaders.errors import InputError

ENV_MODEL = "DISTILLGRAPH_MODEL"
ENV_TABLES = "DISTILLGRAPH_TABLES"
ENV_GRAPH_CONFIG = "DISTILLGRAPH_GRAPH_CONFIG"
ENV_TABLE_CONFIG = "DISTILLGRAPH_TABLE_CONFIG"
ENV_GRAPH_SET = "DISTILLGRAPH_GRAPH_SET"

# GraphConfig keys one call may set in ``config["configurable"]`` (`GraphConfig.for_call`).
PER_CALL_KEYS = ("max_input_chars", "retrieval", "validation")

DEFAULT_STUDENT_DIR = "runs/demo/distill/student"
DEFAULT_TABLES = ("examples/data/cars.csv",)
DEFAULT_TABLE_CONFIG = "configs/prepare_cars.yaml"


class ModelConfig(StrictModel):
    """One chat model: a local Hugging Face model directory or an OpenAI-compatible endpoint."""

    path: str | None = Field(
        None,
        description="Local model directory (config.json, weights, tokenizer with chat template).",
    )
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM, Ollama).",
    )
    name: str | None = Field(
        None, description="Model name at the endpoint; also the label in 'fallback:<name>'."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the endpoint's API key."
    )
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Most tokens generated per reply.")
    sampling_temperature: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Sampling temperature of generation (0 = greedy); not the KD temperature.",
    )
    stop: list[str] = Field(default_factory=list, description="Stop sequences cut from the reply.")
    timeout_s: float = Field(
        60.0, gt=0, description="Hard time limit of one generation; the reply says when it was cut."
    )
    device: str = Field(
        "cpu", description="Torch device of a local model ('cpu', 'cuda', 'cuda:1')."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype of a local model (fp32 on CPU: bf16 is slow there)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.path and self.base_url:
            raise ValueError(
                "set either 'path' (local model dir) or 'base_url' (endpoint), not both"
            )
        if self.base_url and not self.name:
            raise ValueError("'name' is required with 'base_url' (the model name at the endpoint)")
        return self

    @property
    def label(self) -> str:
        """A short human name: the endpoint model name or the model directory's name."""
        if self.name:
            return self.name
        return Path(self.path).name if self.path else "unset"


class RetrievalConfig(StrictModel):
    """How much of the tables goes into one prompt."""

    max_rows: int = Field(8, ge=1, le=256, description="Most rows in a context (as in training).")
    max_chars: int = Field(3000, ge=200, description="Most characters in a context.")
    wider_rows: int = Field(
        24,
        ge=1,
        le=512,
        description="Rows in the wider context of the one retry after a failed check.",
    )
    bm25_min_score: float = Field(
        0.0, ge=0.0, description="Rows whose BM25 score is at most this are not retrieved."
    )


class RouterConfig(StrictModel):
    """How the router picks qa / summarizer / validator."""

    mode: Literal["score", "rules"] = Field(
        "score",
        description="'score': the model's log-prob of each label, rules when not confident; "
        "'rules': keywords only.",
    )
    min_margin: float = Field(
        2.0,
        ge=0.0,
        description="Log-prob gap (nats) between the best and second label needed to trust scores.",
    )


class ProgramConfig(StrictModel):
    """How the graph reads a request into a table program with the student."""

    mode: Literal["auto", "always", "never"] = Field(
        "auto",
        description="'auto': a local student writes programs when it passes the program probe "
        "(one distilled with target=program does); 'always' (e.g. the student behind an "
        "OpenAI-compatible endpoint); 'never' (the student "
        "answers from the retrieved rows and the answer is checked).",
    )
    min_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Lowest token probability in the student's program below which the graph "
        "asks back ('Do you mean ...?') instead of answering.",
    )
    max_new_tokens: int = Field(48, ge=8, le=256, description="Longest program, in tokens.")
    constrain: bool = Field(
        True,
        description="A local student's program decoding keeps to the language's words, the "
        "table's own column ids and the request's own slots (no column of another table, no "
        "slot the request lacks); its confidence stays its own unconstrained probability.",
    )
    repair: bool = Field(
        True, description="Give a program that does not run one retry with the error in the prompt."
    )
    prose: bool = Field(
        True,
        description="Summaries: the student words the facts the table computed, and the prose is "
        "shown only when every number, name and value in it checks against those facts "
        "(`data_loaders.prose.check_prose`); otherwise, and with false, the reply is the "
        "table's own summary sentences.",
    )
    prose_max_new_tokens: int = Field(
        160, ge=16, le=512, description="Longest summary prose, in tokens."
    )


class ValidationConfig(StrictModel):
    """Tolerances of the answer check against the table."""

    rel_tol: float = Field(0.001, ge=0.0, description="Relative tolerance for numbers in answers.")
    abs_tol: float = Field(
        0.011, ge=0.0, description="Absolute tolerance (covers 2-decimal rounding)."
    )


class GraphConfig(StrictModel):
    """Everything the agent graph needs besides the user's question."""

    student: ModelConfig = Field(
        default_factory=ModelConfig, description="The distilled student that answers first."
    )
    fallback: ModelConfig | None = Field(
        None, description="Model asked when the student's answer fails the table check (optional)."
    )
    tables: list[str] = Field(
        default_factory=list,
        description="Table files or SQL URLs (the ones the dataset was built from).",
    )
    table_config: str | None = Field(
        None,
        description="YAML whose 'table:' section gives entity column, aliases and units; use the "
        "file you ran `distillgraph prepare` with so the context matches training.",
    )
    max_input_chars: int = Field(2000, ge=10, description="Longer user messages are refused.")
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig, description="Context caps.")
    router: RouterConfig = Field(default_factory=RouterConfig, description="Routing settings.")
    program: ProgramConfig = Field(
        default_factory=ProgramConfig, description="Reading requests into table programs."
    )
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig, description="Answer-check tolerances."
    )

    @field_validator("tables")
    @classmethod
    def _no_empty(cls, v: list[str]) -> list[str]:
        if any(not s.strip() for s in v):
            raise ValueError("table paths must not be empty strings")
        return v

    def merged(self, update: Mapping[str, Any], source: str) -> GraphConfig:
        """These settings updated (recursively) with `update`, validated; `source` names it."""
        return validate_config(GraphConfig, deep_merge(self.model_dump(), dict(update)), source)

    def for_call(self, config: Mapping[str, Any] | None) -> GraphConfig:
        """These settings with one call's ``config["configurable"]`` applied.

        Args:
            config: The run config LangGraph hands a node. Its `PER_CALL_KEYS` replace the
                build-time values for this call only; LangGraph's own keys (``thread_id``, ...)
                are ignored.

        Raises:
            InputError: A value is out of range, or a key is fixed when the graph is built
                (``student``, ``tables``, ...).
        """
        configurable = (config or {}).get("configurable") or {}
        fixed = sorted(configurable.keys() & GraphConfig.model_fields.keys() - set(PER_CALL_KEYS))
        if fixed:
            raise InputError(
                f"config['configurable']: {', '.join(fixed)} cannot change per call (set when "
                f"the graph is built); per-call keys: {', '.join(PER_CALL_KEYS)}"
            )
        update = {k: configurable[k] for k in PER_CALL_KEYS if k in configurable}
        return self.merged(update, "config['configurable']") if update else self


@dataclass(frozen=True)
class EnvSettings:
    """The shared ``DISTILLGRAPH_*`` variables as set; each reader fills in its own defaults."""

    model: str | None  # DISTILLGRAPH_MODEL
    tables: tuple[str, ...]  # DISTILLGRAPH_TABLES, split on os.pathsep, blanks dropped
    graph_config: str | None  # DISTILLGRAPH_GRAPH_CONFIG
    table_config: str | None  # DISTILLGRAPH_TABLE_CONFIG
    overrides: tuple[str, ...] = ()  # DISTILLGRAPH_GRAPH_SET: JSON list of "key=value"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EnvSettings:
        """Read the variables from `environ` (``os.environ`` by default); empty = unset."""
        env = os.environ if environ is None else environ
        tables = (env.get(ENV_TABLES) or "").split(os.pathsep)
        return cls(
            model=env.get(ENV_MODEL) or None,
            tables=tuple(t for t in tables if t.strip()),
            graph_config=env.get(ENV_GRAPH_CONFIG) or None,
            table_config=env.get(ENV_TABLE_CONFIG) or None,
            overrides=_overrides(env.get(ENV_GRAPH_SET)),
        )


def _overrides(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InputError(f'{ENV_GRAPH_SET}: expected a JSON list of "key=value" strings')
    return tuple(items)


def load_graph_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> GraphConfig:
    """Load a `GraphConfig` from YAML plus ``key=value`` overrides (defaults without `path`)."""
    return load_config(GraphConfig, path, overrides)
