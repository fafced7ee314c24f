"""`tg.trace`: record a training step's tape once, then replay it as one torch.fx graph (`tracegen`:
the eager step's forward functions and VJP rules, in its order) through an executor (`executors`)."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from operator import is_not
from typing import Any

from ..engine.errors import TapeError, call_site
from ..engine.hooks import has_hooks
from ..engine.release import keep_all
from ..engine.state import current
from ..engine.tape import Tape, tape_of
from ..engine.tensors import Tensor
from . import replay_cuda
from .executors import EXECUTORS, Entry, same
from .replay_optim import OptimizerView, stepped
from .signatures import key_of
from .tracegen import accumulate, compile_records, structure

__all__ = ["trace", "Traced", "TraceError"]


class TraceError(TapeError):
    """``fn`` cannot be replayed from its trace: its ops or values changed between calls."""


def trace(fn: Callable[..., Any], *, check: bool = True, max_traces: int = 8, optimizer: Any = None,
          executor: str = "auto", cuda_graph: bool = False, recapture: bool = True) -> Traced:  # fmt: skip
    """Compile ``fn`` (inputs -> loss) into a replayed training step; returns a `Traced` callable.

    ``traced(*inputs)`` does what ``with tg.Tape() as t: out = fn(*inputs)`` then
    ``t.backward(loss)`` does, where ``loss`` is ``out`` or its first item: it returns ``out``
    and accumulates the loss's gradient into ``.grad`` of every leaf that requires grad (the
    parameters; set-to-None ``zero_grad`` works as usual). The optimizer step stays outside,
    unless ``optimizer`` is given: then each call is a whole training step, forward, backward,
    ``optimizer.step()`` and ``optimizer.zero_grad()`` (the weights are those of the eager loop).

    The first call for an input signature runs ``fn`` under a tape and builds a `torch.fx` graph of
    its records; later calls run the graph (``check=True``: the first replay checked against the eager
    step). ``executor`` is ``"python"`` (the graph's generated code), ``"inductor"`` (compiled on its third call)
    or ``"auto"``: Python, then inductor once the step's replays have taken as long as a compile costs
    (`tapegrad.tracing.executors.compile_after`); ``cuda_graph=True`` replays CUDA steps as a CUDA graph
    (`tapegrad.tracing.replay_cuda`; ``recapture=False``: a new signature runs eagerly). What a
    trace assumes and what it guards: `Traced`.
    """
    return Traced(fn, check, max_traces, optimizer, executor, cuda_graph, recapture)


class Traced:
    """A traced training step (see `trace`); ``traces`` tells how many signatures it compiled.

    - An input signature is the shape, dtype, device and requires_grad of each tensor input and the
      value of each other input; a new one is traced anew (the ``max_traces`` last used are kept).
    - Captured tensors (parameters, buffers) are read through their `tg.Tensor` on every call, so
      in-place updates and rebinding ``p.data`` are seen; one whose shape, dtype, device or
      requires_grad changed makes the trace stale and it is traced again (`signatures.armed`: the
      checks of every call, one expression).
    - Python control flow and values computed outside tapegrad ops (``.item()``, raw torch on
      ``.data``) are fixed at trace time. With ``check=True`` the first replay of each trace also
      runs ``fn`` eagerly and compares ops, outputs and gradients; a difference raises
      `TraceError`, since such a function cannot be traced.
    - Random draws made by ops (dropout's mask) are nodes of the graph: every call draws anew
      from the generator, so a traced step makes the eager step's masks for the same seed. (The
      check above rewinds the generators between its two runs, so it draws once per call too.)
    - Buffers an op updates in place (BatchNorm's running statistics) are updated by the graph on
      every call; the runs that only check a step put them back, so each call updates them once.
    - Inside an open tape (higher order), under `tg.detect_anomaly` and under `tg.no_grad` the
      call runs ``fn`` eagerly instead, so that those modes keep all their checks.

    The graph (`graph_module`, `source`; `viz.draw_traced` draws it) names its nodes by op and
    module path. How each executor runs it and checks it: `tapegrad.tracing.executors`.
    """

    def __init__(self, fn: Callable[..., Any], check: bool, max_traces: int, optimizer: Any, executor: str,
                 cuda_graph: bool, recapture: bool) -> None:  # fmt: skip
        if executor == "torchscript":  # removed: inductor replays faster (docs/performance.md, ninth round)
            why = "trace: executor='torchscript' was removed (inductor is faster); it runs as executor='auto'"
            warnings.warn(why, DeprecationWarning, stacklevel=4)  # (tg.trace is wrapped)
            executor = "auto"
        if executor not in EXECUTORS:
            raise ValueError(f"trace: executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
        self.fn, self.check, self.max_traces = fn, check, max_traces
        self.executor, self.cuda_graph, self.recapture = executor, cuda_graph, recapture
        self._view = OptimizerView(optimizer) if optimizer is not None else None
        self.traces = 0  # how many times fn was traced, for tests and the curious
        self._entries: OrderedDict[tuple, Entry] = OrderedDict()
        self._last: Entry | None = None  # the entry of the last call's signature
        self.__doc__ = getattr(fn, "__doc__", None)

    @property
    def optimizer(self) -> Any:
        """The optimizer whose step each call makes, or None."""
        return None if self._view is None else self._view.optimizer

    def __call__(self, *args: Any) -> Any:
        entry = self._last
        if entry is not None:  # armed: every per-call check in one expression, then the compiled step
            done = entry.call(args)
            if done is not None:
                return done
        return self._call(args)

    def _call(self, args: tuple) -> Any:
        """A call that is not armed, with every check: its entry by key (or a new trace), captured tensors
        rebound, hooks, the first replay."""
        state = current()
        if state.tapes or state.anomaly or not state.grad_enabled:
            return self._eager(args)
        try:
            key = tuple([key_of(a) for a in args])
            entry = self._entries.get(key)
        except TypeError:
            raise TypeError(
                "trace: every input must be a tensor or a hashable constant (its value is part of the trace)"
            ) from None
        if entry is None:
            return self._trace(key, args)
        self._entries.move_to_end(key)  # the least recently used signature is the one dropped
        self._last, plan, view = entry, entry.plan, self._view
        if [key_of(t) for t in plan.captured] != entry.kinds:  # a captured tensor's shape, dtype, ... changed
            return self._trace(key, args)  # (its new entry replaces this one)
        datas = [t.data for t in plan.captured]
        if any(map(is_not, datas, entry.seen)):  # rebound to data of the same kind: the graph takes it
            entry.seen = datas
            entry.arm(args)
        done = entry.call(args)  # (a signature other than the last call's)
        if done is not None:
            return done
        if not entry.verified:
            return stepped(view, self._verify(entry, args))
        if has_hooks() and any(has_hooks(t) for t in plan.captured):  # its leaves' hooks run from the Python graph
            return stepped(view, plan.step(*args))
        if entry.executor is None:
            graphed = self.cuda_graph and replay_cuda.on_cuda(args, plan.captured)
            captured = any(e.executor == "cuda_graph" for e in self._entries.values())
            if self.cuda_graph and (not graphed or (captured and not self.recapture)):
                why = ("the inputs' shapes, dtypes or devices changed since the CUDA graph was captured and recapture="
                       "False: this call runs eagerly" if graphed else "cuda_graph=True, but the step's tensors are "
                       "not all on a CUDA device; it runs without a CUDA graph")  # fmt: skip
                warnings.warn(f"trace: {why}", RuntimeWarning, stacklevel=3)
                if graphed:
                    return self._eager(args)
            entry.start(self.executor, graphed)
        result = entry.run(args)
        entry.arm(args)
        return result

    def source(self) -> str:
        """The generated Python code of the most recent trace's graph (for reading, not for editing)."""
        return self.graph_module().code

    def graph_module(self) -> Any:
        """The most recent trace as a `torch.fx.GraphModule` (``print(gm.graph)``; `viz.draw_traced` draws it)."""
        if not self._entries:
            raise TraceError("trace: nothing traced yet; call the traced function first")
        return next(reversed(self._entries.values())).plan.gm

    def _eager(self, args: tuple) -> Any:
        if not current().grad_enabled:
            return self.fn(*args)
        with Tape() as tape:
            result = self.fn(*args)
        tape.backward(_outputs(result)[0])
        return stepped(self._view, result)

    def _record(self, args: tuple) -> tuple[Tape, Any, tuple[Tensor, ...]]:
        tape = keep_all(Tape(persistent=True))  # the graph's first run reads every recorded value
        with tape:
            for a in args:  # ops on inputs must be recorded even when they need no gradient
                if isinstance(a, Tensor) and a.data.is_floating_point() and not a.requires_grad:
                    tape.watch(a)
            result = self.fn(*args)
        outs = _outputs(result)
        if outs[0]._tape is not None and tape_of(outs[0]) is not tape:
            raise TraceError(
                "trace: fn opened a tape of its own; it must only compute and return the loss (the "
                "traced call does the backward pass)"
            )
        return tape, result, outs

    def _trace(self, key: tuple, args: tuple) -> Any:
        """A new trace of ``fn`` for the signature ``key`` (the call's result, the optimizer stepped)."""
        tape, result, outs = self._record(args)
        kind = None if not isinstance(result, (tuple, list)) else list if isinstance(result, list) else tuple
        plan, grads = compile_records(tape.records, args, outs, kind)
        del tape
        self.traces += 1
        self._entries[key] = self._last = Entry(key, plan, not self.check, self._view)
        while len(self._entries) > self.max_traces:  # the least recently used first
            if self._entries.pop(next(iter(self._entries))) is self._last:
                self._last = None
        accumulate(plan.leaves_for(args), grads)
        return stepped(self._view, result)

    def _verify(self, entry: Entry, args: tuple) -> Any:
        plan = entry.plan
        with plan.rewound():  # the eager run draws the same random numbers as the replay
            outs, grads = plan.run(*args)
        tape, _, eager_outs = self._record(args)
        if structure(tape.records) != plan.structure:
            raise TraceError(
                f"trace: fn ran different ops on this call than when it was traced (called at "
                f"{call_site()}); its control flow depends on tensor values, so it cannot be traced"
            )
        leaves = plan.leaves_for(args)
        # every leaf of the plan gets a gradient from the same records: none is None
        eager_grads: Any = tape.gradient(eager_outs[0], leaves, allow_unused=True) if leaves else ()
        pairs = [(f"output {i}", o, e.data) for i, (o, e) in enumerate(zip(outs, eager_outs))]
        pairs += [(f"the gradient of {tuple(t.shape)}", g, e.data) for t, g, e in zip(leaves, grads, eager_grads)]
        for what, replayed, eager in pairs:
            if not same(replayed, eager):
                raise TraceError(
                    f"trace: the replay of fn gave a different {what} than running it (called at "
                    f"{call_site()}); fn uses values that tapegrad ops do not compute (.item(), raw "
                    "torch on .data, random numbers drawn outside an op), so it cannot be traced"
                )
        entry.verified = True
        accumulate(leaves, grads)
        return plan.result(outs)


def _outputs(result: Any) -> tuple[Tensor, ...]:
    outs = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        raise TraceError(
            "trace: fn must return the loss as a tg.Tensor, or a tuple/list of tg.Tensors whose first "
            f"item is the loss; got {type(result).__name__}"
        )
    return outs
