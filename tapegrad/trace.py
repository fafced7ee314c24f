"""`tg.trace`: record a training step's tape once, then replay it as straight-line torch code.

The first call with a given input signature runs ``fn`` under a tape, then walks the records
once, forward and in reverse, to write a Python function that makes exactly the torch calls the
eager forward and backward make (the same forward functions and VJP rules, in the same order),
with no `Tensor`, `Record` or tape built per op. Later calls with the same signature run that
function on the new inputs. See `trace` for the rules and the guards.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch

from . import replay_cuda, replay_script
from .errors import TapeError, call_site
from .hooks import has_hooks, run_hooks
from .release import keep_all
from .replay_optim import OptimizerView
from .replay_script import Declined, ScriptStep
from .state import current
from .tape import Tape, tape_of
from .tensor import Tensor, wrap
from .tracegen import Plan, Retrace, compile_records, structure

if TYPE_CHECKING:
    from .primitive import Record

__all__ = ["trace", "Traced", "TraceError"]


class TraceError(TapeError):
    """``fn`` cannot be replayed from its trace: its ops or values changed between calls."""


_EXECUTORS = ("auto", "torchscript", "python")


def trace(
    fn: Callable[..., Any],
    *,
    check: bool = True,
    max_traces: int = 8,
    optimizer: Any = None,
    executor: str = "auto",
    cuda_graph: bool = False,
    recapture: bool = True,
) -> Traced:
    """Compile ``fn`` (inputs -> loss) into a replayed training step; returns a `Traced` callable.

    ``traced(*inputs)`` does what ``with tg.Tape() as t: out = fn(*inputs)`` then
    ``t.backward(loss)`` does, where ``loss`` is ``out`` or its first item: it returns ``out``
    and accumulates the loss's gradient into ``.grad`` of every leaf that requires grad (the
    parameters; set-to-None ``zero_grad`` works as usual). The optimizer step stays outside,
    unless ``optimizer`` is given: then each call is a whole training step, forward, backward,
    ``optimizer.step()`` and ``optimizer.zero_grad()`` (the weights are those of the eager loop).

    How it works and what it assumes:

    - The first call for an input signature (the shape, dtype and device of each tensor input,
      the value of each other input) runs ``fn`` eagerly under a tape and generates straight-line
      code from the records; later calls with that signature run the code. A new signature is
      traced anew (up to ``max_traces`` are kept, least recently used dropped).
    - Captured tensors (parameters, buffers) are read through their `tg.Tensor` on every call, so
      in-place optimizer updates and rebinding ``p.data`` are seen; a captured tensor whose shape,
      dtype or device changed makes the trace stale and it is traced again.
    - Python control flow and values computed outside tapegrad ops (``.item()``, raw torch on
      ``.data``, random masks) are fixed at trace time. With ``check=True`` the first replay of
      each trace also runs ``fn`` eagerly and compares ops, outputs and gradients; a difference
      raises `TraceError`, since such a function cannot be traced.
    - Inside an open tape (higher order), under `tg.detect_anomaly` and under `tg.no_grad` the
      call runs ``fn`` eagerly instead, so that those modes keep all their checks.
    - The in-place version check of the eager replay is not needed: forward and backward run
      back to back inside one generated function, with no user code in between.

    Executors (``executor=``): ``"python"`` runs the generated function; ``"torchscript"``
    (what ``"auto"`` picks when torch has it) runs the aten ops it made from a TorchScript
    graph, with no Python per op, and compiles the optimizer's step into the same graph when
    it can (`tapegrad.replay_script`). Both make the same kernels as the eager step.

    ``cuda_graph=True`` (inputs and parameters on a CUDA device) captures the step, with the
    optimizer's when given, into a ``torch.cuda.CUDAGraph`` and replays it after copying the new
    inputs into its static buffers (`tapegrad.replay_cuda`); its outputs are the graph's
    buffers, overwritten by the next call. A new input signature captures again, or with
    ``recapture=False`` runs eagerly with a warning. Inputs on the CPU run without a graph.
    """
    return Traced(
        fn,
        check=check,
        max_traces=max_traces,
        optimizer=optimizer,
        executor=executor,
        cuda_graph=cuda_graph,
        recapture=recapture,
    )


class Traced:
    """A traced training step (see `trace`); ``traces`` tells how many signatures it compiled."""

    def __init__(
        self,
        fn: Callable[..., Any],
        check: bool = True,
        max_traces: int = 8,
        optimizer: Any = None,
        executor: str = "auto",
        cuda_graph: bool = False,
        recapture: bool = True,
    ) -> None:
        if executor not in _EXECUTORS:
            raise ValueError(f"trace: executor must be one of {', '.join(_EXECUTORS)}; got {executor!r}")
        if executor == "torchscript" and not replay_script.available():
            raise ValueError("trace: executor='torchscript' needs torch.jit, which this torch does not have")
        self.fn = fn
        self.check = check
        self.max_traces = max_traces
        self.executor = executor
        self.cuda_graph = cuda_graph
        self.recapture = recapture
        self._view = OptimizerView(optimizer) if optimizer is not None else None
        self.traces = 0  # how many times fn was traced, for tests and the curious
        self._plans: OrderedDict[tuple, Plan] = OrderedDict()
        self._fast: dict[tuple, Any] = {}  # key -> compiled executor, or False where it declined
        self._captured: dict[tuple, list[Tensor]] = {}
        self._graphs: dict[tuple, Any] = {}  # key -> replay_cuda.CudaGraphStep
        self._warned_device = False
        self.__doc__ = getattr(fn, "__doc__", None)

    @property
    def optimizer(self) -> Any:
        """The optimizer whose step each call makes, or None."""
        return None if self._view is None else self._view.optimizer

    def __call__(self, *args: Any) -> Any:
        state = current()
        if state.tapes or state.anomaly or not state.grad_enabled:
            return self._eager(args)
        key = tuple([_key(a) for a in args])
        try:
            plan = self._plans.get(key)
        except TypeError:
            raise TypeError(
                "trace: every input must be a tensor or a hashable constant (its value is part of the trace)"
            ) from None
        if plan is None:
            return self._stepped(self._trace(key, args))
        try:
            if not plan.verified:
                return self._stepped(self._verify(plan, args))
            if has_hooks() and any(has_hooks(t) for t in self._captured[key]):
                # this step's leaves have post-accumulate-grad hooks: they run from the Python replay,
                # where each gradient is final (a hook on some other tensor changes nothing here)
                return self._stepped(plan.step(*args))
            if self.cuda_graph:
                done = replay_cuda.call(self, key, plan, args)
                if done is not None:
                    return done
            if self.executor != "python" and replay_script.available():
                fast = self._fast.get(key)
                if fast is None:
                    fast = self._fast[key] = ScriptStep(plan, args, self._captured[key], self._view, self.check)
                if fast:
                    try:
                        result, stepped = fast(args)
                    except Declined:
                        self._fast[key] = False
                    else:
                        return result if stepped else self._stepped(result)
            return self._stepped(plan.step(*args))
        except Retrace:
            self._forget(key)
            return self._stepped(self._trace(key, args))

    def _stepped(self, result: Any) -> Any:
        if self._view is not None:
            self._view.step()
        return result

    def _forget(self, key: tuple) -> None:
        self._plans.pop(key, None)
        self._fast.pop(key, None)
        self._captured.pop(key, None)
        self._graphs.pop(key, None)

    def source(self) -> str:
        """The generated Python source of the most recent trace (for reading, not for editing)."""
        if not self._plans:
            raise TraceError("trace: nothing traced yet; call the traced function first")
        return next(reversed(self._plans.values())).source

    def _eager(self, args: tuple) -> Any:
        if not current().grad_enabled:
            return self.fn(*args)
        with Tape() as tape:
            result = self.fn(*args)
        tape.backward(_outputs(result)[0])
        return self._stepped(result)

    def _record(self, args: tuple) -> tuple[Tape, Any, tuple[Tensor, ...]]:
        tape = keep_all(Tape(persistent=True))  # code generation reads every recorded value
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
        tape, result, outs = self._record(args)
        kind = None if not isinstance(result, (tuple, list)) else list if isinstance(result, list) else tuple
        plan, grads = compile_records(tape.records, args, outs, kind)
        self._captured[key] = _captured(tape.records, args)
        del tape
        self.traces += 1
        plan.verified = not self.check
        plan.shape = kind
        self._plans[key] = plan
        self._fast.pop(key, None)
        while len(self._plans) > self.max_traces:
            self._forget(next(iter(self._plans)))
        _accumulate(plan.leaves_for(args), grads)
        return result

    def _verify(self, plan: Plan, args: tuple) -> Any:
        outs, grads = plan.run(*args)
        tape, _, eager_outs = self._record(args)
        if structure(tape.records) != plan.structure:
            raise TraceError(
                f"trace: fn ran different ops on this call than when it was traced (called at "
                f"{call_site()}); its control flow depends on tensor values, so it cannot be traced"
            )
        leaves = plan.leaves_for(args)
        # every leaf of the plan gets a gradient from the same records: none is None
        eager_grads = cast(
            "tuple[Tensor, ...]", tape.gradient(eager_outs[0], leaves, allow_unused=True) if leaves else ()
        )
        pairs = [(f"output {i}", o, e.data) for i, (o, e) in enumerate(zip(outs, eager_outs))]
        pairs += [(f"the gradient of {tuple(t.shape)}", g, e.data) for t, g, e in zip(leaves, grads, eager_grads)]
        for what, replayed, eager in pairs:
            if replayed.shape != eager.shape or not torch.allclose(replayed, eager, rtol=1e-5, atol=1e-6):
                raise TraceError(
                    f"trace: the replay of fn gave a different {what} than running it (called at "
                    f"{call_site()}); fn uses values that tapegrad ops do not compute (.item(), raw "
                    "torch on .data, random numbers), so it cannot be traced"
                )
        plan.verified = True
        _accumulate(leaves, grads)
        return plan.result(outs)


def _captured(records: Sequence[Record], args: tuple) -> list[Tensor]:
    """The tg.Tensors the records read that neither an input nor a record made (parameters, buffers)."""
    made = {id(r.output) for r in records} | {id(a) for a in args}
    seen: set[int] = set()
    found: list[Tensor] = []

    def visit(x: Any) -> None:
        if isinstance(x, Tensor):
            if id(x) not in made and id(x) not in seen:
                seen.add(id(x))
                found.append(x)
        elif isinstance(x, (tuple, list)):
            for y in x:
                visit(y)

    for r in records:
        visit(r.inputs)
        visit(list(r.params.values()))
    return found


def _accumulate(leaves: list[Tensor], grads: tuple) -> None:
    for leaf, g in zip(leaves, grads):  # in the order the walk found them final
        if g is None:
            continue
        prev = leaf.grad
        leaf.grad = wrap(g) if prev is None else prev + wrap(g)
        if has_hooks(leaf):
            run_hooks(leaf)


def _outputs(result: Any) -> tuple[Tensor, ...]:
    outs = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        raise TraceError(
            "trace: fn must return the loss as a tg.Tensor, or a tuple/list of tg.Tensors whose first "
            f"item is the loss; got {type(result).__name__}"
        )
    return outs


def _key(a: Any) -> Any:
    """What the trace depends on in one input: a tensor's shape, dtype, device and requires_grad,
    any other value as it is."""
    if isinstance(a, Tensor):
        d = a.data
        return d.shape, d.dtype, d.device, a.requires_grad
    if isinstance(a, torch.Tensor):
        return a.shape, a.dtype, a.device, None
    return type(a), a
