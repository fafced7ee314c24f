"""Argument checks shared by nn's public entry points, run before anything changes.

Every check names the function or layer (``owner``), the argument and what it got, and raises
the exception torch raises for the same mistake: `TypeError` for a value of the wrong kind,
`ValueError` for a value out of range.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import torch

from tapegrad.engine.errors import ShapeError
from tapegrad.engine.tensors import Tensor, wrap

__all__ = [
    "describe", "check_int", "check_real", "check_bool", "check_params", "check_hyperparameters",
    "check_data", "check_fit_args", "tensor_arg", "check_tensor",
]  # fmt: skip


def describe(value: Any) -> str:
    """``float 2.5``, ``NoneType``, ``str 'abc'``, ``Tensor of shape (3,)``: what a message shows."""
    if value is None:
        return "None"
    if isinstance(value, (Tensor, torch.Tensor)):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, (bool, numbers.Number, str)):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


def check_int(owner: str, name: str, value: Any, low: int | None = None) -> int:
    """``value`` as an int; `TypeError` unless it is an integer (bools refused), `ValueError` below ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer, got {describe(value)}")
    if low is not None and value < low:
        raise ValueError(f"{owner}: {name} must be at least {low}, got {value}")
    return int(value)


def check_real(owner: str, name: str, value: Any) -> float:
    """``value`` as a float; `TypeError` unless it is a real number (or a one-element tensor)."""
    if isinstance(value, (Tensor, torch.Tensor)) and value.numel() == 1 and not value.dtype.is_complex:
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {describe(value)}")
    return float(value)


def check_bool(owner: str, name: str, value: Any) -> bool:
    """`TypeError` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be True or False, got {describe(value)}")
    return value


def tensor_arg(owner: str, name: str, value: Any, dtype: torch.dtype | None = None, device: Any = None) -> Tensor:
    """``value`` as a tg.Tensor: itself, a torch tensor (shared) or a rectangular list of numbers
    (copied, in ``dtype`` or the default dtype). Anything else (None, a string, a ragged list) is a
    `TypeError` or `ShapeError` naming ``owner`` and the argument ``name``."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, torch.Tensor):
        return wrap(value)
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise TypeError(f"{owner}: {name} must be a tensor, got {describe(value)}")
    try:
        data = torch.as_tensor(value, dtype=dtype or torch.get_default_dtype(), device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        if isinstance(err, ValueError) and "expected sequence of length" in str(err):  # torch's words for ragged
            raise ShapeError(f"{owner}: {name} is not rectangular: {err}") from None
        what = f"{owner}: {name} must be a tensor or a list of numbers, got {describe(value)}"
        raise TypeError(f"{what} ({err})") from None
    return Tensor(data)


# --- optimizers ----------------------------------------------------------------------------------
def check_params(owner: str, params: Any) -> list[Any]:
    """The parameters given to an optimizer, as a list: an iterable of tensors or of group dicts.

    A bare tensor (``SGD(lin.weight, ...)``) is a `TypeError`, as in torch: iterating it would
    give its rows, which are not the parameter.
    """
    if isinstance(params, (Tensor, torch.Tensor)):
        raise TypeError(
            f"{owner}: params must be an iterable of tensors or of parameter-group dicts, got a single "
            f"{type(params).__name__} (wrap it in a list: [weight])"
        )
    if isinstance(params, (dict, str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(
            f"{owner}: params must be an iterable of tensors or of parameter-group dicts, got {describe(params)}"
        )
    items = list(params)
    if not items:
        raise ValueError(f"{owner} got an empty parameter list")
    return items


def _at_least_zero(owner: str, name: str, value: Any, what: str) -> None:
    number = check_real(owner, name, value)
    if not 0.0 <= number:  # NaN fails this comparison, as in torch
        raise ValueError(f"{owner}: invalid {what}: {name}={value} (must be >= 0)")


def _betas(owner: str, value: Any) -> None:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{owner}: betas must be a pair of numbers like (0.9, 0.999), got {describe(value)}")
    if len(value) != 2:
        raise ValueError(f"{owner}: betas must be a pair of numbers like (0.9, 0.999), got {len(value)}: {value}")
    for i, beta in enumerate(value):
        number = check_real(owner, f"betas[{i}]", beta)
        if not 0.0 <= number < 1.0:
            raise ValueError(f"{owner}: invalid beta parameter at index {i}: betas[{i}]={beta} (must be in [0, 1))")


_AT_LEAST_ZERO = {
    "lr": "learning rate",
    "eps": "epsilon value",
    "momentum": "momentum value",
    "weight_decay": "weight_decay value",
    "alpha": "alpha value",
    "lr_decay": "lr_decay value",
    "initial_accumulator_value": "initial_accumulator_value",
}
_REAL = ("dampening", "rho")
_FLAGS = ("nesterov", "amsgrad", "maximize", "centered", "foreach", "capturable", "differentiable")


def check_hyperparameters(owner: str, group: dict[str, Any]) -> None:
    """Check the hyperparameters an optimizer (or parameter group) was given, by name, as torch does.

    ``lr``, ``eps``, ``momentum``, ``weight_decay``, ``alpha`` must be numbers >= 0 (NaN is not),
    ``betas`` a pair in [0, 1), ``dampening`` a number and the flags (``nesterov``, ``amsgrad``,
    ``maximize``, ...) True or False. Names it does not know are left to the optimizer.
    """
    for name, what in _AT_LEAST_ZERO.items():
        if name in group:
            _at_least_zero(owner, name, group[name], what)
    if "betas" in group:
        _betas(owner, group["betas"])
    for name in _REAL:
        if name in group:
            number = check_real(owner, name, group[name])
            if math.isnan(number):
                raise ValueError(f"{owner}: invalid {name} value: {name}={number}")
    for name in _FLAGS:
        if name in group and group[name] is not None:
            check_bool(owner, name, group[name])


# --- data and training ---------------------------------------------------------------------------
def _is_tensor(value: Any) -> bool:
    return isinstance(value, (Tensor, torch.Tensor)) or (hasattr(value, "__array__") and hasattr(value, "ndim"))


def check_tensor(owner: str, name: str, value: Any) -> Any:
    """`TypeError` unless ``value`` is a tensor (tg or torch) or an array."""
    if not _is_tensor(value):
        raise TypeError(f"{owner}: {name} must be a tensor, got {describe(value)}")
    return value


def check_data(owner: str, name: str, data: Any, allow_empty: bool = True) -> tuple[Any, Any]:
    """``data = (x, y)``: a pair of tensors (tg or torch) with the same first dimension."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{owner}: {name} must be a pair (inputs, targets) of tensors, got {describe(data)}")
    x, y = data
    for part, value in (("inputs", x), ("targets", y)):
        if not _is_tensor(value):
            raise TypeError(f"{owner}: the {part} of {name} must be a tensor, got {describe(value)}")
        if value.ndim == 0:
            raise ValueError(f"{owner}: the {part} of {name} must have a first (sample) dimension, got a scalar")
    if len(x) != len(y):
        raise ValueError(f"{owner}: the inputs and targets of {name} differ in length: {len(x)} and {len(y)}")
    if not allow_empty and len(x) == 0:
        raise ValueError(f"{owner}: {name} is empty (no samples to train on)")
    return x, y


def _is_optimizer(value: Any) -> bool:
    return (
        not isinstance(value, type)
        and callable(getattr(value, "step", None))
        and callable(getattr(value, "zero_grad", None))
    )


def check_fit_args(
    model: Any,
    loss_fn: Any,
    optimizer: Any,
    train_data: Any,
    epochs: Any,
    batch_size: Any,
    val_data: Any = None,
    seed: Any = None,
) -> None:
    """The checks of `nn.fit`, before any training: each error names the argument."""
    from .module import Module

    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be an nn.Module, got {describe(model)}")
    if _is_optimizer(train_data) and not _is_optimizer(optimizer):
        raise TypeError(
            "fit: the arguments are out of order: the optimizer comes before the data, "
            "fit(model, loss_fn, optimizer, train_data, epochs, batch_size)"
        )
    if isinstance(loss_fn, type) or isinstance(optimizer, type):
        kind = loss_fn if isinstance(loss_fn, type) else optimizer
        raise TypeError(f"fit: pass an instance, not the class {kind.__name__} (like {kind.__name__}(...))")
    if not callable(loss_fn) or _is_optimizer(loss_fn):
        raise TypeError(f"fit: loss_fn must be a loss (a callable such as nn.MSELoss()), got {describe(loss_fn)}")
    if not _is_optimizer(optimizer):
        raise TypeError(
            f"fit: optimizer must be an optimizer with step() and zero_grad() (such as nn.SGD), "
            f"got {describe(optimizer)}"
        )
    from .dataloader import DataLoader

    if not isinstance(train_data, DataLoader):
        check_data("fit", "train_data", train_data, allow_empty=False)
        check_int("fit", "batch_size", batch_size, low=1)
    elif batch_size is not None:
        raise ValueError("fit: a DataLoader sets its own batch size; leave batch_size out")
    check_int("fit", "epochs", epochs, low=1)
    if val_data is not None:
        check_data("fit", "val_data", val_data)
    if seed is not None:
        check_int("fit", "seed", seed)
