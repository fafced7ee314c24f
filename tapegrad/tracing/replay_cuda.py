"""CUDA graphs for `tg.trace(..., cuda_graph=True)`: a whole training step launched as one graph.

The capturing call copies the inputs into static buffers, runs the step once for real on a side
stream with host synchronizations turned into errors (``torch.cuda.set_sync_debug_mode``: a
``.item()`` or a data-dependent shape inside the step would break the capture), then captures
forward, backward and, when the trace has an optimizer, its step into a ``torch.cuda.CUDAGraph``.
Later calls copy the new inputs into the static buffers and replay the graph. The graph bakes in
the addresses of the parameters and optimizer state and the optimizer's hyperparameters:
rebinding ``p.data``, a learning-rate change or a new optimizer state captures again.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.fx

from ..engine.errors import TapeError
from ..engine.tensors import Tensor, wrap
from .replay_optim import OptimizerView
from .tracegen import Plan, accumulate

__all__ = ["CudaGraphStep", "call", "capture_error", "on_cuda", "run_naming"]


def on_cuda(args: tuple, captured: list[Tensor]) -> bool:
    """Whether every tensor the step reads is on a CUDA device (and CUDA works here)."""
    datas = [a.data if isinstance(a, Tensor) else a for a in args if isinstance(a, (Tensor, torch.Tensor))]
    datas += [t.data for t in captured]
    return bool(datas) and all(d.device.type == "cuda" for d in datas) and torch.cuda.is_available()


def call(traced: Any, key: tuple, plan: Any, args: tuple) -> Any:
    """One call of a `Traced` with ``cuda_graph=True``; None where its other executors should run."""
    captured = plan.captured
    if not on_cuda(args, captured):
        if not traced._warned_device:
            traced._warned_device = True
            why = "cuda_graph=True, but the step's tensors are not all on a CUDA device"
            warnings.warn(f"trace: {why}; it runs without a CUDA graph", RuntimeWarning, stacklevel=3)
        return None
    step = traced._graphs.get(key)
    if step is None:
        if traced._graphs and not traced.recapture:
            why = "the inputs' shapes, dtypes or devices changed since the CUDA graph was captured"
            warnings.warn(f"trace: {why} and recapture=False: this call runs eagerly", RuntimeWarning, stacklevel=3)
            return traced._eager(args)
        step = traced._graphs[key] = CudaGraphStep(plan, args, captured, traced._view)
    result, stepped = step(args)
    return result if stepped else traced._stepped(result)


class CudaGraphStep:
    """One captured step for one input signature: static input buffers, the graph, its outputs."""

    _fold_view: OptimizerView  # the view, set where there is one: read only when fold (which implies one)

    def __init__(self, plan: Any, args: tuple, captured: list[Tensor], view: OptimizerView | None) -> None:
        self.plan = plan
        self.captured = captured
        self.view = view
        self.static = tuple(_static(a) for a in args)
        self.inputs = [(i, s.data if isinstance(s, Tensor) else s) for i, s in enumerate(self.static)
                       if isinstance(s, (Tensor, torch.Tensor))]  # fmt: skip
        self.fold = view is not None and view.folds(plan)
        if view is not None:
            self._fold_view = view
        self.graph: Any = None
        self.bound: list = []  # what the graph baked in: the captured data, the optimizer's layout

    def __call__(self, args: tuple) -> tuple[Any, bool]:
        """Copy ``args`` in and replay (capturing first when needed); returns (result, optimizer stepped)."""
        # gradients accumulated outside: the eager step adds to them
        if self.fold and not self._fold_view.grads_clear():
            return self.plan.step(*args), False
        for i, d in self.inputs:
            a = args[i]
            d.copy_(a.data if isinstance(a, Tensor) else a)
        if self.graph is None or self._bound() != self.bound:
            return self._capture(args), self.fold
        self.graph.replay()
        if not self.fold:
            accumulate(self.plan.leaves_for(args), [g.clone() for g in self.grads])
        return self.plan.result(self.outs), self.fold

    def _bound(self) -> list:
        layout: list[Any] = [id(t.data) for t in self.captured]
        if self.fold:
            layout += [id(t) for t in self._fold_view.state_tensors()] + [self._fold_view.hyperparameters()]
        return layout

    def _step(self, grads: tuple) -> None:
        for leaf, g in zip(self.plan.leaves_for(self.static), grads):
            leaf.grad = wrap(g)
        try:
            self._fold_view.step()
        except Exception as err:
            raise capture_error(err, f"the optimizer's step ({type(self._fold_view.optimizer).__name__}.step)") from err

    def _capture(self, args: tuple) -> Any:
        plan = self.plan
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), _host_syncs_raise():  # this call's step, for real: warms up, finds host syncs
            outs, grads = run_naming(plan, self.static)
            if self.fold:
                self._step(grads)
        torch.cuda.current_stream().wait_stream(stream)
        result = plan.result([o.clone() for o in outs])
        if not self.fold:
            accumulate(plan.leaves_for(args), grads)
        else:
            _check_state_on_cuda(self._fold_view)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outs, grads = run_naming(plan, self.static)
            if self.fold:
                self._step(grads)
        self.graph, self.outs, self.grads = graph, outs, grads
        self.bound = self._bound()
        return result


def _static(a: Any) -> Any:
    if isinstance(a, Tensor):
        w = wrap(a.data.clone())
        w.requires_grad = a.requires_grad
        return w
    return a.clone() if isinstance(a, torch.Tensor) else a


@contextmanager
def _host_syncs_raise() -> Iterator[None]:
    saved = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(saved)


def _check_state_on_cuda(view: OptimizerView) -> None:
    state = getattr(view.optimizer, "state", {})
    for i, p in enumerate(view.params):
        for name, v in (state.get(p) or {}).items():
            if isinstance(v, torch.Tensor) and v.device.type != "cuda":
                raise TapeError(
                    f"trace: cuda_graph=True cannot capture {type(view.optimizer).__name__}.step: its state "
                    f"{name!r} of parameter {i} is a {v.device} tensor, which a CUDA graph does not update; "
                    "pass the optimizer's step outside (no optimizer=) or use cuda_graph=False"
                )


def run_naming(plan: Plan, args: tuple) -> tuple[tuple, tuple]:
    """``plan.run(*args)`` node by node, so that a failure names the op whose forward or VJP failed."""
    flat = _Naming(plan.gm).run(*plan.inputs(args))
    return flat[: plan.n_out], flat[plan.n_out :]


class _Naming(torch.fx.Interpreter):
    def run_node(self, node: torch.fx.Node) -> Any:
        try:
            return super().run_node(node)
        except Exception as err:
            kind, name, path = node.meta.get("tapegrad", ("", "", ""))
            what = f"the {'VJP' if kind == 'vjp' else 'forward'} of {name.split('_input')[0]}"
            raise capture_error(err, what + (f" in {path}" if path else "")) from err


def capture_error(err: BaseException, what: str) -> TapeError:
    """A `TapeError` saying that ``what`` (an op of the step, the optimizer's step) is not capturable."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return TapeError(
        f"trace: cuda_graph=True cannot capture this step: {what} is not capturable ({reason}). "
        "A CUDA graph cannot synchronize with the host (.item(), .cpu(), bool(tensor), nonzero, masks "
        "that decide a shape); move it out of the step or use cuda_graph=False"
    )
