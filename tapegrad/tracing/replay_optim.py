"""The optimizer folded into a traced step (``tg.trace(fn, optimizer=opt)``): what it reads, what it guards.

A compiled step with the optimizer's update bakes the hyperparameters in and binds the state
tensors (momentum buffers, moments) as inputs; `OptimizerView` says when it is still right. The
optimizer is any object with ``param_groups`` (dicts with ``"params"``), ``state`` (per parameter
dicts) and ``step()`` / ``zero_grad()``, as tapegrad's ``nn`` optimizers and torch's.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ..engine.tensors import Tensor
from .tracegen import Declined

__all__ = ["OptimizerView", "stepped", "swapped"]


class OptimizerView:
    """A snapshot of an optimizer's structure, to tell a folded step when to compile again."""

    def __init__(self, optimizer: Any) -> None:
        for attr in ("param_groups", "step", "zero_grad"):
            if not hasattr(optimizer, attr):
                raise TypeError(
                    f"trace: optimizer= must be an optimizer (param_groups, step(), zero_grad()); "
                    f"{type(optimizer).__name__} has no {attr}"
                )
        self.optimizer = optimizer
        self.params: list[Tensor] = [p for g in optimizer.param_groups for p in g["params"]]

    def hyperparameters(self) -> list[dict[str, Any]]:
        """A snapshot of every group's settings, with its parameter list (a learning-rate schedule changes
        them): the groups still hold them where ``optimizer.param_groups == snapshot`` (an equal new value too)."""
        return [dict(g) for g in self.optimizer.param_groups]

    def state_tensors(self) -> list[torch.Tensor]:
        """The optimizer's state tensors in a fixed order (the inputs a compiled step binds)."""
        return [s[k] for s, k in self.state_slots()]

    def state_slots(self) -> list[tuple[dict, Any]]:
        """(state dict, key) of each tensor `state_tensors` gives, in its order."""
        held = getattr(self.optimizer, "state", {})
        return [(s, k) for p in self.params if (s := held.get(p)) for k in s if isinstance(s[k], torch.Tensor)]

    @contextmanager
    def making_no_state(self) -> Iterator[None]:
        """A step that must not create the optimizer's state (a first step does, eagerly): the entries it made
        are deleted, then `Declined` is raised."""
        held = getattr(self.optimizer, "state", {})
        before = [set(held.get(p, {})) for p in self.params]
        try:
            yield
        finally:
            made = [(p, k) for p, old in zip(self.params, before) for k in set(held.get(p, {})) - old]
            for p, k in made:
                del held[p][k]
        if made:
            raise Declined("the optimizer's step creates its state")

    def folds(self, plan: Any) -> bool:
        """Whether every gradient of ``plan`` goes to these parameters (then the update can join its graph)."""
        ids = {id(p) for p in self.params}
        return not plan.arg_leaves and all(id(t) in ids for t in plan.leaves)

    def grads_clear(self) -> bool:
        """No parameter holds a gradient (else the step must add the new one to it, eagerly)."""
        return all(p.grad is None for p in self.params)

    def step(self) -> None:
        """The eager step: the optimizer's own ``step()`` then ``zero_grad()``."""
        self.optimizer.step()
        self.optimizer.zero_grad()


def stepped(view: OptimizerView | None, result: Any) -> Any:
    """``result``, after the optimizer's step (and ``zero_grad()``) where the step is traced with one."""
    if view is not None:
        view.step()
    return result


@contextmanager
def swapped(slots: list[tuple[Any, Any]], values: Sequence[Any]) -> Iterator[None]:
    """Slots (an object and an attribute, or a dict and a key) pointed at ``values`` for a while: a compiler
    captures the optimizer's step on the parameters' data and state it is given, not on theirs."""
    setters = [operator.setitem if isinstance(o, dict) else setattr for o, _ in slots]
    saved = [o[k] if isinstance(o, dict) else getattr(o, k) for o, k in slots]
    for put, (o, k), v in zip(setters, slots, values):
        put(o, k, v)
    try:
        yield
    finally:
        for put, (o, k), v in zip(setters, slots, saved):
            put(o, k, v)
