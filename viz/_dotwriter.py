"""DOT text without the graphviz package: the part of its ``Digraph`` that `viz.draw` uses.

DOT text is plain text, so `viz.draw(...).source`, ``viz.save(graph, "g.dot")`` and
``tapegrad graph --out g.dot`` need nothing installed. This writer produces the same text as
the graphviz package, byte for byte (same quoting, same sorted attribute lists; the suite
compares the two), and only rendering to a picture needs the ``[viz]`` extra.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from tapegrad._optional import MissingExtraError

__all__ = ["Digraph", "NoHtml", "nohtml", "quote"]

_HTML = re.compile(r"<.*>$", re.DOTALL)
_ID = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?))$")
_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}
_QUOTE = re.compile(r'(?P<escaped_backslashes>(?:\\{2})*)\\?(?P<literal_quote>")')


class NoHtml(str):
    """A string whose ``<...>`` is literal text, not a DOT HTML label."""


def nohtml(text: str) -> NoHtml:
    """``text`` marked as literal: ``<`` and ``>`` at its ends are not an HTML label."""
    return NoHtml(text)


def quote(identifier: str) -> str:
    """A DOT identifier: as it is when valid (or an HTML label), else double-quoted with quotes escaped."""
    if _HTML.match(identifier) and not isinstance(identifier, NoHtml):
        return identifier
    if not _ID.match(identifier) or identifier.lower() in _KEYWORDS:
        return '"' + _QUOTE.sub(r"\g<escaped_backslashes>\\\g<literal_quote>", identifier) + '"'
    return identifier


def _a_list(label: str | None, attrs: Mapping[str, Any]) -> str:
    items = sorted(attrs.items()) if type(attrs) is dict else list(attrs.items())
    parts = [f"label={quote(label)}"] if label is not None else []
    return " ".join(parts + [f"{quote(k)}={quote(v)}" for k, v in items if v is not None])


def _attr_list(label: str | None, attrs: Mapping[str, Any]) -> str:
    content = _a_list(label, attrs)
    return f" [{content}]" if content else ""


class Digraph:
    """A directed graph's DOT source, built with graphviz's ``node``/``edge``/``attr``/``subgraph`` calls."""

    def __init__(
        self,
        name: str | None = None,
        graph_attr: Mapping[str, str] | None = None,
        node_attr: Mapping[str, str] | None = None,
        edge_attr: Mapping[str, str] | None = None,
        **unused: Any,
    ) -> None:
        self.name = name
        self.graph_attr = dict(graph_attr or {})
        self.node_attr = dict(node_attr or {})
        self.edge_attr = dict(edge_attr or {})
        self.body: list[str] = []

    def node(self, name: str, label: str | None = None, **attrs: str) -> None:
        """Add a node statement."""
        self.body.append(f"\t{quote(name)}{_attr_list(label, attrs)}\n")

    def edge(self, tail_name: str, head_name: str, label: str | None = None, **attrs: str) -> None:
        """Add an edge statement (``tail -> head``)."""
        self.body.append(f"\t{quote(tail_name)} -> {quote(head_name)}{_attr_list(label, attrs)}\n")

    def attr(self, kw: str | None = None, **attrs: str) -> None:
        """Add a graph-level attribute statement (``kw=None``), or one for ``graph``/``node``/``edge``."""
        if attrs:
            self.body.append(f"\t{_a_list(None, attrs)}\n" if kw is None else f"\t{kw}{_attr_list(None, attrs)}\n")

    def subgraph(self, graph: Digraph) -> None:
        """Add ``graph`` as a subgraph (a ``cluster_`` name makes it a box)."""
        self.body += [f"\t{line}" for line in graph._lines(subgraph=True)]

    def _lines(self, subgraph: bool = False) -> Iterator[str]:
        name = quote(self.name) + " " if self.name else ""
        yield f"subgraph {name}{{\n" if subgraph else f"digraph {name}{{\n"
        for kw in ("graph", "node", "edge"):
            attrs = getattr(self, f"{kw}_attr")
            if attrs:
                yield f"\t{kw}{_attr_list(None, attrs)}\n"
        yield from self.body
        yield "}\n"

    @property
    def source(self) -> str:
        """The DOT text."""
        return "".join(self._lines())

    def __str__(self) -> str:
        return self.source

    def pipe(self, *args: Any, **kwargs: Any) -> bytes:
        """Rendering needs the graphviz package (the ``[viz]`` extra): `MissingExtraError` here."""
        raise MissingExtraError("graphviz", "rendering a graph to a picture (viz.save to .svg/.png/.pdf)")

    render = pipe
