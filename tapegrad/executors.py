"""What runs a verified trace (``tg.trace(..., executor=)``), and what ``"auto"`` picks.

Each executor is a callable ``(args, captured data) -> (fn's result, whether the optimizer stepped)``:

- ``"python"``: the graph module's generated code, one Python call per op;
- ``"torchscript"``: the aten ops of one run, replayed by TorchScript's interpreter, with the
  optimizer's step folded in when it can be (`tapegrad.replay_script`);
- ``"inductor"``: the graph with the optimizer's step, compiled by inductor into C++ (CPU) or
  Triton (CUDA) kernels (`tapegrad.replay_inductor`); its compile takes seconds.

``"auto"`` picks by the measurements in docs/performance.md (the seed network and the width grid):
TorchScript where torch has it, else the Python code.
"""

from __future__ import annotations

from typing import Any

from . import replay_script
from .replay_optim import OptimizerView
from .tracegen import Plan

__all__ = ["EXECUTORS", "make_executor", "pick"]

EXECUTORS = ("auto", "torchscript", "python", "inductor")


def pick(executor: str) -> str:
    """The executor that ``executor`` names; ``"auto"`` as measured."""
    if executor != "auto":
        return executor
    return "torchscript" if replay_script.available() else "python"


def make_executor(name: str, plan: Plan, args: tuple, view: OptimizerView | None, check: bool) -> Any:
    """The executor ``name`` for ``plan``, made on the call with ``args``."""
    if name == "torchscript":
        return replay_script.ScriptStep(plan, args, view, check)
    if name == "inductor":
        from .replay_inductor import InductorStep  # imports torch._inductor: seconds, only when asked

        return InductorStep(plan, view)

    def python(args: tuple, captured: list) -> tuple[Any, bool]:
        return plan.step(*args), False

    return python
