"""How a verified trace runs (``tg.trace(..., executor=)``): an input signature's `Entry`, and what ``"auto"`` picks.

``"python"`` runs the graph module's generated code; ``"inductor"`` compiles it into fused C++ (CPU) or Triton
(CUDA) kernels (`replay_inductor`); ``"auto"`` is tiered: the Python graph first, inductor once the step's
replays have taken as long as a compile costs (`compile_after`), kept only where it checks and runs faster.
"""

from __future__ import annotations

import functools
import importlib.util
import operator
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..engine.tensors import wrap
from . import replay_cuda
from .replay_optim import OptimizerView, stepped, swapped
from .signatures import armed, key_of
from .tracegen import Declined, Plan, accumulate

__all__ = ["COMPILE_AFTER", "EXECUTORS", "Entry", "compile_after", "inductor_works", "same"]

EXECUTORS = ("auto", "python", "inductor")

# compile(fn, example inputs, how many leading outputs the caller keeps (None: all)) -> the compiled fn;
# raises Declined where it cannot be faithful
Compiler = Callable[[Callable[..., Any], list[torch.Tensor], int | None], Callable[..., Any]]

# "auto" runs a step on the Python graph until its replays have taken this many seconds (wall time), then
# compiles it with inductor (ski rental: rent until the rent paid equals the price). The seed step's compile in
# a new process costs 1.4 to 1.8 s with inductor's caches warm (its import included), 9 to 12.5 s cold, and
# saves 68 us of its 113 a step; a model's, minutes cold. 10 s: about a cold compile of a small step, and
# the test suite's traced runs (0.07 s of replays at most) never compile (docs/performance.md, ninth round).
COMPILE_AFTER = 10.0
clock = time.perf_counter  # what `Entry` times the Python graph's replays with (a test steps its own)


def compile_after() -> float:
    """Seconds of replays after which ``"auto"`` compiles a step: ``TAPEGRAD_COMPILE_AFTER``, else `COMPILE_AFTER`."""
    value = os.environ.get("TAPEGRAD_COMPILE_AFTER", COMPILE_AFTER)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"TAPEGRAD_COMPILE_AFTER must be a number of seconds (inf: never); got {value!r}") from None


def inductor_works(cuda: bool = False) -> bool:
    """Whether inductor and what it compiles with are here (Triton for CUDA, a C++ compiler for the CPU),
    found without importing it (seconds)."""
    found = importlib.util.find_spec("triton") if cuda else shutil.which(os.environ.get("CXX", "c++"))
    return found is not None and importlib.util.find_spec("torch._inductor") is not None


def _inductor(fn: Callable[..., Any], inputs: list[torch.Tensor], kept: int | None) -> Callable[..., Any]:
    from .replay_inductor import compile_inductor  # imports torch._inductor: seconds, only when it compiles

    return compile_inductor(fn, inputs, kept)


def _never(args: tuple) -> Any:
    return None


class Entry:
    """One input signature's trace and how it runs: its plan, whether its first replay was checked against the
    eager step (``verified``), its executor (`start`), and once armed (`arm`), ``call(args)``: the call's result
    where it passes the armed check (the step run with no other check), else None.

    A compiled executor (inductor, a CUDA graph) runs forward and backward, and the optimizer's update when it
    can be folded in (hyperparameters baked in, state tensors inputs; else the optimizer steps eagerly after it).
    Its first calls run the Python graph, timed, until they have taken ``after`` seconds (``"auto"``; 0: none).
    Then the step is compiled folded (where every gradient of the plan is the optimizer's), else unfolded: a try
    is compiled on one call and checked (on copies) on the next. The first try whose replay matches the eager
    step is kept (``"auto"``: where it also runs faster than the Python graph), so that a value the compiler
    froze, or a miscompile, is never trained on; with none, the Python graph runs the step (``refused``).
    """

    def __init__(self, key: tuple, plan: Plan, verified: bool, view: OptimizerView | None) -> None:
        self.key, self.plan, self.verified, self.view = key, plan, verified, view
        self.seen = [t.data for t in plan.captured]  # the captured tensors' data, as the executor reads them
        self.kinds = [key_of(t) for t in plan.captured]
        self.call: Callable[[tuple], Any] = _never
        self.armed_on: tuple = ()  # what the armed check was made for: a call that failed it arms no other
        self.executor: str | None = None  # "python", "inductor", "auto" or "cuda_graph", once started
        self.compiler: Compiler | None = None  # None: the Python graph runs the step
        self.warn, self.after, self.spent = False, 0.0, 0.0  # seconds of Python replays before a compile; so far
        self.tries: list[bool] = []  # the compiles to try: folded (True), unfolded
        self.compiled: Any = None  # compiled(*inputs) -> outputs + gradients (folded: gradients as used)
        self.layout: Any = None  # what a folded graph baked in: the state tensors, the hyperparameters
        self.checked = False  # whether a compiled step is kept (its first replay matched the eager step)
        self.refused, self.why = False, ""  # no try compiled faithfully (or faster): the Python graph runs the step

    def start(self, name: str, cuda_graph: bool) -> None:
        """Run the step on the executor ``name`` from now on (``"auto"``: inductor after `compile_after` seconds
        where it works here, else Python); ``cuda_graph``: captured as a CUDA graph (`replay_cuda`) instead."""
        plan, view = self.plan, self.view
        folds = view is not None and view.folds(plan)
        if cuda_graph:
            if view is not None and folds:
                replay_cuda.check_state_on_cuda(view)
            self.compiler = functools.partial(replay_cuda.Graphed, plan)
        elif name == "inductor" or (name == "auto" and inductor_works(any(t.data.is_cuda for t in plan.captured))):
            self.compiler, self.after = _inductor, compile_after() if name == "auto" else 0.0
        self.executor, self.warn = "cuda_graph" if cuda_graph else name, cuda_graph or name == "inductor"
        self.tries = [True, False] if folds else [False]

    @property
    def fold(self) -> bool:
        """Whether the compiled step (kept, or being tried) makes the optimizer's update."""
        return self.layout is not None

    @property
    def settled(self) -> bool:
        """Whether the executor runs every later call the same way (a kept compiled step, or the Python graph)."""
        return self.executor is not None and (self.compiler is None or self.checked or self.refused)

    def arm(self, args: tuple) -> None:
        """Arm ``call`` for calls like ``args`` where the executor has settled, else disarm it. Where the check
        would bake in what it baked in last time (a call failed it: a gradient held, a hook), nothing is made."""
        plan, folded = self.plan, self.layout is not None
        on = (self.executor, self.compiled, self.layout, *self.seen)
        if len(on) == len(self.armed_on) and all(map(operator.is_, on, self.armed_on)):
            return
        self.call, self.armed_on = _never, on if self.settled else ()
        if not self.armed_on:  # a compiled step not kept yet, or still to be compiled
            return
        tests = armed(self, args)
        if tests is None:  # no tensor guard in this torch
            return
        check, env = tests
        if folded:  # the folded step's inputs: the arguments' data, then what it was built with
            datas = [f"args[{i}]" + (".data" if k[3] is not None else "") for i, k in enumerate(self.key) if len(k) > 2]
            env.update(compiled=self.compiled, tail=[*self.seen, *plan.consts, *self.layout[0]], result=plan.result)
            body = f"result(compiled({', '.join(datas)}, *tail))"
        else:  # the Python graph, or an unfolded compiled step: the optimizer steps after it
            env["replay"] = self.replay
            body = "replay(args)"
        self.call = eval(f"lambda args: {body} if {check} else None", env)

    def run(self, args: tuple) -> Any:
        """Run the step on ``args`` (then the optimizer's step), with the checks an armed call skips."""
        view = self.view
        if self.compiler is None or (
            self.checked and (self.layout is None or (view is not None and view.grads_clear() and self._baked()))
        ):
            return self.replay(args)
        result = self._general(args)
        if self.refused and self.warn:
            self.warn = False
            warnings.warn(f"trace: {self.why}", RuntimeWarning, stacklevel=4)  # (the caller of Traced.__call__)
        return stepped(view, result)

    def replay(self, args: tuple) -> Any:
        """The settled executor on ``args``, nothing checked: the kept compiled step, else the Python graph; the
        optimizer steps after it unless its update is folded in."""
        plan = self.plan
        if self.compiled is None:
            return stepped(self.view, plan.step(*args))
        if self.layout is not None:
            return plan.result(self.compiled(*plan.arg_data(args), *self.seen, *plan.consts, *self.layout[0]))
        flat = self.compiled(*plan.arg_data(args), *self.seen, *plan.consts)
        accumulate(plan.leaves_for(args), flat[plan.n_out :])
        return stepped(self.view, plan.result(flat))

    def _baked(self) -> bool:
        """Whether the folded graph baked in the optimizer's state tensors (by identity) and hyperparameters."""
        (baked, hyper), view = self.layout, self.view
        assert view is not None
        state = view.state_tensors()
        same_state = len(state) == len(baked) and all(map(operator.is_, state, baked))
        return same_state and view.optimizer.param_groups == hyper

    def _general(self, args: tuple) -> Any:
        """A call that runs the Python graph while a compile would not be repaid yet, compiles or checks a try,
        or finds that what the kept folded step baked in changed (then it waits and is tried again); the Python
        graph runs the steps that no compiled step checks."""
        view, plan = self.view, self.plan
        clear = view is None or view.grads_clear()  # else the eager step adds to the gradients
        if self.checked and clear:
            self.tries, self.spent = [True, False], 0.0
            self.checked, self.compiled, self.layout = False, None, None
        if self.spent < self.after:
            start = clock()
            result = plan.step(*args)
            self.spent += clock() - start
            return result
        while self.tries and (clear or not self.tries[0]):
            fold = self.tries[0]
            if self.compiled is not None and (not fold or self._baked()):
                return self._check(args, fold)
            try:
                self._compile(fold, args)
                break
            except Declined as err:  # folded: the optimizer reads a value into Python, or makes its state
                self._next(f"the step runs from the Python graph: {err}")
        return plan.step(*args)

    def _compile(self, fold: bool, args: tuple) -> None:
        """Compile (on copies: a compiler may run the step); it is checked on its first replay."""
        state = self.view.state_tensors() if fold and self.view is not None else []
        inputs, kept = self.plan.inputs(args) + state, self.plan.n_out if fold else None  # folded: grads scratch
        self.compiled, self.layout = None, None
        assert self.compiler is not None
        with self.plan.rewound():  # whatever the compiler drew, the eager step draws again
            self.compiled = self.compiler(self._body(fold), _copies(inputs), kept)
        self.layout = (state, self.view.hyperparameters()) if fold and self.view is not None else None

    def _check(self, args: tuple, fold: bool) -> Any:
        """The first replay of a compiled try, on copies, against the eager step on the real tensors: on
        another call than the compiling one, so that a value the compiler froze shows. A folded update is
        checked against the optimizer's own step on the compiled gradients (on more copies): Adam divides
        a gradient by its size, so a rounding-level difference in a gradient that is zero but for rounding
        (a key's bias under softmax) is as large as the update itself."""
        plan, state = self.plan, list(self.layout[0]) if fold else []
        inputs = plan.inputs(args) + state
        copies, reference = _copies(inputs), _copies(inputs) if fold else []
        with plan.rewound():
            got = self.compiled(*copies)
        want, grads = plan.run(*args)
        accumulate(plan.leaves_for(args), grads)
        # [n:c] the captured tensors, [c:k] the constants, [k:] the optimizer's state
        n, c, k = plan.n_args, plan.n_inputs - len(plan.consts), plan.n_inputs
        if fold:
            self._optimizer_step(reference[n:c] + reference[k:], got[plan.n_out :])
            pairs = zip([*got, *copies[n:]], [*want, *grads, *reference[n:c], *inputs[c:k], *reference[k:]])
        else:
            pairs = zip([*got, *copies[c:]], [*want, *grads, *inputs[c:]])
        if not all(same(g, w) for g, w in pairs):  # folded: a value frozen into the update; the unfolded try is next
            self._next("the compiled step differs from the eager step on its first replay; the step runs "
                       "from the Python graph instead (a miscompile is never trained on)")  # fmt: skip
        elif self.after and _timed(self.compiled, inputs, plan) >= _timed(self._body(fold), inputs, plan):
            self._next("the compiled step is no faster than the Python graph", stop=True)  # ("auto")
        else:
            self.tries, self.checked = [], True
        return plan.result(want)

    def _next(self, why: str, stop: bool = False) -> None:
        """The try failed for ``why``: the next try (none where ``stop``), else the Python graph."""
        self.tries = [] if stop else self.tries[1:]
        self.compiled, self.layout, self.why = None, None, why
        self.refused = not self.tries

    def _body(self, folded: bool) -> Callable[..., Any]:
        """The function a compiler captures: the graph, then (folded) the optimizer's step on its inputs."""
        plan, view = self.plan, self.view
        n_plan, n_args = plan.n_inputs, plan.n_args

        def step(*flat: torch.Tensor) -> Any:
            out = plan.forward(*flat[:n_plan])
            if not folded:
                return out
            assert view is not None
            with view.making_no_state():  # the gradients are outputs too: the first replay is checked on them
                self._optimizer_step([*flat[n_args : n_args + len(plan.captured)], *flat[n_plan:]], out[plan.n_out :])
            return tuple(out)

        return step

    def _optimizer_step(self, tensors: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        """The optimizer's step with the captured tensors' data, then its state, pointed at ``tensors``
        and the leaves' gradients at ``grads`` (a compiler captures it; a check runs it on copies)."""
        plan, view = self.plan, self.view
        assert view is not None
        slots = [(p, "data") for p in plan.captured] + [(leaf, "grad") for leaf in plan.leaves]
        with swapped(slots + view.state_slots(), [*tensors[: len(plan.captured)], *map(wrap, grads),
                                                   *tensors[len(plan.captured) :]]):  # fmt: skip
            view.step()


def same(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Whether a replayed value matches the eager step's: the same shape, equal to float32 rounding."""
    return got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def _timed(compiled: Callable[..., Any], inputs: list[torch.Tensor], plan: Plan) -> float:
    """The least wall time of 3 runs of ``compiled`` on copies of ``inputs`` (not CPU time: a compiled step's
    threads may spin), on CUDA synchronized; ``plan``'s generators and buffers are then put back."""
    inputs, cuda, took = _copies(inputs), any(t.is_cuda for t in inputs), [float("inf")]
    with plan.rewound():
        for _ in range(3):
            start = time.perf_counter()
            compiled(*inputs)
            if cuda:
                torch.cuda.synchronize()  # (each run starts synchronized: the one before ended so)
            took.append(time.perf_counter() - start)
    return min(took)


def _copies(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of a step's inputs with their strides, even a column's (a compiler specializes on them),
    except an expanded view (a constant such as a causal mask, never written in place): passed as it is."""
    expanded = [any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape)) for t in inputs]
    return [t if e else t.new_empty_strided(t.shape, t.stride()).copy_(t) for t, e in zip(inputs, expanded)]
