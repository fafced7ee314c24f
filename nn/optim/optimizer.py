"""Optimizers with PyTorch's exact update rules: `SGD` and `Adam`, with parameter groups.

A step reads each parameter's ``.grad`` and updates ``p.data`` in place with plain torch
``_foreach`` kernels; it runs after the tape was replayed, so nothing is recorded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any

import torch

from tapegrad.engine import capture
from tapegrad.engine.tensors import Tensor

from ..validation import check_hyperparameters, check_params

__all__ = ["Optimizer", "SGD", "Adam"]


_GRAD, _DATA = attrgetter("grad"), attrgetter("data")


def _bias_corrections(
    steps: list[torch.Tensor], data: list[torch.Tensor], beta1: float, beta2: float, lr: float, capturing: bool
) -> tuple[Sequence[Any], Sequence[Any]]:
    """Adam's ``sqrt(1 - beta2**t)`` and step sizes ``-lr / (1 - beta1**t)`` for the step counts ``t``.

    Eagerly Python floats, as torch computes them (one read of each count). Under a graph capture
    (``capturing``) 0-d tensors computed from the counts in float64, so that the captured graph (tg.trace's
    folded step) keeps them live instead of freezing the values read; they are rounded to ``dtype``, as a
    kernel rounds a float64 scalar (float32 where every parameter in ``data`` is float32, else float64)."""
    if not capturing:
        counts = [s.item() for s in steps]
        return [(1 - beta2**n) ** 0.5 for n in counts], [-lr / (1 - beta1**n) for n in counts]
    t = torch.stack(steps).double()
    dtype = torch.float32 if all(d.dtype == torch.float32 for d in data) else torch.float64
    roots, sizes = (1 - torch.pow(beta2, t)).sqrt().to(dtype), (-lr / (1 - torch.pow(beta1, t))).to(dtype)
    # as_strided: inductor computes each vector once, into a buffer; inlined, their pow and sqrt (libm calls
    # it cannot hoist) ran once per 16 elements of every parameter's update
    return torch.as_strided(roots, roots.shape, (1,)).unbind(), torch.as_strided(sizes, sizes.shape, (1,)).unbind()


class Optimizer:
    """Base class: ``param_groups`` (dicts with "params" and hyperparameters) and per-parameter ``state``."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = check_params(type(self).__name__, params)
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (defaults fill the rest)."""
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(
                f"{type(self).__name__}: a parameter group must be a dict with a 'params' entry, got "
                f"{type(param_group).__name__}"
            )
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize tg.Tensors, got {type(p).__name__}")
            if not p.data.is_floating_point():
                raise TypeError(f"{type(self).__name__} can only optimize floating point tensors, got {p.dtype}")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self._check(group)
        self.param_groups.append(group)

    def _check(self, group: dict[str, Any]) -> None:
        check_hyperparameters(type(self).__name__, group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the ``.grad`` of every parameter (``None``, or zeros with ``set_to_none=False``)."""
        for group in self.param_groups:
            if set_to_none:
                for p in group["params"]:
                    p.grad = None
                continue
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = Tensor(torch.zeros_like(p.data))

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        raise NotImplementedError

    def _with_grads(self, group: dict[str, Any]) -> tuple[list[Tensor], list[torch.Tensor]]:
        params = [p for p in group["params"] if p.grad is not None]
        return params, [g.data if isinstance(g, Tensor) else g for g in map(_GRAD, params)]

    def _groups(self) -> list[tuple[dict[str, Any], list[Tensor], list[torch.Tensor], list[torch.Tensor]]]:
        """(group, params, their data, directions) for each group with gradients: the directions are the
        gradients, negated under ``maximize``, plus ``weight_decay * p`` (L2), as torch's optimizers."""
        found = []
        for group in self.param_groups:
            params = group["params"]
            grads = list(map(_GRAD, params))
            if all(map(isinstance, grads, repeat(Tensor))):  # every step's case, without a Python loop
                data, grads = list(map(_DATA, params)), list(map(_DATA, grads))
            else:  # some gradients missing (None) or raw torch tensors
                params, grads = self._with_grads(group)
                if not params:
                    continue
                data = [p.data for p in params]
            if group["maximize"]:
                grads = list(torch._foreach_neg(grads))
            if group["weight_decay"] != 0:
                grads = list(torch._foreach_add(grads, data, alpha=group["weight_decay"]))
            found.append((group, params, data, grads))
        return found

    # --- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """torch's layout: ``{"state": {index: {...}}, "param_groups": [{..., "params": [index]}]}``."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        params = {id(p): p for g in self.param_groups for p in g["params"]}
        state = {index[k]: dict(self.state[params[k]]) for k in index if params[k] in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by `state_dict` (group sizes must match)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise TypeError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups' (see state_dict)")
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: {len(saved)} parameter groups saved, "
                f"{len(self.param_groups)} in this optimizer"
            )
        for i, (s, g) in enumerate(zip(saved, self.param_groups)):
            if len(s["params"]) != len(g["params"]):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: group {i} has {len(s['params'])} parameters saved, "
                    f"{len(g['params'])} in this optimizer"
                )
        by_index = {i: p for s, g in zip(saved, self.param_groups) for i, p in zip(s["params"], g["params"])}
        state: dict[Tensor, dict[str, Any]] = {}
        for key, values in state_dict["state"].items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                index = None
            if index not in by_index:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key!r}, which no group lists")
            p = by_index[index]
            state[p] = {}
            for name, v in values.items():
                if isinstance(v, torch.Tensor):
                    # the step counter keeps its own dtype, as torch does; moments follow the parameter
                    v = v.detach().clone() if name == "step" else v.detach().to(p.data.dtype).clone()
                    if name != "step" and tuple(v.shape) != tuple(p.data.shape):
                        raise ValueError(
                            f"{type(self).__name__}.load_state_dict: state {name!r} of parameter {key} has shape "
                            f"{tuple(v.shape)}, the parameter {tuple(p.data.shape)}"
                        )
                state[p][name] = v
        for s, g in zip(saved, self.param_groups):
            for k, v in s.items():
                if k != "params":
                    g[k] = copy.deepcopy(v)
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params")
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, weight decay and Nesterov (PyTorch's optim.SGD)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        check_hyperparameters("SGD", dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        defaults["maximize"] = maximize
        super().__init__(params, defaults)

    def step(self) -> None:
        """One update: ``p -= lr * d`` where d is the (momentum / Nesterov) direction."""
        grads: list[torch.Tensor] | tuple[torch.Tensor, ...]
        for group, params, data, grads in self._groups():
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            if momentum != 0:
                bufs: list[Any] = [self.state.setdefault(p, {}).get("momentum_buffer") for p in params]
                fresh = [i for i, b in enumerate(bufs) if b is None]
                old = [i for i, b in enumerate(bufs) if b is not None]
                if old:
                    old_bufs = [bufs[i] for i in old]
                    torch._foreach_mul_(old_bufs, momentum)
                    torch._foreach_add_(old_bufs, [grads[i] for i in old], alpha=1 - dampening)
                for i in fresh:
                    bufs[i] = grads[i].clone()
                    self.state[params[i]]["momentum_buffer"] = bufs[i]
                grads = torch._foreach_add(grads, bufs, alpha=momentum) if group["nesterov"] else bufs
            torch._foreach_add_(data, grads, alpha=-lr)


class Adam(Optimizer):
    """Adam (Kingma and Ba) with L2 weight decay and AMSGrad, as PyTorch's optim.Adam."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        check_hyperparameters("Adam", dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        defaults["maximize"] = maximize
        super().__init__(params, defaults)

    def step(self) -> None:
        """One update with bias-corrected first and second moment estimates."""
        for group, params, data, grads in self._groups():
            beta1, beta2 = group["betas"]
            lr, eps, amsgrad = group["lr"], group["eps"], group["amsgrad"]
            states = [self._state(p, amsgrad) for p in params]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            exp_avgs = [s["exp_avg"] for s in states]
            exp_avg_sqs = [s["exp_avg_sq"] for s in states]
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
            if amsgrad:
                maxes = [s["max_exp_avg_sq"] for s in states]
                torch._foreach_maximum_(maxes, exp_avg_sqs)
                denom = torch._foreach_sqrt(maxes)
            else:
                denom = torch._foreach_sqrt(exp_avg_sqs)
            capturing = capture.capturing()  # a capture cannot follow a count's value into a scalar argument
            roots, sizes = _bias_corrections(steps, data, beta1, beta2, lr, capturing)
            torch._foreach_div_(denom, roots)
            torch._foreach_add_(denom, eps)
            if capturing:  # p += size * m / denom, in addcdiv's order of operations (the same rounding)
                update = torch._foreach_mul(exp_avgs, sizes)
                torch._foreach_div_(update, denom)
                torch._foreach_add_(data, update)
            else:  # one kernel per tensor
                torch._foreach_addcdiv_(data, exp_avgs, denom, sizes)

    def _state(self, p: Tensor, amsgrad: bool) -> dict[str, Any]:
        s = self.state.get(p)
        if not s:
            s = self.state[p] = {
                "step": torch.tensor(0.0),
                "exp_avg": torch.zeros_like(p.data),
                "exp_avg_sq": torch.zeros_like(p.data),
            }
        if amsgrad and "max_exp_avg_sq" not in s:
            s["max_exp_avg_sq"] = torch.zeros_like(p.data)
        return s
