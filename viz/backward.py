"""The backward-pass view: gradients of a target with respect to every tensor a tape recorded."""

from __future__ import annotations

from typing import Any

import torch

from tapegrad.engine.errors import TapeError
from tapegrad.engine.modes import no_grad
from tapegrad.engine.primitives import Record
from tapegrad.engine.tape import Tape
from tapegrad.engine.tensors import Tensor

__all__ = ["Trace", "trace_backward", "tape_records"]


class Trace:
    """A tape's records, the target of a backward pass and the gradient of every recorded tensor.

    ``grads`` maps ``id(tensor)`` to the gradient's torch data; the records keep every tensor
    alive, so the ids stay valid as long as the trace does. Pass a trace to `viz.to_networkx`
    or `viz.draw` to see gradient norms on every node.
    """

    __slots__ = ("records", "target", "grads")

    def __init__(self, records: list[Record], target: Tensor | None, grads: dict[int, torch.Tensor]) -> None:
        self.records = records
        self.target = target
        self.grads = grads

    def grad_of(self, tensor: Tensor) -> torch.Tensor | None:
        """The gradient of the target with respect to ``tensor`` (``None`` if it got none)."""
        return self.grads.get(id(tensor))

    def __repr__(self) -> str:
        return f"<Trace {len(self.records)} records, {len(self.grads)} gradients>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # Jupyter shows the picture (`viz.draw(trace)` as SVG); without graphviz or `dot`, the repr
        from .dot import draw

        bundle: dict[str, Any] = {"text/plain": repr(self)}
        try:
            bundle["image/svg+xml"] = draw(self).pipe(format="svg", encoding="utf-8")
        except (ImportError, RuntimeError, OSError):  # no graphviz package, no `dot` program
            pass
        return bundle


def tape_records(tape: Tape) -> list[Record]:
    """The records of ``tape``, or a `TapeError` if a one-shot tape already released them."""
    if tape.released:
        raise TapeError(
            "viz: this one-shot tape released its records after its gradient; draw it before calling "
            "gradient/backward, record with tg.Tape(persistent=True), or use viz.trace_backward(tape, loss) "
            "instead of tape.backward(loss)"
        )
    return tape.records


def trace_backward(tape: Tape, target: Tensor, grad_output: Any = None) -> Trace:
    """Replay ``tape`` once and keep the gradient of ``target`` w.r.t. every tensor it recorded.

    One `Tape.gradient` call with every recorded float tensor as a source, so the hot replay
    loop is untouched. A one-shot tape is used up by it (as by ``tape.backward``); use
    ``persistent=True`` to replay it again afterwards. Leaves' ``.grad`` are not changed.
    """
    records = tape_records(tape)
    sources: list[Tensor] = []
    seen: set[int] = set()
    for r in records:
        for t in (*r.inputs, *r.outputs):
            if isinstance(t, Tensor) and id(t) not in seen and t.data.is_floating_point():
                seen.add(id(t))
                sources.append(t)
    if not sources:
        return Trace(records, target, {})
    with no_grad():  # the picture needs values, not a recorded backward pass
        grads: Any = tape.gradient(target, sources, grad_output=grad_output, allow_unused=True)
    found = {id(s): (g.data if isinstance(g, Tensor) else g) for s, g in zip(sources, grads) if g is not None}
    return Trace(records, target, found)
