"""A traced signature's entry and its guard: what `Traced.__call__` checks on every call.

A call's signature is what its trace depends on in each input (`key_of`): a tensor's shape,
dtype, device and ``requires_grad``, any other value as it is. The keyed lookup builds and hashes
that tuple; the last call's entry is instead checked by its `guard`, one generated expression
that makes the same comparisons without building anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from ..engine.tensors import Tensor
from .tracegen import Plan

__all__ = ["Entry", "guard", "key_of"]


class Entry:
    """One input signature's trace: its plan, whether its first replay was checked, its executor, and
    the guard that tells a call of this signature without building its key."""

    def __init__(self, key: tuple, plan: Plan, verified: bool) -> None:
        self.key, self.plan, self.verified = key, plan, verified
        self.guard = guard(key)
        self.fast: Any = None  # the executor, once verified: fast(args, captured data) -> (result, stepped)
        self.captured = plan.captured
        self.seen = [t.data for t in plan.captured]
        self.flags = [t.requires_grad for t in plan.captured]
        self.kinds = [(d.shape, d.dtype, d.device) for d in self.seen]

    def same_kind(self, captured: list[Tensor]) -> bool:
        """Whether the captured tensors still have the traced shape, dtype, device and requires_grad."""
        now = [(t.data.shape, t.data.dtype, t.data.device) for t in captured]
        return now == self.kinds and [t.requires_grad for t in captured] == self.flags


def guard(key: tuple) -> Callable[[tuple], bool]:
    """A function telling whether a call's ``args`` have the signature ``key`` (what `key_of` makes of
    them) without building and hashing a key: the comparisons written out as one expression."""
    env: dict[str, Any] = {"Tensor": Tensor, "RawTensor": torch.Tensor}
    tests = [f"len(args) == {len(key)}"]
    for i, k in enumerate(key):
        env[f"k{i}"] = k
        if len(k) == 2:  # a constant: its type and value
            tests.append(f"type(args[{i}]) is k{i}[0] and args[{i}] == k{i}[1]")
            continue
        data, flag = (f"(d{i} := args[{i}].data)", f"args[{i}].requires_grad is k{i}[3]") if k[3] is not None else (
            f"(d{i} := args[{i}])", "True")  # fmt: skip
        kind = "Tensor" if k[3] is not None else "RawTensor"
        tests.append(f"isinstance(args[{i}], {kind}) and {data}.shape == k{i}[0] and d{i}.dtype is k{i}[1]")
        tests.append(f"d{i}.device == k{i}[2] and {flag}")
    return cast("Callable[[tuple], bool]", eval("lambda args: " + " and ".join(tests), env))


def key_of(a: Any) -> Any:
    """What the trace depends on in one input: a tensor's shape, dtype, device and requires_grad,
    any other value as it is."""
    if isinstance(a, Tensor):
        d = a.data
        return d.shape, d.dtype, d.device, a.requires_grad
    if isinstance(a, torch.Tensor):
        return a.shape, a.dtype, a.device, None
    return type(a), a
