"""The TorchScript executor of `tg.trace`: the generated step replayed without Python per op.

The generated function (`tracegen`) calls the primitives' forward functions and VJP rules on raw
torch tensors. ``torch.jit.trace`` runs it once and keeps the aten ops it made as a graph, which
TorchScript's interpreter (C++) then replays: no Python frame, argument parsing or `Tensor`
wrapper per op. The graph runs without TorchScript's optimization passes, which would rewrite
ops (``addmm`` into ``mm`` + ``add``) and change the float rounding: a replay makes exactly the
eager step's kernels. With an optimizer (``tg.trace(fn, optimizer=opt)``) the optimizer's step
is compiled into the same graph when it can be (its hyperparameters are constants, its state
tensors inputs; an optimizer that reads tensor values into Python, as Adam's step counter, runs
eagerly after the graph instead).

What the graph cannot see, it must not depend on: the plan's guards (input signature, captured
tensors' shape, dtype and device) still decide when to trace again, and any Python value that a
VJP rule computes from tensor values (``torch.jit.TracerWarning``) makes this executor decline,
so that the Python replay is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch

from .replay_optim import OptimizerView
from .tensor import Tensor, wrap
from .tracegen import Draws, Plan, accumulate

__all__ = ["Declined", "ScriptStep", "available", "foldable"]

# None on a torch without them: `available()` is then False, and no ScriptStep runs
_get_optimize = cast("Callable[[], bool]", getattr(torch._C, "_get_graph_executor_optimize", None))
_set_optimize = cast("Callable[[bool], None]", getattr(torch._C, "_set_graph_executor_optimize", None))


def available() -> bool:
    """Whether this torch has TorchScript's tracer and an unoptimized executor mode."""
    return hasattr(torch, "jit") and hasattr(torch.jit, "trace") and _set_optimize is not None


class Declined(Exception):
    """The step cannot be compiled into a graph faithfully (a Python value read from a tensor)."""


class ScriptStep:
    """A verified plan replayed from TorchScript graphs: fwd+bwd, or fwd+bwd+optimizer (folded).

    The graph takes the captured tensors' (parameters', buffers') current data on every call, so
    in-place updates and rebinding ``p.data`` to a tensor of the same kind are seen.
    """

    _fold_view: OptimizerView  # the view, set where there is one: read only when foldable (which implies one)
    _last: Any  # what the body of the graph being traced returned

    def __init__(self, plan: Plan, args: tuple, view: OptimizerView | None, check: bool = True) -> None:
        self.plan = plan
        # wrappers of our own that the graph is traced through (their data is this call's data)
        self.args = tuple(_wrapper(a) if isinstance(a, Tensor) else a for a in args)
        self.all_wrapped = all(isinstance(a, Tensor) for a in args)  # fixed by the input signature
        if view is not None:
            self._fold_view = view
        self.foldable = foldable(plan, view)
        self.checked = not check  # the first replay of the graph is compared with the Python one
        self.folded_checked = not check  # and the folded graph's first replay with the eager step
        self.plain: Any = None
        self.folded: Any = None
        self.buffers: list[torch.Tensor] = []  # persistent outputs of the folded graph's large products
        self.folded_hyper: list | None = None
        self.folded_state: list[int] = []

    def __call__(self, args: tuple, captured: list[torch.Tensor]) -> tuple[Any, bool]:
        """Run the step on ``args``; returns (fn's result, whether the optimizer step was done)."""
        if self.checked and self.foldable and (view := self._fold_view).grads_clear():
            if self.folded is not None:
                state = view.state_tensors()
                if list(map(id, state)) == self.folded_state and view.hyperparameters() == self.folded_hyper:
                    if not self.folded_checked:
                        return self._verify_folded(args, captured, state), True
                    outs = _run(self.folded, self._args(args) + captured + state + self.buffers)
                    return self.plan.result(outs), True
            try:
                return self._compile_folded(args), True
            except Declined:
                self.foldable = False
        if self.plain is None:
            self._last = None
            try:
                self.plain = _lower(self._trace(self._body(), args), reuse=False)[0]  # runs this call's step
            except Declined:
                self.plain = False
            outs, grads = self._last or self.plan.run(*args)
        elif self.plain is False:
            outs, grads = self.plan.run(*args)
        else:
            draws = Draws(self.plan)
            outs, grads = _run(self.plain, self._args(args) + captured)
            if not self.checked:  # the graph's first replay on new inputs against the Python replay
                draws.rewind()
                want = self.plan.run(*args)
                if not _same((*outs, *grads), (*want[0], *want[1])):
                    self.plain = False  # a branch on a value in a forward or VJP function was frozen
                    outs, grads = want
                self.checked = True
        accumulate(self.plan.leaves_for(args), grads)
        return self.plan.result(outs), False

    def _verify_folded(self, args: tuple, captured: list[torch.Tensor], state: list[torch.Tensor]) -> Any:
        """The folded graph's first replay, on copies of the weights and optimizer state, against the
        eager step on the real ones. A torch function that reads a tensor into Python inside C++
        (``_foreach_addcdiv_`` with a tensor of scalars) freezes the value into the graph without
        a warning; such a graph is dropped and the step is not folded."""
        copies = [t.clone() for t in (*captured, *state)]
        draws = Draws(self.plan)
        outs = _run(self.folded, self._args(args) + copies + self.buffers)
        draws.rewind()
        want, grads = self.plan.run(*args)
        accumulate(self.plan.leaves_for(args), grads)
        self._fold_view.step()
        wanted = [*want, *(t.data for t in self.plan.captured), *self._fold_view.state_tensors()]
        if _same((*outs, *copies), wanted):
            self.folded_checked = True
        else:
            self.folded, self.foldable = None, False
        return self.plan.result(want)

    def _args(self, args: tuple) -> list[torch.Tensor]:
        if self.all_wrapped:
            return [a.data for a in args]
        return [a.data if isinstance(a, Tensor) else a for a in args if isinstance(a, (Tensor, torch.Tensor))]

    def _body(self) -> Callable[..., tuple]:
        def body(*flat: torch.Tensor) -> tuple:
            self._last = self.plan.run(*self.args)
            return tuple(self._last[0]), tuple(self._last[1])

        return body

    def _compile_folded(self, args: tuple) -> Any:
        view, plan = self._fold_view, self.plan
        keys_before = view.state_keys_now()
        stepped = []

        def body(*flat: torch.Tensor) -> tuple:
            outs, grads = plan.run(*self.args)
            for leaf, g in zip(plan.leaves_for(self.args), grads):
                leaf.grad = wrap(g)
            view.step()
            stepped.append(True)
            self._last = (outs, None)
            return tuple(outs)

        state = view.state_tensors()
        try:
            graph = self._trace(body, args, extra=state)
        except Declined:
            if stepped:  # the step ran (on real values) but cannot be a graph: keep its result
                self.foldable = False
                return plan.result(self._last[0])
            raise
        same = [id(t) for t in view.state_tensors()] == [id(t) for t in state]
        if same and view.state_keys_now() == keys_before:
            # the step updated the state in place: the graph reads it as inputs
            self.folded, self.buffers = _lower(graph, reuse=True)
            self.folded_hyper, self.folded_state = view.hyperparameters(), [id(t) for t in state]
        return plan.result(self._last[0])

    def _trace(self, body: Callable[..., Any], args: tuple, extra: list | None = None) -> Any:
        self._rebind(args)
        inputs = tuple(self.plan.inputs(self.args) + (extra or []))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                graph = torch.jit.trace(body, inputs, check_trace=False)
            except Declined:
                raise
            except Exception as err:  # the tracer could not follow the step: replay it in Python
                raise Declined(str(err)) from err
        for w in caught:  # a Python boolean is a shape test (shapes are fixed per trace) or a branch, which
            # the first replay catches; a Python number read from a tensor (.item()) would be frozen
            if issubclass(w.category, torch.jit.TracerWarning) and "Python boolean" not in str(w.message):
                raise Declined("the step reads tensor values into Python")
        return graph

    def _rebind(self, args: tuple) -> None:
        """Point what the plan reads at this call's inputs (tracing runs the real step): the tracer
        knows a tensor as an input only by identity, so a raw torch input of an earlier call would
        be frozen into the graph as a constant."""
        rebound = []
        for w, a in zip(self.args, args):
            if isinstance(w, Tensor) and isinstance(a, Tensor):
                w.data = a.data
            elif isinstance(a, torch.Tensor):
                w = a
            rebound.append(w)
        self.args = tuple(rebound)


def foldable(plan: Plan, view: OptimizerView | None) -> bool:
    """Whether the optimizer's step can join the graph: every gradient goes to one of its parameters
    (else ``.grad`` must be written)."""
    params = {id(p) for p in view.params} if view is not None else set()
    return view is not None and not plan.arg_leaves and all(id(t) in params for t in plan.leaves)


# Products this large get a buffer of their own that lives across calls: a fresh multi-MB buffer
# per step comes from the kernel (mmap, or the heap top that glibc trimmed) and is faulted in
# again page by page on every step, which made a width-2048 layer at batch 10 slower than torch.
_REUSE_BYTES = 128 * 1024


def _lower(graph: Any, reuse: bool) -> tuple[Any, list[torch.Tensor]]:
    """`_rewrite` the graph; the graph as traced where this torch's graph API cannot."""
    try:
        return _rewrite(graph, reuse)
    except (AttributeError, RuntimeError, TypeError):
        return graph, []


def _rewrite(graph: Any, reuse: bool) -> tuple[Any, list[torch.Tensor]]:
    """A leaner copy of a traced graph that makes the same kernels, and its persistent buffers.

    Only rewrites that keep every kernel: inlining, one constant node per value, dead nodes
    removed, 2-D ``matmul`` as the ``mm`` it dispatches to. With ``reuse`` (the folded graph,
    whose weight gradients never leave it: the optimizer consumes them), each large CPU product
    that is not an output writes into a persistent buffer (``mm(..., out=buffer)``, the buffer
    a new input): no allocation per call.
    """
    g = graph.graph.copy()
    torch._C._jit_pass_inline(g)
    torch._C._jit_pass_constant_pooling(g)  # type: ignore[attr-defined]  # not in torch's stubs
    torch._C._jit_pass_dce(g)
    returned = {v.unique() for v in g.outputs()}
    for v in list(g.outputs()):
        node = v.node()
        if node.kind() == "prim::TupleConstruct":
            returned.update(i.unique() for i in node.inputs())
    buffers = []
    for node in list(g.nodes()):
        if node.kind() not in ("aten::matmul", "aten::mm"):
            continue
        inputs = list(node.inputs())
        t = node.output().type()
        kind = "aten::mm" if all(_dim(i) == 2 for i in inputs[:2]) else node.kind()
        extra = []
        if reuse and node.output().unique() not in returned and _big_cpu(t):
            buffers.append(torch.empty(t.sizes(), dtype=t.dtype()))
            slot = g.addInput()
            slot.setType(t)
            extra = [slot]
        if kind == node.kind() and not extra:
            continue
        new = g.create(kind, inputs + extra, 1)
        new.insertBefore(node)
        new.output().setType(t)
        node.output().replaceAllUsesWith(new.output())
        node.destroy()
    g.lint()
    return torch._C._create_function_from_graph("tapegrad_step", g), buffers


def _dim(value: Any) -> int | None:
    try:
        return value.type().dim()
    except (AttributeError, RuntimeError):
        return None


def _big_cpu(t: Any) -> bool:
    try:
        sizes, dtype, device = t.sizes(), t.dtype(), t.device()
    except (AttributeError, RuntimeError):
        return False
    if sizes is None or dtype is None or device is None or device.type != "cpu":
        return False
    n = 1
    for d in sizes:
        n *= d
    return n * torch.empty((), dtype=dtype).element_size() >= _REUSE_BYTES


def _wrapper(a: Tensor) -> Tensor:
    w = wrap(a.data)
    w.requires_grad = a.requires_grad
    return w


def _run(graph: Any, inputs: list) -> Any:
    saved = _get_optimize()
    _set_optimize(False)  # the traced ops as they are: no rewrites that change the rounding
    try:
        return graph(*inputs)
    finally:
        _set_optimize(saved)


def _same(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor]) -> bool:
    return all(g.shape == w.shape and torch.equal(g, w) for g, w in zip(got, want))
