"""CUDA graphs for `tg.trace(..., cuda_graph=True)`: a whole training step launched as one graph.

`Graphed` is a compiler of `executors.Entry` (which folds the optimizer's update in and
checks the first replay against the eager step, as for every compiled step). The step runs once on
scratch copies, on a side stream with host synchronizations turned into errors
(``torch.cuda.set_sync_debug_mode``: a ``.item()`` or a data-dependent shape inside the step would break
the capture), then is captured into a ``torch.cuda.CUDAGraph`` on the tensors it is called with. A call
copies its arguments into the graph's static buffers and replays it; the graph bakes in the addresses of
the other inputs (parameters, buffers, the optimizer's state), so where one is another tensor (a rebound
``p.data``) it captures again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import is_not
from typing import Any

import torch
import torch.fx

from ..engine.errors import TapeError
from ..engine.tensors import Tensor
from .replay_optim import OptimizerView
from .tracegen import Declined, Plan

__all__ = ["Graphed", "capture_error", "check_state_on_cuda", "on_cuda", "run_naming"]


def on_cuda(args: tuple, captured: list[Tensor]) -> bool:
    """Whether every tensor the step reads is on a CUDA device (and CUDA works here)."""
    datas = [a.data if isinstance(a, Tensor) else a for a in args if isinstance(a, (Tensor, torch.Tensor))]
    datas += [t.data for t in captured]
    return bool(datas) and all(d.device.type == "cuda" for d in datas) and torch.cuda.is_available()


class Graphed:
    """``fn`` (the step on ``plan``'s inputs, then the optimizer's state) as a CUDA graph, captured on ``inputs``
    when made (a step that cannot be captured is named on the compiling call). ``kept`` as for every compiler:
    None, the outputs after the step's own are gradients read after the next replay: returned as copies."""

    def __init__(self, plan: Plan, fn: Callable[..., Any], inputs: list[torch.Tensor], kept: int | None) -> None:
        self.plan, self.fn, self.kept = plan, fn, kept
        self.graph: Any = None
        self.static: list[torch.Tensor] = []
        self.bound: list[torch.Tensor] = []
        self.outs: Sequence[torch.Tensor] = ()
        self(*inputs)

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """Copy the arguments in and replay (capturing first where a bound input is another tensor)."""
        n = self.plan.n_args
        if self.graph is None or len(inputs) - n != len(self.bound) or any(map(is_not, inputs[n:], self.bound)):
            self.static, self.bound = [t.clone() for t in inputs[:n]], list(inputs[n:])
            with self.plan.rewound():  # so that the graph's next replay draws what the eager step would (dropout)
                warm_up(self.plan, self.fn, [*self.static, *self.bound])
                self.graph, self.outs = record(self.fn, [*self.static, *self.bound])
        for static, t in zip(self.static, inputs[:n]):
            static.copy_(t)
        self.graph.replay()
        outs, n_out = list(self.outs), self.plan.n_out
        return outs if self.kept is not None else outs[:n_out] + [g.clone() for g in outs[n_out:]]


def warm_up(plan: Plan, fn: Callable[..., Any], inputs: list[torch.Tensor]) -> None:
    """``fn`` run once on copies of ``inputs`` on a side stream; a host synchronization raises, naming the op."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        scratch, syncs = [t.clone() for t in inputs], torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")
        try:
            fn(*scratch)
        except Declined:  # (the folded optimizer's step makes its state: Entry tries the step unfolded)
            raise
        except Exception as err:
            run_naming(plan, scratch)  # the op that failed, if the graph's part failed
            raise capture_error(err, "the optimizer's step") from err
        finally:
            torch.cuda.set_sync_debug_mode(syncs)
    torch.cuda.current_stream().wait_stream(stream)


def record(fn: Callable[..., Any], inputs: list[torch.Tensor]) -> tuple[Any, Sequence[torch.Tensor]]:
    """``fn`` captured on ``inputs`` as a ``torch.cuda.CUDAGraph``: the graph and its outputs (each replay
    rewrites them)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = fn(*inputs)
    return graph, outs


def check_state_on_cuda(view: OptimizerView) -> None:
    """Raise where the optimizer keeps state off the GPU (a CUDA graph would not update it)."""
    state = getattr(view.optimizer, "state", {})
    for i, p in enumerate(view.params):
        for name, v in (state.get(p) or {}).items():
            if isinstance(v, torch.Tensor) and v.device.type != "cuda":
                raise TapeError(
                    f"trace: cuda_graph=True cannot capture {type(view.optimizer).__name__}.step: its state "
                    f"{name!r} of parameter {i} is a {v.device} tensor, which a CUDA graph does not update; "
                    "pass the optimizer's step outside (no optimizer=) or use cuda_graph=False"
                )


def run_naming(plan: Plan, inputs: Sequence[torch.Tensor]) -> tuple[tuple, tuple]:
    """The graph on ``inputs`` (its own first, then any others: ignored) node by node, so that a failure
    names the op whose forward or VJP failed; returns (outputs, gradients)."""
    flat = _Naming(plan.gm).run(*inputs[: plan.n_inputs])
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
