"""Saving a picture by file suffix: .svg .png .pdf render with Graphviz, .dot/.gv write the text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import _graphviz as graphviz
from .dot import draw
from .render import explaining_missing_dot

__all__ = ["save"]

_TEXT_SUFFIXES = {".dot", ".gv"}


def save(graph: Any, path: str | Path, **draw_options: Any) -> Path:
    """Write a picture to ``path``, in the format its suffix names (.svg .png .pdf .dot ...).

    ``graph`` is a graphviz graph or anything `viz.draw` accepts (then drawn with
    ``draw_options``). ``.dot``/``.gv`` write the DOT text and need no Graphviz; other
    suffixes render with the `dot` program (`GraphvizNotFoundError` says how to install it).
    """
    path = Path(path)
    if not isinstance(graph, (graphviz.Graph, graphviz.Digraph, graphviz.Source)):
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
    with explaining_missing_dot():  # a plain graphviz graph's pipe raises graphviz's own error
        data = graph.pipe(format=fmt)
    path.write_bytes(data)
    return path
