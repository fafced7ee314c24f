"""The graphviz package for drawing (the ``[viz]`` extra), or stand-ins without it.

`viz.to_networkx`, `viz.summary`, `viz.trace_backward` and the analysis functions need only
networkx. Without graphviz, `viz.draw` still builds the DOT text (`viz._dotwriter`, the same
text), so ``.source`` and saving ``.dot`` work; rendering a picture raises `MissingExtraError`
naming the extra.
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
    # the picture formats, so that saving one names the missing extra rather than the suffix
    FORMATS: set[str] = {"svg", "png", "pdf", "jpg", "jpeg", "gif", "bmp", "ps", "eps", "tif", "tiff", "webp"}

    class ExecutableNotFound(RuntimeError):
        """Stands in for graphviz's error (never raised without graphviz)."""

    class _Missing:
        """A graphviz class that cannot be made without the graphviz package."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise MissingExtraError("graphviz", "drawing a graph (viz.draw, viz.save, tapegrad graph)")

    class Graph(_Missing):
        """Stands in for `graphviz.Graph`."""

    class Source(_Missing):
        """Stands in for `graphviz.Source`."""

    from ._dotwriter import Digraph, nohtml
