"""Rendering: a graphviz Digraph whose errors explain a missing `dot` program."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from . import _graphviz as graphviz

__all__ = ["GraphvizNotFoundError", "TapeDigraph", "INSTALL_HINT", "explaining_missing_dot", "styled_digraph"]

INSTALL_HINT = (
    "the Graphviz `dot` program was not found on PATH, so the graph cannot be rendered. Install Graphviz: "
    "`sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
    "`conda install -c conda-forge graphviz`, or see https://graphviz.org/download/. "
    "Without it, `.source` holds the DOT text and viz.save(graph, 'graph.dot') still works."
)


class GraphvizNotFoundError(graphviz.ExecutableNotFound):
    """Rendering needs the Graphviz `dot` program and it is not installed (the message says how)."""

    def __init__(self, detail: str = "") -> None:
        RuntimeError.__init__(self, INSTALL_HINT + (f" ({detail})" if detail else ""))


@contextlib.contextmanager
def explaining_missing_dot() -> Iterator[None]:
    """Turns graphviz's `ExecutableNotFound` raised inside into `GraphvizNotFoundError` (how to install it)."""
    try:
        yield
    except graphviz.ExecutableNotFound as err:
        if isinstance(err, GraphvizNotFoundError):
            raise
        raise GraphvizNotFoundError(str(err)) from err


class TapeDigraph(graphviz.Digraph):
    """A `graphviz.Digraph` whose rendering errors say how to install Graphviz.

    Notebooks display it through graphviz's own rich display (``_repr_mimebundle_``).
    """

    def pipe(self, *args: Any, **kwargs: Any) -> Any:
        """Render to bytes (or text with ``encoding``); see `graphviz.Digraph.pipe`."""
        with explaining_missing_dot():
            return super().pipe(*args, **kwargs)

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Save the source and render it to a file; see `graphviz.Digraph.render`."""
        with explaining_missing_dot():
            return super().render(*args, **kwargs)


def styled_digraph(name: str, rankdir: str, label: str | None = None) -> TapeDigraph:
    """An empty `TapeDigraph` in viz's style (Helvetica, small arrows), laid out toward ``rankdir``,
    with ``label`` (lines joined by newlines) at its top."""
    dot = TapeDigraph(
        name,
        graph_attr={"rankdir": rankdir, "fontname": "Helvetica", "fontsize": "11"},
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"arrowsize": "0.7"},
    )
    if label:
        dot.attr(label=graphviz.nohtml(label), labelloc="t")
    return dot
