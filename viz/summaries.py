"""`viz.summary`: a text table of the recorded ops (module, op, output shape, parameters)."""

from __future__ import annotations

import html
from typing import Any

import networkx as nx
import torch

from tapegrad.engine.tape import Tape
from tapegrad.engine.tensors import Tensor

from .graph import to_networkx

__all__ = ["summary", "Summary"]

_HEADER = ("module", "op", "output shape", "params")


class Summary(str):
    """The table `viz.summary` returns: the text table itself (print it), an HTML table in notebooks.

    In a plain REPL its repr is the table too (not a quoted string full of ``\\n``).
    ``header``, ``rows`` and ``footer`` hold the cells the text is made of.
    """

    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    footer: list[str]

    def __new__(cls, text: str, header: tuple[str, ...], rows: list[tuple[str, ...]], footer: list[str]) -> Summary:
        """The text of the table, with its cells kept for `_repr_html_`."""
        self = super().__new__(cls, text)
        self.header, self.rows, self.footer = header, rows, footer
        return self

    def __repr__(self) -> str:
        return str.__str__(self)

    def _repr_html_(self) -> str:
        """The table as HTML (what Jupyter shows); parameter counts are right-aligned."""

        def row(cells: tuple[str, ...], tag: str) -> str:
            aligned = [f'<{tag} style="text-align:{"right" if i == 3 else "left"}">' for i in range(len(cells))]
            return "<tr>" + "".join(f"{a}{html.escape(c)}</{tag}>" for a, c in zip(aligned, cells)) + "</tr>"

        body = "".join(row(r, "td") for r in self.rows)
        foot = "<br>".join(html.escape(line) for line in self.footer)
        return f"<table><thead>{row(self.header, 'th')}</thead><tbody>{body}</tbody></table><p>{foot}</p>"


def summary(model_or_tape: Any, *inputs: Any) -> Summary:
    """A table with one row per recorded op: module, op, output shape, parameter count.

    The result is a `Summary`: a string that prints as the text table, and that Jupyter
    shows as an HTML table.

    Pass a tape, a recorded tensor or a `viz.Trace`; or a model and example inputs (run once
    on a tape); or a model alone (one row per module, from its parameters). A parameter is
    counted on the row of the op that first used it.
    """
    model = model_or_tape if hasattr(model_or_tape, "named_parameters") else None
    if model is not None and not inputs:
        return _module_table(model)
    if model is not None:
        args = [a if isinstance(a, Tensor) else Tensor(torch.as_tensor(a)) for a in inputs]
        with Tape() as tape:
            out = model(*args)
        g = to_networkx(tape, out if isinstance(out, Tensor) else None, params=model)
    else:
        g = to_networkx(model_or_tape)
    rows = _op_rows(g)
    total = sum(d["numel"] for _, d in g.nodes(data=True) if d["kind"] == "parameter")
    footer = [f"ops: {len(rows)}", f"parameters used: {total:,}"]
    if model is not None:
        own = sum(p.data.numel() for p in model.parameters())
        footer.append(f"parameters in model: {own:,}")
    return _table(rows, footer)


def _op_rows(g: nx.DiGraph) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for n, d in g.nodes(data=True):
        if d["kind"] != "op":
            continue
        params = sum(g.nodes[p]["numel"] for p in g.predecessors(n) if g.nodes[p]["kind"] == "parameter")
        rows.append((d["module"] or "-", d["op"], str(tuple(d["out_shape"])), f"{params:,}" if params else ""))
    return rows


def _module_table(model: Any) -> Summary:
    rows: list[tuple[str, ...]] = []
    for name, m in model.named_modules():
        own = sum(p.data.numel() for p in m.parameters(recurse=False))
        label = f"{name} ({type(m).__name__})" if name else type(m).__name__
        rows.append((label, "-", "-", f"{own:,}" if own else ""))
    total = sum(p.data.numel() for p in model.parameters())
    return _table(rows, [f"parameters: {total:,}"])


def _table(rows: list[tuple[str, ...]], footer: list[str]) -> Summary:
    widths = [max(len(r[i]) for r in [_HEADER, *rows]) for i in range(len(_HEADER))]
    line = "  ".join("-" * w for w in widths)

    def fmt(r: tuple[str, ...]) -> str:
        cells = [r[i].ljust(widths[i]) if i < 3 else r[i].rjust(widths[i]) for i in range(len(r))]
        return "  ".join(cells).rstrip()

    text = "\n".join([fmt(_HEADER), line, *map(fmt, rows), line, *footer])
    return Summary(text, _HEADER, rows, footer)
