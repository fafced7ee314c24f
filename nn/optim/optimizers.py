"""`AdamW` (decoupled weight decay) and `RMSprop`, with torch's update rules, state and argument checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from tapegrad.engine.tensors import Tensor

from ..validation import check_hyperparameters
from .optimizer import Adam, Optimizer

__all__ = ["AdamW", "RMSprop"]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): ``p *= 1 - lr * weight_decay`` before
    the Adam step, which itself sees no L2 term (torch's optim.AdamW; weight_decay 0.01 by default)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        check_hyperparameters("AdamW", dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)

    def step(self) -> None:
        """Decay the parameters that have a gradient, then take Adam's step without L2."""
        decays = []
        for group in self.param_groups:
            params, _ = self._with_grads(group)
            if params and group["weight_decay"] != 0:
                torch._foreach_mul_([p.data for p in params], 1 - group["lr"] * group["weight_decay"])
            decays.append(group["weight_decay"])
            group["weight_decay"] = 0.0
        try:
            super().step()
        finally:
            for group, wd in zip(self.param_groups, decays):
                group["weight_decay"] = wd


class RMSprop(Optimizer):
    """RMSprop (Hinton) with momentum, centering and L2 weight decay, as torch's optim.RMSprop."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)
        defaults["maximize"] = maximize
        check_hyperparameters("RMSprop", defaults)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        s = self.state.get(p)
        if not s:
            s = self.state[p] = {"step": torch.tensor(0.0), "square_avg": torch.zeros_like(p.data)}
            if group["momentum"] > 0:
                s["momentum_buffer"] = torch.zeros_like(p.data)
            if group["centered"]:
                s["grad_avg"] = torch.zeros_like(p.data)
        return s

    def step(self) -> None:
        """One update: ``p -= lr * g / (sqrt(E[g^2] - E[g]^2 if centered) + eps)``, through momentum if set."""
        for group, params, _, grads in self._groups():
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for p, g in zip(params, grads):
                s = self._state(p, group)
                s["step"] += 1
                square_avg = s["square_avg"]
                square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha)
                if group["centered"]:
                    grad_avg = s["grad_avg"]
                    grad_avg.lerp_(g, 1 - alpha)
                    avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_().add_(eps)
                else:
                    avg = square_avg.sqrt().add_(eps)
                if group["momentum"] > 0:
                    buf = s["momentum_buffer"]
                    buf.mul_(group["momentum"]).addcdiv_(g, avg)
                    p.data.add_(buf, alpha=-lr)
                else:
                    p.data.addcdiv_(g, avg, value=-lr)
