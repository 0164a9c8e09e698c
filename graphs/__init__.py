"""LangGraph agent graphs that serve the distilled student over the user's tables.

``from graphs import build_graph`` (or `AgenticWorkflow`); names resolve on first use so that
importing the package (e.g. for ``distillgraph --help``) loads neither LangGraph nor a model.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AgenticWorkflow", "build_graph", "make_graph"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from graphs import graph

        return getattr(graph, name)
    raise AttributeError(f"module 'graphs' has no attribute {name!r}")
