"""The graphviz package for drawing (the ``[viz]`` extra), or stand-ins that say how to install it.

`viz.to_networkx`, `viz.summary`, `viz.trace_backward` and the analysis functions need only
networkx; drawing, saving and rendering need graphviz. Without it, this module gives the
names the drawing code uses, and making a graph raises `MissingExtraError` naming the extra.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from tapegrad._optional import MissingExtraError

__all__ = ["AVAILABLE", "FORMATS", "Digraph", "ExecutableNotFound", "Graph", "Source", "nohtml"]

AVAILABLE = importlib.util.find_spec("graphviz") is not None

if TYPE_CHECKING or AVAILABLE:
    from graphviz import FORMATS, Digraph, ExecutableNotFound, Graph, Source, nohtml
else:
    FORMATS: set[str] = set()

    class ExecutableNotFound(RuntimeError):
        """Stands in for graphviz's error (never raised without graphviz)."""

    class _Missing:
        """A graphviz class that cannot be made without the graphviz package."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise MissingExtraError("graphviz", "drawing a graph (viz.draw, viz.save, tapegrad graph)")

    class Graph(_Missing):
        """Stands in for `graphviz.Graph`."""

    class Digraph(_Missing):
        """Stands in for `graphviz.Digraph`."""

    class Source(_Missing):
        """Stands in for `graphviz.Source`."""

    def nohtml(text: str) -> str:
        """Stands in for `graphviz.nohtml`."""
        return text
