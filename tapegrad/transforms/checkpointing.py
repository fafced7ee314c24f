"""`tg.checkpoint(fn, *args)`: keep a block's inputs and output on the tape, recompute its inside.

The block runs once on a private tape that only finds out which tensors it reads (its arguments
and the parameters it captures); that tape and the block's activations are dropped when it
returns. The open tapes get one ``checkpoint`` record, from the block's inputs to its output,
whose VJP runs ``fn`` again under a fresh tape and replays it. Memory: the inputs and output of
each checkpointed block plus the inside of one block at a time; time: one extra forward pass.

The gradient is that of the second run, so the block must be pure: before any gradient is
formed, the second run's output is compared with the first's (shape, dtype, values: bit-equal
unless ``tolerance``) and the versions of the tensors it reads with theirs before it ran; a
difference raises `CheckpointError` naming the block and where it was checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ..engine.errors import CheckpointError, call_site, call_site_key, describe_tensor, format_site
from ..engine.modes import no_grad
from ..engine.primitives import Primitive
from ..engine.state import current, suspended_tapes
from ..engine.tape import Tape
from ..engine.tensors import Tensor, wrap
from ..engine.walk import captured
from .functional import _gradients

__all__ = ["checkpoint"]


class _Segment:
    """What the checkpoint record needs to run ``fn`` again: fn, which arguments were tensors,
    the tensors it captured, the random state it started from, the output of the first run, and
    for the check of the second run the tolerance and where the block was checkpointed."""

    __slots__ = ("fn", "wrapped", "captured", "rng", "result", "tolerance", "site")

    def __init__(
        self, fn: Callable, wrapped: tuple, captured: tuple, rng: Any, result: Any, tolerance: float, site: Any
    ) -> None:
        self.fn = fn
        self.wrapped = wrapped  # per argument: was it a tg.Tensor (a raw replay hands torch data)
        self.captured = captured  # tensors fn reads that are not its arguments (parameters)
        self.rng = rng
        self.result = result  # the first run's output data, handed to the record once
        self.tolerance = tolerance
        self.site = site

    def __repr__(self) -> str:
        return f"<checkpointed {_name(self.fn)}>"


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _rng_state(args: tuple) -> tuple:
    devices = sorted({a.device.index or 0 for a in args if isinstance(a, Tensor) and a.device.type == "cuda"})
    return torch.get_rng_state(), {d: torch.cuda.get_rng_state(d) for d in devices}


@contextmanager
def _replaying_rng(state: Any) -> Iterator[None]:
    """Run with the random state of the first run (dropout masks repeat), then restore the caller's."""
    if state is None:
        yield
        return
    cpu, cuda = state
    with torch.random.fork_rng(devices=list(cuda)):
        torch.set_rng_state(cpu)
        for d, s in cuda.items():
            torch.cuda.set_rng_state(s, d)
        yield


def _checked(out: Any, fn: Callable, args: Sequence[Any]) -> Tensor:
    if not isinstance(out, Tensor):
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, Tensor) else repr(a) for a in args)
        raise TypeError(
            f"checkpoint({_name(fn)}): fn returned {type(out).__name__} for arguments of shapes ({shapes}); "
            f"a checkpointed function must return one tg.Tensor"
        )
    return out


def _arguments(raw: tuple, segment: _Segment) -> list:
    """fn's arguments from what a replay passes: tg.Tensors as they are, raw data wrapped afresh."""
    n = len(segment.wrapped)
    return [wrap(a) if w and isinstance(a, torch.Tensor) else a for a, w in zip(raw[:n], segment.wrapped)]


def _forward(*raw: Any, segment: _Segment) -> torch.Tensor:
    result = segment.result
    if result is not None:
        segment.result = None
        return result
    with no_grad(), _replaying_rng(segment.rng):  # a replayed forward (tg.trace): fn on new data
        return _checked(segment.fn(*_arguments(raw, segment)), segment.fn, raw).data


def _vjp(g: Any, out: Any, *inputs: Any, segment: _Segment) -> tuple:
    raw = not isinstance(g, Tensor)  # first order: torch data in, torch data out
    args = _arguments(inputs, segment)
    sources = [a for a in (*args, *segment.captured) if isinstance(a, Tensor) and a.data.is_floating_point()]
    read = [a for a in (*args, *segment.captured) if isinstance(a, Tensor)]
    versions = [a.data._version for a in read]
    with _replaying_rng(segment.rng):
        with Tape() as tape:
            tape.watch(*sources)
            again = _checked(segment.fn(*args), segment.fn, args)
    _verify(segment, out, again, read, versions)
    grads = _gradients(tape, again, sources, grad_output=wrap(g) if raw else g)
    by_id = {id(s): gi for s, gi in zip(sources, grads)}
    result = []
    for a in (*args, *segment.captured):
        gi = by_id.pop(id(a), None) if isinstance(a, Tensor) else None  # pop: a tensor passed twice gets it once
        result.append(gi.data if raw and gi is not None else gi)
    return tuple(result)


def _verify(segment: _Segment, first: Any, again: Tensor, read: list[Tensor], versions: list[int]) -> None:
    """Raise `CheckpointError` unless the second run of the block matched its first."""
    problem = ""
    for a, v in zip(read, versions):
        if a.data._version != v:
            problem = (
                f"it changed a tensor it reads in place ({describe_tensor(a.data)}, version {v} -> {a.data._version})"
            )
            break
    else:
        problem = _difference(first.data if isinstance(first, Tensor) else first, again.data, segment.tolerance)
    if problem:
        raise CheckpointError(
            f"checkpoint({_name(segment.fn)}), checkpointed at {format_site(segment.site)}: the block's second run "
            f"(for the gradient) differs from its first: {problem}. A checkpointed block must be pure: no in-place "
            f"changes to its inputs or captured tensors, no randomness outside torch's generator; pass tolerance= "
            f"for kernels that are not bit-reproducible (the backward pass was called at {call_site()})"
        )


def _difference(first: Any, again: torch.Tensor, tolerance: float) -> str:
    """'' when ``again`` is ``first`` (bit for bit, NaN for NaN; within ``tolerance`` if one is set)."""
    if first.shape != again.shape or first.dtype != again.dtype:
        return f"output {describe_tensor(first)} then {describe_tensor(again)}"
    if not isinstance(first, torch.Tensor):  # freed by the walk: only its metadata is left
        return ""
    if first.is_floating_point() or first.is_complex():
        nan = first.isnan() & again.isnan()
        close = (first - again).abs() <= tolerance * (1 + first.abs()) if tolerance else first == again
        same = close | nan
    else:
        same = first == again
    if bool(same.all()):
        return ""
    where = (~same).nonzero()[0].tolist()
    return (
        f"output {describe_tensor(first)} differs in {int((~same).sum())} element(s), first at index {tuple(where)}: "
        f"{first[tuple(where)].item()!r} then {again[tuple(where)].item()!r}"
    )


_CHECKPOINT = Primitive(
    "checkpoint",
    _forward,
    _vjp,
    doc="A checkpointed block: its VJP runs the block again under a tape and replays that tape.",
    saves=("inputs", "output"),  # the output too: the second run is checked against it
)


def checkpoint(
    fn: Callable[..., Tensor], *args: Any, preserve_rng_state: bool = True, tolerance: float = 0.0
) -> Tensor:
    """``fn(*args)``, with only its inputs and output kept on the tape (gradient checkpointing).

    The reverse walk runs ``fn`` again to get the gradients, so memory holds one block's inside
    at a time at the cost of one more forward pass; first and higher order gradients are those
    of ``fn(*args)`` itself, for the arguments and for the tensors ``fn`` captures (parameters).
    ``fn`` returns one `tg.Tensor`; with ``preserve_rng_state`` the second run sees the random
    state of the first (the same dropout masks), as in ``torch.utils.checkpoint``.

    ``fn`` must be pure: the second run's output must equal the first's bit for bit, or within
    ``tolerance`` (``|second - first| <= tolerance * (1 + |first|)`` per element), and it must
    not change in place a tensor it reads; else the backward pass raises `CheckpointError`
    before it forms any gradient.
    """
    if not callable(fn):
        raise TypeError(f"checkpoint: fn must be callable, got {type(fn).__name__} (called at {call_site()})")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"checkpoint: tolerance must be a number >= 0, got {tolerance!r} (called at {call_site()})")
    if not current().recording:  # nothing records: nothing to save
        return _checked(fn(*args), fn, args)
    rng = _rng_state(args) if preserve_rng_state else None
    # finds what fn reads; persistent, so that no `loss.backward()` bookkeeping keeps it (and the
    # block's activations) alive once it goes out of scope
    with suspended_tapes(), Tape(persistent=True) as probe:
        probe.watch(*[a for a in args if isinstance(a, Tensor) and a.data.is_floating_point()])
        out = _checked(fn(*args), fn, args)
    reads = tuple(t for t in captured(probe.records, args) if t.data.is_floating_point())
    del probe
    if not any(isinstance(a, Tensor) for a in (*args, *reads)):
        return out  # nothing a tape could watch went in
    wrapped = tuple(isinstance(a, Tensor) for a in args)
    segment = _Segment(fn, wrapped, reads, rng, out.data, float(tolerance), call_site_key(2))
    return _CHECKPOINT(*args, *reads, segment=segment)
