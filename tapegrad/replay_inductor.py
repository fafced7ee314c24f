"""The inductor executor of `tg.trace`: the step's graph, with the optimizer's update, compiled to kernels.

The plan's graph module, followed by the optimizer's own ``step()`` when it can be folded in, is
captured at the aten level with ``make_fx`` (fake tensors: nothing runs, and a value read into
Python refuses the capture), then compiled by ``torch._inductor.compile`` without Dynamo (whose
guards cost tens of microseconds a call). Inductor keeps its compiled code in its on-disk cache,
so a later process compiles the same step in seconds.

Two updates that torch 2.13's inductor miscompiles on the CPU are rewritten first: an add with
``alpha=`` (fused into ``addmm`` with ``alpha`` dropped) becomes an add of a product, and an
in-place add on a 0-d float64 tensor (lost) becomes a copy of the sum. Random draws run torch's
own kernels (``fallback_random``), so a step with dropout draws the eager step's masks. The
first replay of every compiled step is checked against the eager step on copies of the weights
and state; a difference refuses the compiled step (a warning; the Python graph runs instead).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch._inductor
import torch.fx
from torch.fx.experimental.proxy_tensor import make_fx

from .replay_optim import OptimizerView
from .replay_script import foldable
from .tensor import Tensor, wrap
from .tracegen import Draws, Plan, accumulate

__all__ = ["InductorStep", "rewrite_updates"]

aten = torch.ops.aten
_ALPHA = {
    aten.add.Tensor: aten.mul.Tensor,
    aten.add_.Tensor: aten.mul.Tensor,
    aten.sub.Tensor: aten.mul.Tensor,
    aten.sub_.Tensor: aten.mul.Tensor,
    aten._foreach_add.List: aten._foreach_mul.Scalar,
    aten._foreach_add_.List: aten._foreach_mul.Scalar,
    aten._foreach_sub.List: aten._foreach_mul.Scalar,
    aten._foreach_sub_.List: aten._foreach_mul.Scalar,
}


class InductorStep:
    """A verified plan compiled by inductor: forward and backward, with the optimizer's update when foldable."""

    def __init__(self, plan: Plan, view: OptimizerView | None) -> None:
        self.plan = plan
        self.view = view
        self.fold = foldable(plan, view)
        self.compiled: Any = None  # compiled(*inputs) -> outputs (folded) or outputs + gradients
        self.layout: Any = None  # what a folded graph baked in: the state tensors' ids, the hyperparameters
        self.refused = False

    def __call__(self, args: tuple, captured: list[torch.Tensor]) -> tuple[Any, bool]:
        """Run the step on ``args``; returns (fn's result, whether the optimizer step was done)."""
        view, plan = self.view, self.plan
        fold = self.fold and view is not None and view.grads_clear()
        if self.refused or (self.fold and not fold):
            return plan.step(*args), False
        inputs = plan.inputs(args)
        if fold:
            assert view is not None
            state = view.state_tensors()
            layout = ([id(t) for t in state], view.hyperparameters())
            if self.compiled is not None and layout == self.layout:
                return plan.result(self.compiled(*inputs, *state)), True
            try:
                return self._compile(args, inputs + state, layout), True
            except _CannotFold:  # the optimizer reads a value into Python (Adam's step count): it steps eagerly
                self.fold, self.compiled = False, None
        if self.compiled is None:
            return self._compile(args, inputs, None), False
        flat = self.compiled(*inputs)
        accumulate(plan.leaves_for(args), flat[plan.n_out :])
        return plan.result(flat[: plan.n_out]), False

    def _compile(self, args: tuple, inputs: list[torch.Tensor], layout: Any) -> Any:
        """Compile on this call, then check its run (on copies) against the eager step (on the real tensors)."""
        plan, view = self.plan, self.view
        folded = layout is not None
        try:
            gm = make_fx(
                self._body(folded, len(plan.inputs(args)) - len(plan.captured)),
                tracing_mode="fake",
                _allow_non_fake_inputs=True,
            )(*inputs)
            rewrite_updates(gm)
            with torch._inductor.config.patch(fallback_random=True):
                compiled = torch._inductor.compile(gm, list(inputs))
        except Exception as err:  # noqa: BLE001  (any failure to capture or compile: the Python graph runs)
            if folded:
                raise _CannotFold from err
            return self._refuse(args, f"it cannot be compiled ({type(err).__name__}: {str(err)[:200]})")
        copies = [t.clone() for t in inputs]
        draws = Draws(plan)
        got = compiled(*copies)
        draws.rewind()
        want, grads = plan.run(*args)
        if folded:
            assert view is not None
            accumulate(plan.leaves_for(args), grads)
            view.step()
            n = len(inputs) - len(view.state_tensors())
            expected = [*want, *inputs[n - len(plan.captured) :]]
            pairs = list(zip([*got, *copies[n - len(plan.captured) :]], expected))
        else:
            pairs = list(zip(got, [*want, *grads]))
        if not all(g.shape == w.shape and torch.allclose(g, w, rtol=1e-5, atol=1e-6) for g, w in pairs):
            self.refused = True
            warnings.warn(
                "trace: inductor's compiled step differs from the eager step on its first replay; the step "
                "runs from the Python graph instead (a miscompile is never trained on)",
                RuntimeWarning,
                stacklevel=4,
            )
        else:
            self.compiled, self.layout = compiled, layout
        if not folded:
            accumulate(plan.leaves_for(args), grads)
        return plan.result(want)

    def _refuse(self, args: tuple, why: str) -> Any:
        self.refused = True
        warnings.warn(f"trace: executor='inductor' runs the Python graph: {why}", RuntimeWarning, stacklevel=5)
        return self.plan.step(*args)

    def _body(self, folded: bool, n_args: int) -> Callable[..., Any]:
        """The function ``make_fx`` captures: the graph, then (folded) the optimizer's step on the traced tensors."""
        plan, view = self.plan, self.view
        n_in = n_args + len(plan.captured)

        def step(*flat: torch.Tensor) -> Any:
            out = plan.forward(*flat[:n_in])
            if not folded:
                return out
            assert view is not None
            outs, grads = out[: plan.n_out], out[plan.n_out :]
            with _bound(plan.captured, flat[n_args:n_in], view, flat[n_in:]):
                for leaf, g in zip(plan.leaves, grads):
                    leaf.grad = wrap(g)
                view.step()
            return outs

        return step


class _CannotFold(Exception):
    """The optimizer's step cannot be captured into the graph."""


class _bound:  # noqa: N801  (a context manager, used like a function)
    """Parameters and optimizer state pointed at the traced tensors while ``make_fx`` runs the step."""

    def __init__(self, params: list[Tensor], datas: Sequence[Any], view: OptimizerView, state: Sequence[Any]) -> None:
        self.params, self.datas, self.view, self.state = params, datas, view, state

    def __enter__(self) -> None:
        self.saved = [p.data for p in self.params]
        for p, data in zip(self.params, self.datas):
            p.data = data
        self.slots = _state_slots(self.view)
        self.saved_state = [slot[k] for slot, k in self.slots]
        for (slot, k), t in zip(self.slots, self.state):
            slot[k] = t

    def __exit__(self, *exc: Any) -> None:
        for p, data in zip(self.params, self.saved):
            p.data = data
            p.grad = None
        for (slot, k), t in zip(self.slots, self.saved_state):
            slot[k] = t


def _state_slots(view: OptimizerView) -> list[tuple[dict, Any]]:
    """(state dict, key) of every state tensor, in `OptimizerView.state_tensors` order."""
    state = getattr(view.optimizer, "state", {})
    return [(s, k) for p in view.params if (s := state.get(p)) for k, v in s.items() if isinstance(v, torch.Tensor)]


def rewrite_updates(gm: torch.fx.GraphModule) -> None:
    """Rewrite the updates inductor miscompiles: ``add(x, y, alpha=a)`` as ``add(x, mul(y, a))``, and an
    in-place add on a 0-d float64 tensor as ``copy_(x, add(x, y))``."""
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        alpha = node.kwargs.get("alpha", 1)
        if node.target in _ALPHA and alpha != 1:
            with graph.inserting_before(node):
                scaled = graph.call_function(_ALPHA[node.target], (node.args[1], alpha))
            node.args = (node.args[0], scaled, *node.args[2:])
            node.kwargs = {k: v for k, v in node.kwargs.items() if k != "alpha"}
        if node.target is aten.add_.Tensor:
            val = node.args[0].meta.get("val") if isinstance(node.args[0], torch.fx.Node) else None
            if isinstance(val, torch.Tensor) and val.dim() == 0 and val.dtype == torch.float64:
                with graph.inserting_before(node):
                    total = graph.call_function(aten.add.Tensor, node.args, dict(node.kwargs))
                    copy = graph.call_function(aten.copy_.default, (node.args[0], total))
                node.replace_all_uses_with(copy)
                graph.erase_node(node)
    graph.lint()
    gm.recompile()
