"""The thread's switches, under torch's names: `no_grad`, `enable_grad`, `inference_mode`,
`detect_anomaly`, a named `scope`, and `manual_seed`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ContextDecorator, contextmanager
from typing import Any

import torch

from .state import Scope, current

__all__ = ["no_grad", "enable_grad", "detect_anomaly", "scope", "inference_mode", "manual_seed"]


class inference_mode(ContextDecorator):  # noqa: N801  (torch's name)
    """``tg.no_grad`` under torch's other name: nothing is recorded and no output requires grad.

    A context manager (``with tg.inference_mode():``) and a decorator (``@tg.inference_mode()``
    or ``@tg.inference_mode``); ``mode=False`` turns it into a no-op, as torch's. Per thread.
    """

    def __new__(cls, mode: Any = True) -> Any:
        self = super().__new__(cls)
        if callable(mode):  # used bare as a decorator: @tg.inference_mode
            self.__init__(True)  # type: ignore[misc]
            return self(mode)
        return self

    def __init__(self, mode: bool = True) -> None:
        self.mode = mode if isinstance(mode, bool) else True
        self._saved: list[bool] = []

    def __enter__(self) -> inference_mode:
        state = current()
        self._saved.append(state.grad_enabled)
        if self.mode:
            state.grad_enabled = False
        return self

    def __exit__(self, *exc: Any) -> None:
        current().grad_enabled = self._saved.pop()


def manual_seed(seed: int) -> torch.Generator:
    """Seed torch's default random generator (dropout masks, ``tg.multinomial``, nn.init), as torch.manual_seed."""
    return torch.manual_seed(seed)


@contextmanager
def no_grad() -> Iterator[None]:
    """A context in which no tape records and no output requires grad (torch.no_grad; per thread)."""
    state = current()
    saved = state.grad_enabled
    state.grad_enabled = False
    try:
        yield
    finally:
        state.grad_enabled = saved


@contextmanager
def enable_grad() -> Iterator[None]:
    """Undo `no_grad` inside it: the open tapes record again and outputs require grad (per thread)."""
    state = current()
    saved = state.grad_enabled
    state.grad_enabled = True
    try:
        yield
    finally:
        state.grad_enabled = saved


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise `tg.AnomalyError` at the first NaN or Inf of a forward or backward pass (per thread)."""
    state = current()
    saved = state.anomaly
    state.anomaly = True
    try:
        yield
    finally:
        state.anomaly = saved


@contextmanager
def scope(name: str, module: Any = None) -> Iterator[Scope]:
    """Open a named scope: records made inside carry it (``nn.Module.__call__`` opens one)."""
    state = current()
    parent = state.scope
    state.scope = Scope(parent, name, module)
    try:
        yield state.scope
    finally:
        state.scope = parent
