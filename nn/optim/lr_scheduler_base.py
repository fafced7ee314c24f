"""The base of every learning-rate schedule (`LRScheduler`) and the check of a loaded ``state_dict``."""

from __future__ import annotations

import types
from typing import Any

__all__ = ["LRScheduler", "checked_state"]


class LRScheduler:
    """Base class: ``base_lrs`` (each group's ``initial_lr``), ``last_epoch``, `step` and `get_last_lr`."""

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(
                    f"{type(self).__name__}: param 'initial_lr' is not set in param_groups[{i}] when resuming"
                )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rates for ``last_epoch`` (from the groups' current rates, as torch's chainable form)."""
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to ``epoch``, torch's deprecated form: the closed-form rates where
        the schedule has one) and write the new rates into the optimizer's groups."""
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The rates the last `step` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (functions are left out, as torch leaves them out)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not _is_function(v)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.__dict__.update(checked_state(self, state_dict))

    def _lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]


def checked_state(schedule: Any, state_dict: Any) -> dict[str, Any]:
    """``state_dict`` if it is a dict (what `state_dict` returns), else a TypeError naming the schedule."""
    if not isinstance(state_dict, dict):
        raise TypeError(
            f"{type(schedule).__name__}.load_state_dict: state_dict must be the dict that state_dict() returned, "
            f"got {type(state_dict).__name__}"
        )
    return state_dict


def _is_function(value: Any) -> bool:
    if isinstance(value, (types.FunctionType, types.LambdaType)):
        return True
    return isinstance(value, list) and any(isinstance(v, types.FunctionType) for v in value)
