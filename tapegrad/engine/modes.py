"""torch's global switches under tapegrad's names: `inference_mode` and `manual_seed`."""

from __future__ import annotations

from contextlib import ContextDecorator
from typing import Any

import torch

from .state import current

__all__ = ["inference_mode", "manual_seed"]


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
