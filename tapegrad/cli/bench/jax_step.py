"""The JAX contender (optional: ``pip install tapegrad[bench]``): one SGD step under ``jax.jit``.

The same network, loss and update as the other contenders, written in JAX, jitted once per
step (not the whole epoch under ``lax.scan``, which no eager library can be compared with),
started from the same weights on the same batches. JAX runs on the CPU with one thread,
as torch does here (set before JAX is first imported).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch


def available() -> bool:
    """Whether jax can be imported here."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def jax_contender(
    weights: list[torch.Tensor], batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float
) -> tuple[Callable[[], None], Callable[[], list[torch.Tensor]]]:
    """A jitted SGD step of the seed network; returns (epoch, a function giving the weights as torch)."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp

    n = len(weights) // 2

    def loss(params: list[Any], x: Any, y: Any) -> Any:
        h = x
        for i in range(n):
            h = h @ params[2 * i].T + params[2 * i + 1]
            h = jax.nn.relu(h) if i < n - 1 else jnp.tanh(h)
        return jnp.mean((h - y) ** 2)

    @jax.jit
    def step(params: list[Any], x: Any, y: Any) -> tuple[list[Any], Any]:
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return [p - lr * g for p, g in zip(params, grads)], value

    data = [(jnp.asarray(x.numpy()), jnp.asarray(y.numpy())) for x, y in batches]
    state = {"params": [jnp.asarray(w.numpy()) for w in weights]}

    def epoch() -> None:
        params = state["params"]
        for x, y in data:
            params, _ = step(params, x, y)
        state["params"] = jax.block_until_ready(params)

    def params() -> list[torch.Tensor]:
        return [torch.from_numpy(jax.device_get(p).copy()) for p in state["params"]]

    return epoch, params
