"""A traced signature's entry and the checks `Traced.__call__` makes on every call.

A call's signature is what its trace depends on in each input (`key_of`): a tensor's shape,
dtype, device and ``requires_grad``, any other value as it is. The keyed lookup builds and hashes
that tuple; the last call's entry is instead checked by `guard`, one generated expression making
the same comparisons. Once the entry's executor has compiled and checked its step, the entry is
`armed`: one generated expression also compares what the compiled step was built with (each
captured tensor's data by identity and its ``requires_grad``, no hooks, and the folded optimizer's
state and hyperparameters), so a call that passes runs the compiled step with no other check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from ..engine.hooks import has_hooks
from ..engine.tensors import Tensor
from .tracegen import Plan

__all__ = ["Entry", "armed", "guard", "key_of"]


def _never(args: tuple) -> bool:
    return False


class Entry:
    """One input signature's trace: its plan, whether its first replay was checked, its executor, its
    guard, and ``ready``: its armed check (`armed`), or a check that always fails until it is armed."""

    def __init__(self, key: tuple, plan: Plan, verified: bool, args: tuple) -> None:
        self.key, self.plan, self.verified = key, plan, verified
        self.tensors = tensor_check([a.data if isinstance(a, Tensor) else a for a in args if len(key_of(a)) > 2])
        self.guard = guard(key, tensors=self.tensors)
        self.ready: Callable[[tuple], bool] = _never
        self.fast: Any = None  # the executor, once verified: fast(args, captured data) -> (result, stepped)
        self.replay: Any = None  # what ``fast`` runs once armed, without checks
        self.seen = [t.data for t in plan.captured]
        self.flags = [t.requires_grad for t in plan.captured]
        self.kinds = [key_of(t) for t in plan.captured]

    def arm(self, view: Any) -> None:
        """Arm ``ready`` where the executor has settled (compiled and checked, or the Python graph)."""
        fast = self.fast
        settled = getattr(fast, "settled", None)
        if settled is None:  # the Python graph
            self.ready, self.replay = armed(self), fast
        elif settled():
            folded = fast.layout is not None
            self.ready = armed(self, view.optimizer if folded else None, fast.layout[1] if folded else None)
            self.replay = fast.replay
        else:
            self.ready = _never

    def same_kind(self, captured: list[Tensor]) -> bool:
        """Whether the captured tensors still have the traced shape, dtype, device, strides and requires_grad."""
        return [key_of(t) for t in captured] == self.kinds


def tensor_check(examples: list[torch.Tensor]) -> Any:
    """One C call comparing tensors with ``examples`` (dtype, device, dispatch keys, sizes, strides):
    torch's own tensor guard (Dynamo's), where this torch has it; else None."""
    try:
        from torch._C._dynamo import guards

        sizes, strides = [list(t.shape) for t in examples], [list(t.stride()) for t in examples]
        names = [f"input {i}" for i in range(len(examples))]
        made = cast(Any, guards).TensorGuards
        return made(*examples, dynamic_dims_sizes=sizes, dynamic_dims_strides=strides, tensor_check_names=names).check
    except Exception:  # (a private API: the comparisons are then written out in Python)
        return None


def guard(
    key: tuple, more: tuple[list[str], dict[str, Any]] = ([], {}), tensors: Any = None
) -> Callable[[tuple], bool]:
    """A function telling whether a call's ``args`` have the signature ``key`` (what `key_of` makes of
    them) without building and hashing a key: the comparisons written out as one expression (the
    tensors' metadata in one call of ``tensors``, a `tensor_check`, where given), followed by
    ``more``'s (its tests, and the names they read)."""
    env: dict[str, Any] = {"Tensor": Tensor, "RawTensor": torch.Tensor, "check": tensors, **more[1]}
    tests, datas = [f"len(args) == {len(key)}"], []
    for i, k in enumerate(key):
        env[f"k{i}"] = k
        if len(k) == 2:  # a constant: its type and value
            tests.append(f"type(args[{i}]) is k{i}[0] and args[{i}] == k{i}[1]")
            continue
        if tensors is not None:
            kind, flag = (
                ("Tensor", f"args[{i}].requires_grad is k{i}[3]") if k[3] is not None else ("RawTensor", "True")
            )
            tests.append(f"isinstance(args[{i}], {kind}) and {flag}")
            datas.append(f"args[{i}].data" if k[3] is not None else f"args[{i}]")
            continue
        data, flag = (f"(d{i} := args[{i}].data)", f"args[{i}].requires_grad is k{i}[3]") if k[3] is not None else (
            f"(d{i} := args[{i}])", "True")  # fmt: skip
        kind = "Tensor" if k[3] is not None else "RawTensor"
        tests.append(f"isinstance(args[{i}], {kind}) and {data}.shape == k{i}[0] and d{i}.dtype is k{i}[1]")
        tests.append(f"d{i}.device == k{i}[2] and {flag} and d{i}.stride() == k{i}[4]")
    if datas:
        tests.append(f"check({', '.join(datas)})")
    return cast("Callable[[tuple], bool]", eval("lambda args: " + " and ".join(tests + more[0]), env))


def armed(entry: Entry, optimizer: Any = None, hyperparameters: Any = None) -> Callable[[tuple], bool]:
    """``entry``'s guard, then: each captured tensor holds the data it held (by identity) with the same
    ``requires_grad``, none of them has hooks, and with a folded ``optimizer``, no parameter holds a
    gradient, its state is the state the step was compiled with (the same tensors) and its groups
    equal ``hyperparameters``."""
    env: dict[str, Any] = {"has_hooks": has_hooks, "captured": entry.plan.captured}
    tests = []
    for i, (t, data) in enumerate(zip(entry.plan.captured, entry.seen)):
        env[f"c{i}"], env[f"s{i}"] = t, data
        tests.append(f"c{i}.data is s{i} and c{i}.requires_grad is {t.requires_grad}")
    # hooks on this step's tensors only, as the slow path asks (another tensor's hooks are not ours)
    tests.append("(not has_hooks() or not any(map(has_hooks, captured)))")
    if optimizer is not None:
        state = getattr(optimizer, "state", {})
        env.update(opt=optimizer, state=state, hyper=hyperparameters)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        for i, p in enumerate(params):
            env[f"p{i}"] = p
            tests.append(f"p{i}.grad is None")
            if p in state:
                env[f"o{i}"] = held = state[p]
                tests.append(f"state[p{i}] is o{i} and len(o{i}) == {len(held)}")
                for j, (k, v) in enumerate((k, v) for k, v in held.items() if isinstance(v, torch.Tensor)):
                    env[f"k{i}_{j}"], env[f"v{i}_{j}"] = k, v
                    tests.append(f"o{i}[k{i}_{j}] is v{i}_{j}")
        tests.append(f"len(state) == {len(state)} and opt.param_groups == hyper")
    return guard(entry.key, (tests, env), entry.tensors)


def key_of(a: Any) -> Any:
    """What the trace depends on in one input: a tensor's shape, dtype, device, requires_grad and strides
    (a compiled step may be specialized to them), any other value as it is."""
    if isinstance(a, Tensor):
        d = a.data
        return d.shape, d.dtype, d.device, a.requires_grad, d.stride()
    if isinstance(a, torch.Tensor):
        return a.shape, a.dtype, a.device, None, a.stride()
    return type(a), a
