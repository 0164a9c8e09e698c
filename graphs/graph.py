"""Build the agent graph: START → process_input → route → qa | summarizer | validator → finalize.

`build_graph(model, tables, config, checkpointer)` loads what is needed once (the student, the
tables, the retriever) and returns a compiled LangGraph graph with ``invoke``/``stream``/
``ainvoke``/``astream``. `AgenticWorkflow` wraps it for one-line use. For ``langgraph dev``,
``langgraph.json`` names this module's ``graph``: it is built on first access from the
environment (``DISTILLGRAPH_MODEL``, ``DISTILLGRAPH_TABLES``, ``DISTILLGRAPH_GRAPH_CONFIG``,
``DISTILLGRAPH_TABLE_CONFIG``; see `graphs.config`), so importing the module loads no model;
`make_graph` is the same as a factory.

Tracing: LangSmith traces every node and model call when its standard environment variables
are set (``LANGSMITH_TRACING=true``, ``LANGSMITH_API_KEY``, ``LANGSMITH_PROJECT``); nothing
here needs configuring.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from data_loaders.config import TableConfig
from data_loaders.config_loader import load_config, parse_overrides
from data_loaders.errors import InputError
from data_loaders.table import Table
from graphs.chat_model import build_chat_model
from graphs.config import (
    DEFAULT_STUDENT_DIR,
    DEFAULT_TABLE_CONFIG,
    DEFAULT_TABLES,
    EnvSettings,
    GraphConfig,
    ModelConfig,
    load_graph_config,
)
from graphs.memory import open_checkpointer
from graphs.nodes import Nodes
from graphs.retrieval import Retriever
from graphs.state import ROUTES, InputState, State

GRAPH_NAME = "distillgraph"
# The model name `build_graph(model="http://...")` asks an endpoint for when the config names
# none: the raw student at `distillgraph serve` (`app.server.STUDENT_MODEL`).
DEFAULT_REMOTE_STUDENT = "distillgraph-student"


def default_model_dir() -> str:
    """The demo's student if it was trained (`DEFAULT_STUDENT_DIR`), else the embedded teacher."""
    if (Path(DEFAULT_STUDENT_DIR) / "config.json").is_file():
        return DEFAULT_STUDENT_DIR
    from distillation.embedded import embedded_teacher_dir

    return str(embedded_teacher_dir())


def with_defaults(cfg: GraphConfig) -> GraphConfig:
    """Fill in the demo tables (`DEFAULT_TABLES`, `DEFAULT_TABLE_CONFIG`) when none are named."""
    if cfg.tables:
        return cfg
    update: dict[str, Any] = {"tables": list(DEFAULT_TABLES)}
    if cfg.table_config is None and Path(DEFAULT_TABLE_CONFIG).is_file():
        update["table_config"] = DEFAULT_TABLE_CONFIG
    return cfg.model_copy(update=update)


def load_graph_tables(
    sources: Sequence[str | Path | Table], table_config: str | None
) -> list[Table]:
    """Load the tables (already loaded `Table`s pass through) with the prepare-time settings."""
    from data_loaders.loaders import load_tables

    if not sources:
        raise InputError("no tables given; pass the files the dataset was built from (--data)")
    tcfg = (
        load_config(TableConfig, table_config, section="table") if table_config else TableConfig()
    )
    paths = [s for s in sources if not isinstance(s, Table)]
    loaded = iter(load_tables(paths, tcfg)) if paths else iter(())
    return [s if isinstance(s, Table) else next(loaded) for s in sources]


def _model_config(model: str | Path | None, base: ModelConfig) -> ModelConfig:
    if model is None and (base.path or base.base_url):
        return base
    if isinstance(model, str) and model.startswith(("http://", "https://")):
        # An OpenAI-compatible endpoint (`distillgraph serve`, vLLM, Ollama): the model name
        # there comes from the config, else the raw student's name at `distillgraph serve`.
        name = base.name or DEFAULT_REMOTE_STUDENT
        return base.model_copy(update={"base_url": model, "name": name, "path": None})
    path = str(model) if model is not None else default_model_dir()
    if path == "embedded":
        from distillation.embedded import embedded_teacher_dir

        path = str(embedded_teacher_dir())
    return base.model_copy(update={"path": path, "base_url": None})


def _model_name(model: BaseChatModel) -> str:
    for attr in ("model_name", "model"):
        v = getattr(model, attr, None)
        if isinstance(v, str) and v:
            return v
    d = getattr(model, "model_dir", None)
    return Path(d).name if d else model._llm_type


def build_graph(
    model: str | Path | BaseChatModel | None = None,
    tables: Sequence[str | Path | Table] | None = None,
    config: str | Path | GraphConfig | None = None,
    checkpointer: Any = None,
    *,
    fallback: str | Path | BaseChatModel | None = None,
    overrides: list[str] | None = None,
) -> CompiledStateGraph:
    """Build the compiled agent graph.

    Args:
        model: The student: a model directory, ``"embedded"``, the URL of an OpenAI-compatible
            endpoint (``"http://host:port/v1"``; the model name there is ``student.name``, else
            `DEFAULT_REMOTE_STUDENT`), or any LangChain chat model (tests pass fakes). ``None``
            uses ``config.student``, else `default_model_dir`.
        tables: Table files / SQL URLs or loaded `Table`s; ``None`` uses ``config.tables``.
        config: A `GraphConfig` or a YAML file (``configs/graph.yaml``); ``None`` = defaults.
        checkpointer: Conversation memory: ``None`` (in memory), a SQLite file path, a
            ``postgresql://`` URL, a LangGraph saver, or ``False`` (none, e.g. for a server
            that brings its own).
        fallback: Model asked when the student's answer fails the table check; ``None`` uses
            ``config.fallback`` (loaded on first need) if set.
        overrides: ``key=value`` settings applied on top of `config`.

    Returns:
        The compiled graph. Its input is `InputState`: invoke with
        ``{"messages": [("user", "...")]}`` (other keys are ignored) and
        ``{"configurable": {"thread_id": "..."}}``, plus any per-call settings
        (`graphs.config.PER_CALL_KEYS`, e.g. ``"retrieval": {"max_rows": 16}``). The reply is
        the last message and ``answer``; ``answered_by`` says whether the student was enough.
    """
    if isinstance(config, GraphConfig):
        cfg = config.merged(parse_overrides(overrides), "overrides") if overrides else config
    else:
        cfg = load_graph_config(config, overrides)
    loaded = load_graph_tables(list(tables) if tables is not None else cfg.tables, cfg.table_config)
    student = (
        model
        if isinstance(model, BaseChatModel)
        else build_chat_model(_model_config(model, cfg.student))
    )
    fb_model, fb_factory, fb_name = None, None, "fallback"
    if isinstance(fallback, BaseChatModel):
        fb_model, fb_name = fallback, _model_name(fallback)
    elif fallback is not None:
        spec = _model_config(fallback, cfg.fallback or cfg.student)
        fb_factory, fb_name = (lambda: build_chat_model(spec)), spec.label
    elif cfg.fallback is not None:
        spec = cfg.fallback
        fb_factory, fb_name = (lambda: build_chat_model(spec)), spec.label
    nodes = Nodes(
        student=student,
        retriever=Retriever(loaded, cfg.retrieval),
        config=cfg,
        fallback=fb_model,
        fallback_factory=fb_factory,
        fallback_name=fb_name,
    )
    builder = StateGraph(State, input_schema=InputState)
    for name, fn in nodes.node_functions().items():
        builder.add_node(name, fn)
    builder.add_edge(START, "process_input")
    builder.add_conditional_edges("process_input", nodes.check_input)
    builder.add_conditional_edges("route", nodes.pick_task)
    for task in ROUTES:
        builder.add_edge(task, "finalize")
    builder.add_edge("finalize", END)
    saver = None if checkpointer is False else open_checkpointer(checkpointer)
    graph = builder.compile(checkpointer=saver, name=GRAPH_NAME)
    graph.distillgraph_nodes = nodes  # for router_accuracy and inspection
    graph.distillgraph_router = nodes.router
    graph.distillgraph_programmer = nodes.programmer
    return graph


def make_graph(config: RunnableConfig | None = None) -> CompiledStateGraph:
    """The graph for ``langgraph dev``/servers, built from the environment, without memory.

    ``DISTILLGRAPH_MODEL`` (model dir; default `default_model_dir`), ``DISTILLGRAPH_TABLES``
    (paths separated by ``os.pathsep``; default `DEFAULT_TABLES`), ``DISTILLGRAPH_GRAPH_CONFIG``
    (a graph YAML) and ``DISTILLGRAPH_TABLE_CONFIG`` (the prepare YAML, replacing the graph
    YAML's ``table_config``). The server supplies the checkpointer.

    Args:
        config: The server's run config; unused (per-call settings are read at each call).
    """
    env = EnvSettings.from_env()
    cfg = load_graph_config(env.graph_config, list(env.overrides))
    if env.table_config:
        cfg = cfg.model_copy(update={"table_config": env.table_config})
    return build_graph(
        model=env.model,
        tables=list(env.tables) or None,
        config=with_defaults(cfg),
        checkpointer=False,
    )


_GRAPH: CompiledStateGraph | None = None


def __getattr__(name: str) -> Any:
    """Build the module-level ``graph`` on first access (import stays cheap)."""
    global _GRAPH
    if name == "graph":
        if _GRAPH is None:
            _GRAPH = make_graph()
        return _GRAPH
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class AgenticWorkflow:
    """One-call convenience: ``AgenticWorkflow(model_dir).run(query="...") -> answer``."""

    def __init__(
        self,
        model_path: str | Path | BaseChatModel | None = None,
        tables: Sequence[str | Path | Table] | None = None,
        config: str | Path | GraphConfig | None = None,
        memory: Any = None,
    ):
        cfg = config if config is not None else load_graph_config(None)
        if isinstance(cfg, GraphConfig) and tables is None:
            cfg = with_defaults(cfg)
        self.graph = build_graph(model_path, tables, cfg, memory)

    def run(self, query: str, thread_id: str | None = None) -> str:
        """Answer `query`; pass the same `thread_id` to continue a conversation."""
        tid = thread_id or uuid.uuid4().hex
        state = self.graph.invoke(
            {"messages": [("user", query)]}, config={"configurable": {"thread_id": tid}}
        )
        return state["answer"]
