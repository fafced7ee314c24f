"""Rendering: a graphviz Digraph that explains a missing `dot`, and saving by file suffix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import _graphviz as graphviz

__all__ = ["GraphvizNotFoundError", "TapeDigraph", "save", "INSTALL_HINT"]

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


class TapeDigraph(graphviz.Digraph):
    """A `graphviz.Digraph` whose rendering errors say how to install Graphviz.

    Notebooks display it through graphviz's own rich display (``_repr_mimebundle_``).
    """

    def pipe(self, *args: Any, **kwargs: Any) -> Any:
        """Render to bytes (or text with ``encoding``); see `graphviz.Digraph.pipe`."""
        try:
            return super().pipe(*args, **kwargs)
        except graphviz.ExecutableNotFound as err:
            if isinstance(err, GraphvizNotFoundError):
                raise
            raise GraphvizNotFoundError(str(err)) from err

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Save the source and render it to a file; see `graphviz.Digraph.render`."""
        try:
            return super().render(*args, **kwargs)
        except graphviz.ExecutableNotFound as err:
            if isinstance(err, GraphvizNotFoundError):
                raise
            raise GraphvizNotFoundError(str(err)) from err


_TEXT_SUFFIXES = {".dot", ".gv"}


def save(graph: Any, path: str | Path, **draw_options: Any) -> Path:
    """Write a picture to ``path``, in the format its suffix names (.svg .png .pdf .dot ...).

    ``graph`` is a graphviz graph or anything `viz.draw` accepts (then drawn with
    ``draw_options``). ``.dot``/``.gv`` write the DOT text and need no Graphviz; other
    suffixes render with the `dot` program (`GraphvizNotFoundError` says how to install it).
    """
    path = Path(path)
    if not isinstance(graph, (graphviz.Graph, graphviz.Digraph, graphviz.Source)):
        from .dot import draw

        graph = draw(graph, **draw_options)
    elif draw_options:
        raise TypeError(f"save: drawing options {sorted(draw_options)} need a tape or tensor, not a drawn graph")
    suffix = path.suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        path.write_text(graph.source, encoding="utf-8")
        return path
    fmt = suffix.lstrip(".")
    if fmt not in graphviz.FORMATS:
        raise ValueError(
            f"save: cannot tell the format from the suffix {suffix or '(none)'!r} of {path.name!r}; "
            "use .svg, .png, .pdf or .dot"
        )
    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as err:
        if isinstance(err, GraphvizNotFoundError):
            raise
        raise GraphvizNotFoundError(str(err)) from err
    path.write_bytes(data)
    return path
