"""What runs a verified trace (``tg.trace(..., executor=)``), and what ``"auto"`` picks.

An executor is a callable ``(args, captured data) -> (fn's result, whether the optimizer stepped)``:
``"python"`` runs the graph module's generated code; ``"torchscript"`` replays the aten ops of one
run from TorchScript's interpreter (`replay_script`: compiles in milliseconds, the eager kernels);
``"inductor"`` compiles the graph into fused C++ (CPU) or Triton (CUDA) kernels (`replay_inductor`).
Both compiled executors are a `CompiledStep`: the plan's graph, with the optimizer's ``step()``
folded in when it can be (hyperparameters baked in, state tensors inputs). The first replay of
every compiled function (on copies) is checked against the eager step: a value the compiler froze,
or a miscompile, is never trained on. ``"auto"``: see `pick`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from operator import is_
from typing import Any

import torch

from ..engine.tensors import wrap
from . import replay_script
from .replay_optim import OptimizerView, Swapped
from .tracegen import Declined, Plan, accumulate

__all__ = ["EXECUTORS", "CompiledStep", "Draws", "make_executor", "pick"]

EXECUTORS = ("auto", "torchscript", "python", "inductor")

# compile(fn, example inputs, how many leading outputs the caller keeps (None: all)) -> the compiled fn;
# raises Declined where it cannot be faithful
Compiler = Callable[[Callable[..., Any], list[torch.Tensor], int | None], Callable[..., Any]]


# "auto" times inductor against TorchScript from this many elements made per step (the sum of its records'
# output sizes); below, it takes TorchScript: inductor's compile (seconds warm, minutes cold) is not repaid
# by a step the size of the seed network's (1.5 thousand: it gains about a fifth of 70 us), and a
# cross-validation compiles hundreds of such steps, one per configuration (docs/performance.md).
INDUCTOR_FROM_ELEMENTS = 1 << 15


def pick(executor: str, plan: Plan) -> str:
    """The executor that ``executor`` names for ``plan``; ``"auto"``: inductor, and the faster of it and TorchScript
    (`_measure`), from `INDUCTOR_FROM_ELEMENTS` where it can compile here, else TorchScript, else Python."""
    if executor != "auto":
        return executor
    if plan.elements >= INDUCTOR_FROM_ELEMENTS and _inductor_works(plan):
        return "inductor"
    return "torchscript" if replay_script.available() else "python"


def _inductor_works(plan: Plan) -> bool:
    """Whether inductor and what it compiles with are here (Triton for CUDA, a C++ compiler for the CPU),
    found without importing it (seconds)."""
    cuda = any(t.data.device.type == "cuda" for t in plan.captured)
    found = importlib.util.find_spec("triton") if cuda else shutil.which(os.environ.get("CXX", "c++"))
    return found is not None and importlib.util.find_spec("torch._inductor") is not None


def make_executor(name: str, plan: Plan, view: OptimizerView | None) -> Any:
    """The executor ``name`` for ``plan`` (``"auto"``: `pick`'s; inductor's rival and fallback: TorchScript)."""
    chosen = pick(name, plan)
    if chosen == "torchscript":
        return CompiledStep(plan, view, replay_script.compile_script, warn=False)
    if chosen == "inductor":
        from .replay_inductor import compile_inductor  # imports torch._inductor: seconds, only when asked

        if name == "auto" and replay_script.available():
            return CompiledStep(plan, view, compile_inductor, warn=False, fallback=replay_script.compile_script)
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

    def __init__(self, plan: Plan, view: OptimizerView | None, compiler: Compiler, warn: bool,
                 fallback: Compiler | None = None) -> None:  # fmt: skip
        self.plan, self.view, self.compiler, self.warn, self.fallback = plan, view, compiler, warn, fallback
        self.fold = view is not None and view.folds(plan)
        self.compiled: Any = None  # compiled(*inputs) -> outputs + gradients (folded: gradients as used)
        self.layout: Any = None  # what a folded graph baked in: the state tensors, the hyperparameters
        self.checked = False  # whether the compiled step's first replay matched the eager step
        self.refused = False
        self.rival: Any = None  # "auto": the checked inductor step, timed, while TorchScript's is compiled
        # raw tensors the graph reads as attributes (batch_norm's running statistics, constants) are
        # inputs of the compiled function, after the others: a compiler would bake them in as constants,
        # and an in-place update of a buffer would then never reach it
        self.names = [name for name, _ in plan.gm.named_buffers()]
        self.buffers = list(plan.state)

    def __call__(self, args: tuple, captured: list[torch.Tensor]) -> tuple[Any, bool]:
        """Run the step on ``args``; returns (fn's result, whether the optimizer step was done)."""
        if self.checked:  # what the compiled function baked in, compared by identity
            view = self.view
            if self.layout is None or (view is not None and view.grads_clear() and self._baked(view.state_tensors())):
                return self.replay(args, captured)
        return self._general(args)

    def settled(self) -> bool:
        """Whether the compiled step is checked: then `replay` runs it where nothing it baked in changed."""
        return self.checked and not self.refused

    def replay(self, args: tuple, captured: list[torch.Tensor]) -> tuple[Any, bool]:
        """The checked compiled step, on ``args`` and the captured tensors' data (nothing checked)."""
        plan = self.plan
        if self.layout is None:
            flat = self.compiled(*plan.arg_data(args), *captured, *self.buffers)
            accumulate(plan.leaves_for(args), flat[plan.n_out :])
            return plan.result(flat[: plan.n_out]), False
        flat = self.compiled(*plan.arg_data(args), *captured, *self.layout[0], *self.buffers)
        return plan.result(flat[: plan.n_out]), True

    def _baked(self, state: list[torch.Tensor]) -> bool:
        """Whether the folded graph baked in these state tensors (by identity) and the hyperparameters."""
        (baked, hyper), view = self.layout, self.view
        assert view is not None
        return len(state) == len(baked) and all(map(is_, state, baked)) and view.same_hyperparameters(hyper)

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
            if self.compiled is not None and self.layout is not None and self._baked(state):
                return self._check(args, inputs + state + buffers, True), True
            try:
                self._compile(inputs + state + buffers, (state, view.hyperparameters()))
            except Declined:  # the optimizer reads a value into Python, or makes its state: it steps eagerly
                self.fold, self.compiled = False, None
            else:
                result = plan.step(*args)
                view.step()
                return result, True
        if self.compiled is None:
            try:
                self._compile(inputs + buffers, None)
            except Declined as err:
                self._refuse(f"the step runs from the Python graph: {err}", 6)
            return plan.step(*args), False
        return self._check(args, inputs + buffers, False), False

    def _compile(self, inputs: list[torch.Tensor], layout: Any) -> None:
        """Compile (on copies: TorchScript's tracer runs the step); it is checked on its first replay."""
        draws = Draws(self.plan)
        try:
            kept = self.plan.n_out if layout is not None else None  # folded: the gradients are scratch
            compiled = self.compiler(self._body(layout is not None, len(inputs)), _copies(inputs), kept)
        finally:
            draws.rewind()  # whatever the compiler drew, the eager step draws again
        self.compiled, self.layout, self.checked = compiled, layout, False

    def _check(self, args: tuple, inputs: list[torch.Tensor], folded: bool) -> Any:
        """The first replay of a compiled step, on copies, against the eager step on the real tensors: on
        another call than the compiling one, so that a value the compiler froze shows. A folded update is
        checked against the optimizer's own step on the compiled gradients (on more copies): Adam divides
        a gradient by its size, so a rounding-level difference in a gradient that is zero but for rounding
        (a key's bias under softmax) is as large as the update itself."""
        plan, view, nb = self.plan, self.view, len(self.buffers)
        copies, reference = _copies(inputs), _copies(inputs) if folded else []
        draws = Draws(plan)
        got = self.compiled(*copies)
        draws.rewind()
        want, grads = plan.run(*args)
        accumulate(plan.leaves_for(args), grads)
        n, m = len(inputs) - len(plan.captured) - nb, len(inputs) - nb
        if folded:
            assert view is not None
            view.step()
            n -= len(self.layout[0])
            self._optimizer_step(reference[n:m], got[plan.n_out :])
            pairs = zip([*got, *copies[n:]], [*want, *grads, *reference[n:m], *inputs[m:]])
        else:
            pairs = zip([*got, *copies[m:]], [*want, *grads, *inputs[m:]])
        if all(g.shape == w.shape and torch.allclose(g, w, rtol=1e-5, atol=1e-6) for g, w in pairs):
            self.checked = True
            if self.fallback is not None or self.rival is not None:
                self._measure(inputs)
        elif folded:
            self.fold, self.compiled = False, None  # a value frozen into the update: the optimizer steps eagerly
        else:
            self._refuse("the compiled step differs from the eager step on its first replay; the step runs from "
                         "the Python graph instead (a miscompile is never trained on)", 7)  # fmt: skip
        return plan.result(want)

    def _measure(self, inputs: list[torch.Tensor]) -> None:
        """For "auto", a checked step's replays timed (on copies): inductor's, then TorchScript's turn;
        TorchScript's, then the faster of the two is kept (`compiler` tells which)."""
        draws = Draws(self.plan)
        mine = (_timed(self.compiled, _copies(inputs)), self.compiler, self.compiled, self.layout, self.fold)
        draws.rewind()
        if self.rival is not None:
            self._keep(min(mine, self.rival, key=lambda m: m[0]))
        else:  # TorchScript's turn, as where inductor refuses
            self._refuse("", 0)
            self.rival = mine

    def _keep(self, kept: tuple) -> None:
        _, self.compiler, self.compiled, self.layout, self.fold = kept
        self.rival, self.checked = None, True

    def _refuse(self, why: str, stacklevel: int) -> None:
        """The compiler cannot compile the step faithfully: the fallback compiler's turn, else the Python graph."""
        if self.rival is not None:  # TorchScript's, after inductor's step was checked: inductor's
            self._keep(self.rival)
            return
        self.compiled, self.checked = None, False
        if self.fallback is not None:
            self.compiler, self.fallback = self.fallback, None
            self.fold = self.view is not None and self.view.folds(self.plan)
            return
        self.refused = True
        if self.warn:
            warnings.warn(f"trace: {why}", RuntimeWarning, stacklevel=stacklevel)

    def _body(self, folded: bool, n_inputs: int) -> Callable[..., Any]:
        """The function a compiler captures: the graph, then (folded) the optimizer's step on its inputs."""
        plan, view, names = self.plan, self.view, self.names
        n_in = n_inputs - len(names) - (len(view.state_tensors()) if folded and view is not None else 0)
        n_args = n_in - len(plan.captured)

        def step(*flat: torch.Tensor) -> Any:
            with Swapped([(plan.gm, name) for name in names], flat[len(flat) - len(names) :]):
                out = plan.forward(*flat[:n_in])
            if not folded:
                return out
            assert view is not None
            keys = view.state_keys_now()
            try:  # the gradients are outputs too: the first replay is checked on them
                self._optimizer_step(flat[n_args : len(flat) - len(names)], out[plan.n_out :])
            finally:
                made = view.forget_new_state(keys)
            if made:  # the step made its state: it must run eagerly once
                raise Declined("the optimizer's step creates its state")
            return tuple(out)

        return step

    def _optimizer_step(self, tensors: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        """The optimizer's step with the captured tensors' data, then its state, pointed at ``tensors``
        and the leaves' gradients at ``grads`` (a compiler captures it; a check runs it on copies)."""
        plan, view = self.plan, self.view
        assert view is not None
        slots = [(p, "data") for p in plan.captured] + [(leaf, "grad") for leaf in plan.leaves]
        with Swapped(slots + view.state_slots(), [*tensors[: len(plan.captured)], *map(wrap, grads),
                                                   *tensors[len(plan.captured) :]]):  # fmt: skip
            view.step()


def _timed(compiled: Callable[..., Any], inputs: list[torch.Tensor]) -> float:
    """The least time of 3 runs of ``compiled`` on ``inputs`` (CPU time; on CUDA wall time, synchronized)."""
    cuda = any(t.is_cuda for t in inputs)
    clock, took = time.perf_counter if cuda else time.process_time, [float("inf")]
    for _ in range(3):
        start = clock()
        compiled(*inputs)
        if cuda:
            torch.cuda.synchronize()  # (each run starts synchronized: the one before ended so)
        took.append(clock() - start)
    return min(took)


def _copies(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of a step's inputs with their strides, even a column's (a compiler specializes on them),
    except an expanded view (a constant such as a causal mask, never written in place): passed as it is."""
    expanded = [any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape)) for t in inputs]
    return [t if e else t.new_empty_strided(t.shape, t.stride()).copy_(t) for t, e in zip(inputs, expanded)]
