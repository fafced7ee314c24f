"""`Adagrad` and `Adadelta`, with torch's update rules, state names and argument checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..validation import check_hyperparameters
from .optimizer import Optimizer

__all__ = ["Adagrad", "Adadelta"]


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.): per-element steps ``lr / (sqrt(sum of g^2) + eps)``, with learning-rate
    decay and L2 weight decay (torch's optim.Adagrad)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize)
        defaults["initial_accumulator_value"] = initial_accumulator_value
        check_hyperparameters("Adagrad", defaults)
        super().__init__(params, defaults)

    def step(self) -> None:
        """One update: ``sum += g^2``, ``p -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(sum) + eps)``."""
        for group, params, _, grads in self._groups():
            for p, g in zip(params, grads):
                s = self.state.get(p)
                if not s:
                    init = group["initial_accumulator_value"]
                    s = self.state[p] = {"step": torch.tensor(0.0), "sum": torch.full_like(p.data, init)}
                s["step"] += 1
                clr = group["lr"] / (1 + (s["step"].item() - 1) * group["lr_decay"])
                s["sum"].addcmul_(g, g, value=1)
                p.data.addcdiv_(g, s["sum"].sqrt().add_(group["eps"]), value=-clr)


class Adadelta(Optimizer):
    """Adadelta (Zeiler): steps scaled by the ratio of running RMS of updates and of gradients, with
    L2 weight decay (torch's optim.Adadelta; ``lr`` 1.0 by default)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: invalid rho value: {rho} (must be in [0, 1])")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        check_hyperparameters("Adadelta", defaults)
        super().__init__(params, defaults)

    def step(self) -> None:
        """One update: ``delta = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g``, ``p -= lr * delta``."""
        for group, params, _, grads in self._groups():
            rho, eps = group["rho"], group["eps"]
            for p, g in zip(params, grads):
                s = self.state.get(p)
                if not s:
                    zeros = torch.zeros_like(p.data)
                    s = self.state[p] = {"step": torch.tensor(0.0), "square_avg": zeros, "acc_delta": zeros.clone()}
                s["step"] += 1
                s["square_avg"].mul_(rho).addcmul_(g, g, value=1 - rho)
                std = s["square_avg"].add(eps).sqrt_()
                delta = s["acc_delta"].add(eps).sqrt_().div_(std).mul_(g)
                s["acc_delta"].mul_(rho).addcmul_(delta, delta, value=1 - rho)
                p.data.add_(delta, alpha=-group["lr"])
