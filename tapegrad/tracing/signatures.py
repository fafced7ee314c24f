"""An input signature's key (`key_of`), and the one check `Traced.__call__` makes on a call of the last signature.

A call is looked up by its key until its `executors.Entry` has settled (a compiled step checked and kept, or
the Python graph); then the entry is armed with the `armed` check, one generated expression (the tensors'
metadata compared in one C call of torch's own tensor guard): a call that passes runs the step, no key built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch

from ..engine.hooks import has_hooks
from ..engine.state import current
from ..engine.tensors import Tensor

if TYPE_CHECKING:
    from .executors import Entry

__all__ = ["armed", "key_of", "tensor_check"]


def tensor_check(examples: list[torch.Tensor]) -> Any:
    """One C call comparing tensors with ``examples`` (dtype, device, dispatch keys, sizes, strides):
    torch's own tensor guard (Dynamo's), where this torch has it; else None."""
    try:
        from torch._C._dynamo import guards

        sizes, strides = [list(t.shape) for t in examples], [list(t.stride()) for t in examples]
        names = [f"input {i}" for i in range(len(examples))]
        made = cast(Any, guards).TensorGuards
        return made(*examples, dynamic_dims_sizes=sizes, dynamic_dims_strides=strides, tensor_check_names=names).check
    except Exception:  # (a private API: without it no entry is armed, and every call is looked up by key)
        return None


def armed(entry: Entry, args: tuple) -> tuple[str, dict] | None:
    """The armed check, as an expression on ``args`` and the names it reads: no tape is open, grad mode is
    on and anomaly mode off; the call has ``entry``'s signature (``args``'s); each captured tensor holds
    the data it held (by identity) with the same ``requires_grad``, none of them has hooks, and where the
    optimizer's update is folded into the step, no parameter holds a gradient, its state is the state the
    step was compiled with (the same tensors) and its groups equal the hyperparameters it baked in. None
    where torch has no tensor guard."""
    tensors = [(i, k[3] is not None) for i, k in enumerate(entry.key) if len(k) > 2]  # (index, a tg.Tensor)
    check = tensor_check([args[i].data if wrapped else args[i] for i, wrapped in tensors])
    if check is None:
        return None
    env: dict[str, Any] = {"Tensor": Tensor, "RawTensor": torch.Tensor, "check": check, "has_hooks": has_hooks}
    env.update(captured=entry.plan.captured, current=current)
    tests = ["not (s := current()).tapes and not s.anomaly and s.grad_enabled", f"len(args) == {len(entry.key)}"]
    for i, k in enumerate(entry.key):
        env[f"k{i}"] = k
        if len(k) == 2:  # a constant: its type and value
            tests.append(f"type(args[{i}]) is k{i}[0] and args[{i}] == k{i}[1]")
        elif k[3] is None:
            tests.append(f"isinstance(args[{i}], RawTensor)")
        else:
            tests.append(f"isinstance(args[{i}], Tensor) and args[{i}].requires_grad is k{i}[3]")
    tests.append(f"check({', '.join(f'args[{i}].data' if w else f'args[{i}]' for i, w in tensors)})")
    for i, (t, data) in enumerate(zip(entry.plan.captured, entry.seen)):
        env[f"c{i}"], env[f"s{i}"] = t, data
        tests.append(f"c{i}.data is s{i} and c{i}.requires_grad is {t.requires_grad}")
    # hooks on this step's tensors only, as the slow path asks (another tensor's hooks are not ours)
    tests.append("(not has_hooks() or not any(map(has_hooks, captured)))")
    if entry.layout is not None and entry.view is not None:
        optimizer = entry.view.optimizer
        state = getattr(optimizer, "state", {})
        env.update(opt=optimizer, state=state, hyper=entry.layout[1])
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
    return "(" + " and ".join(tests) + ")", env


def key_of(a: Any) -> Any:
    """What the trace depends on in one input: a tensor's shape, dtype, device, requires_grad and strides
    (a compiled step may be specialized to them), any other value as it is."""
    if isinstance(a, Tensor):
        d = a.data
        return d.shape, d.dtype, d.device, a.requires_grad, d.stride()
    if isinstance(a, torch.Tensor):
        return a.shape, a.dtype, a.device, None, a.stride()
    return type(a), a
