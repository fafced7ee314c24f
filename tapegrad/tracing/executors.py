"""What runs a verified trace (``tg.trace(..., executor=)``), and what ``"auto"`` picks.

An executor is a callable ``(args, captured data) -> (fn's result, whether the optimizer stepped)``:

- ``"python"``: the graph module's generated code, one Python call per op;
- ``"torchscript"``: the aten ops of one run, replayed by TorchScript's interpreter
  (`tapegrad.tracing.replay_script`): compiles in milliseconds, makes the eager kernels;
- ``"inductor"``: the graph compiled by inductor into fused C++ (CPU) or Triton (CUDA) kernels
  (`tapegrad.tracing.replay_inductor`): the fastest per step, but its compile takes seconds.

Both compiled executors are a `CompiledStep`: the plan's graph, then the optimizer's ``step()``
when it can be folded in (hyperparameters baked in, state tensors inputs), handed to a compiler.
The first replay of every compiled function (on copies) is checked against the eager step (on
the real tensors): a value the compiler froze, or a miscompile, is never trained on. ``"auto"``
picks by docs/performance.md: TorchScript where torch has it, else the Python code. Inductor is
faster per step (a tenth on the seed network, a third on the models benchmark's GRU and
transformer), but its first call takes seconds in a process even with its cache warm (importing
its compiler, probing the CPU) and minutes cold on a real model; TorchScript compiles in
milliseconds. ``executor="inductor"`` is for long runs that repay that.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from operator import is_
from typing import Any

import torch

from ..engine.tensors import Tensor, wrap
from . import replay_script
from .replay_optim import OptimizerView
from .tracegen import Declined, Plan, accumulate

__all__ = ["EXECUTORS", "CompiledStep", "Draws", "make_executor", "pick"]

EXECUTORS = ("auto", "torchscript", "python", "inductor")

# compile(fn, example inputs, folded) -> the compiled fn; raises Declined where it cannot be faithful
Compiler = Callable[[Callable[..., Any], list[torch.Tensor], bool], Callable[..., Any]]


def pick(executor: str) -> str:
    """The executor that ``executor`` names; ``"auto"`` as measured."""
    if executor != "auto":
        return executor
    return "torchscript" if replay_script.available() else "python"


def make_executor(name: str, plan: Plan, view: OptimizerView | None) -> Any:
    """The executor ``name`` for ``plan``."""
    if name == "torchscript":
        return CompiledStep(plan, view, replay_script.compile_script, warn=False)
    if name == "inductor":
        from .replay_inductor import compile_inductor  # imports torch._inductor: seconds, only when asked

        return CompiledStep(plan, view, compile_inductor, warn=True)

    return lambda args, captured: (plan.step(*args), False)  # python: the graph module's code


class Draws:
    """The generators' states and the step's buffers before a run of the step: `rewind` makes the next
    run draw the same numbers (a replay checked against the eager step must see the eager step's dropout
    masks) and start from the same running statistics (so that a checked call updates them once)."""

    def __init__(self, plan: Plan) -> None:
        self.states = [(g, g.get_state()) for g in plan.generators]
        self.buffers = [(t, t.clone()) for t in plan.state]

    def rewind(self) -> None:
        """Put every generator and buffer back where it was."""
        for g, state in self.states:
            g.set_state(state)
        with torch.no_grad():
            for t, saved in self.buffers:
                if not torch.equal(t, saved):  # only what the run wrote: a constant may be an expanded view
                    t.copy_(saved)


class CompiledStep:
    """A verified plan run by a compiled function: forward and backward, and the optimizer's update
    when it can be folded in (else the optimizer steps eagerly after it)."""

    def __init__(self, plan: Plan, view: OptimizerView | None, compiler: Compiler, warn: bool) -> None:
        self.plan, self.view, self.compiler, self.warn = plan, view, compiler, warn
        self.fold = view is not None and view.folds(plan)
        self.compiled: Any = None  # compiled(*inputs) -> outputs (folded) or outputs + gradients
        self.layout: Any = None  # what a folded graph baked in: the state tensors, the hyperparameters
        self.checked = False  # whether the compiled step's first replay matched the eager step
        self.refused = False
        # raw tensors the graph reads as attributes (batch_norm's running statistics, constants) are
        # inputs of the compiled function, after the others: a compiler would bake them in as constants,
        # and an in-place update of a buffer would then never reach it
        self.names = [name for name, _ in plan.gm.named_buffers()]
        self.buffers = list(plan.state)

    def __call__(self, args: tuple, captured: list[torch.Tensor]) -> tuple[Any, bool]:
        """Run the step on ``args``; returns (fn's result, whether the optimizer step was done)."""
        plan = self.plan
        if self.checked:  # the per-call path: what the compiled function baked in, compared by identity
            if self.layout is None:
                flat = self.compiled(*plan.arg_data(args), *captured, *self.buffers)
                accumulate(plan.leaves_for(args), flat[plan.n_out :])
                return plan.result(flat[: plan.n_out]), False
            view = self.view
            assert view is not None
            state, baked = view.state_tensors(), self.layout[0]
            if (
                view.grads_clear()
                and len(state) == len(baked)
                and all(map(is_, state, baked))
                and (view.same_hyperparameters(self.layout[1]))
            ):
                return plan.result(self.compiled(*plan.arg_data(args), *captured, *state, *self.buffers)), True
        return self._general(args)

    def _general(self, args: tuple) -> tuple[Any, bool]:
        """A call that compiles, checks a first replay, or finds what a folded graph baked in changed."""
        view, plan = self.view, self.plan
        fold = self.fold and view is not None and view.grads_clear()
        if self.refused or (self.fold and not fold):  # (gradients accumulated outside: the eager step adds)
            return plan.step(*args), False
        inputs, buffers = plan.inputs(args), self.buffers
        if fold:
            assert view is not None
            state = view.state_tensors()
            layout = (state, view.hyperparameters())
            if self.compiled is not None and self._same(layout):
                if self.checked:
                    return plan.result(self.compiled(*inputs, *state, *buffers)), True
                return self._check(args, inputs + state + buffers, True), True
            try:
                self._compile(inputs + state + buffers, layout)
            except Declined:  # the optimizer reads a value into Python (Adam's step count): it steps eagerly
                self.fold, self.compiled = False, None
            else:
                result = plan.step(*args)
                view.step()
                return result, True
        if self.compiled is None:
            try:
                self._compile(inputs + buffers, None)
            except Declined as err:
                self.refused = True  # the Python graph runs
                if self.warn:
                    warnings.warn(f"trace: the step runs from the Python graph: {err}", RuntimeWarning, stacklevel=5)
            return plan.step(*args), False
        if not self.checked:
            return self._check(args, inputs + buffers, False), False
        flat = self.compiled(*inputs, *buffers)
        accumulate(plan.leaves_for(args), flat[plan.n_out :])
        return plan.result(flat[: plan.n_out]), False

    def _same(self, layout: tuple[list[torch.Tensor], Any]) -> bool:
        """Whether the folded graph baked in these state tensors (by identity) and hyperparameters."""
        if self.layout is None:
            return False
        (state, hyper), (baked, baked_hyper) = layout, self.layout
        return len(state) == len(baked) and all(map(is_, state, baked)) and hyper == baked_hyper

    def _compile(self, inputs: list[torch.Tensor], layout: Any) -> None:
        """Compile (on copies: TorchScript's tracer runs the step); it is checked on its first replay."""
        draws = Draws(self.plan)
        try:
            compiled = self.compiler(self._body(layout is not None, len(inputs)), _copies(inputs),
                                     layout is not None)  # fmt: skip
        finally:
            draws.rewind()  # whatever the compiler drew, the eager step draws again
        self.compiled, self.layout, self.checked = compiled, layout, False

    def _check(self, args: tuple, inputs: list[torch.Tensor], folded: bool) -> Any:
        """The first replay of a compiled step, on copies, against the eager step on the real tensors: on
        another call than the compiling one, so that a value the compiler froze shows."""
        plan, view = self.plan, self.view
        copies = _copies(inputs)
        draws = Draws(plan)
        got = self.compiled(*copies)
        draws.rewind()
        want, grads = plan.run(*args)
        accumulate(plan.leaves_for(args), grads)
        if folded:
            assert view is not None
            view.step()
            n = len(plan.inputs(args)) - len(plan.captured)
            pairs = zip([*got, *copies[n:]], [*want, *inputs[n:]])
        else:
            nb = len(self.buffers)
            pairs = zip([*got, *copies[len(copies) - nb :]], [*want, *grads, *inputs[len(inputs) - nb :]])
        if all(g.shape == w.shape and torch.allclose(g, w, rtol=1e-5, atol=1e-6) for g, w in pairs):
            self.checked = True
        elif folded:
            self.fold, self.compiled = False, None  # a value frozen into the update: the optimizer steps eagerly
        else:
            self.refused, self.compiled = True, None
            if self.warn:
                warnings.warn(
                    "trace: the compiled step differs from the eager step on its first replay; the step runs "
                    "from the Python graph instead (a miscompile is never trained on)",
                    RuntimeWarning,
                    stacklevel=6,
                )
        return plan.result(want)

    def _body(self, folded: bool, n_inputs: int) -> Callable[..., Any]:
        """The function a compiler captures: the graph, then (folded) the optimizer's step on its inputs."""
        plan, view, names = self.plan, self.view, self.names
        n_in = n_inputs - len(names) - (len(view.state_tensors()) if folded and view is not None else 0)
        n_args = n_in - len(plan.captured)

        def step(*flat: torch.Tensor) -> Any:
            with _Attributes(plan.gm, names, flat[len(flat) - len(names) :]):
                out = plan.forward(*flat[:n_in])
            if not folded:
                return out
            assert view is not None
            outs, grads = out[: plan.n_out], out[plan.n_out :]
            with _Bound(plan.captured, flat[n_args:n_in], view, flat[n_in:]):
                for leaf, g in zip(plan.leaves, grads):
                    leaf.grad = wrap(g)
                view.step()
            return tuple(outs)

        return step


def _copies(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of a step's inputs with their strides (a compiler specializes on them), except an expanded
    view (a constant such as a causal mask, never written in place): it is passed as it is."""
    return [t if any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape)) else t.clone() for t in inputs]


class _Attributes:
    """The graph module's buffers pointed at the compiler's tensors while it captures the step."""

    def __init__(self, module: torch.fx.GraphModule, names: list[str], tensors: Sequence[torch.Tensor]) -> None:
        self.module, self.names, self.tensors = module, names, tensors

    def __enter__(self) -> None:
        self.saved = [getattr(self.module, name) for name in self.names]
        for name, t in zip(self.names, self.tensors):
            setattr(self.module, name, t)

    def __exit__(self, *exc: Any) -> None:
        for name, t in zip(self.names, self.saved):
            setattr(self.module, name, t)


class _Bound:
    """Parameters and optimizer state pointed at the compiler's tensors while it captures the step."""

    def __init__(self, params: list[Tensor], datas: Sequence[Any], view: OptimizerView, state: Sequence[Any]) -> None:
        self.params, self.datas, self.view, self.state = params, datas, view, state

    def __enter__(self) -> None:
        self.saved = [p.data for p in self.params]
        for p, data in zip(self.params, self.datas):
            p.data = data
        held = getattr(self.view.optimizer, "state", {})
        self.keys = self.view.state_keys_now()
        self.slots = [(s, k) for p in self.view.params if (s := held.get(p)) for k in s if torch.is_tensor(s[k])]
        self.saved_state = [slot[k] for slot, k in self.slots]
        for (slot, k), t in zip(self.slots, self.state):
            slot[k] = t

    def __exit__(self, *exc: Any) -> None:
        for p, data in zip(self.params, self.saved):
            p.data = data
            p.grad = None
        for (slot, k), t in zip(self.slots, self.saved_state):
            slot[k] = t
        if self.view.state_keys_now() != self.keys:  # the step made new state: it must run eagerly once
            held = getattr(self.view.optimizer, "state", {})
            for p, keys in zip(self.view.params, self.keys):
                for k in set(held.get(p, {})) - set(keys):
                    del held[p][k]
            if exc[0] is None:
                raise Declined("the optimizer's step creates its state")
