"""A traced signature's entry, and the one check `Traced.__call__` makes on a call of the last signature.

A call's signature is what its trace depends on in each input (`key_of`): a tensor's shape, dtype,
device, strides and ``requires_grad``, any other value as it is. A call is looked up by that key
until its entry's executor has settled (compiled and checked, or the Python graph); then the entry is
`armed`: one generated expression compares the signature (the tensors' metadata in one C call of
torch's own tensor guard) and what the compiled step was built with (each captured tensor's data by
identity and its ``requires_grad``, no hooks, and the folded optimizer's state and hyperparameters),
so a call that passes runs the compiled step with no other check and no key built.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, cast

import torch

from ..engine.hooks import has_hooks
from ..engine.state import current
from ..engine.tensors import Tensor
from .tracegen import Plan

__all__ = ["Entry", "armed", "key_of", "tensor_check"]


def _never(args: tuple) -> Any:
    return None


class Entry:
    """One input signature's trace: its plan, whether its first replay was checked, its executor, and once
    armed (`arm`), ``call(args)``: the call's result where it passes the armed check (the compiled step run
    with no other check), else None."""

    def __init__(self, key: tuple, plan: Plan, verified: bool) -> None:
        self.key, self.plan, self.verified = key, plan, verified
        self.call: Callable[[tuple], Any] = _never
        self.fast: Any = None  # the executor, once verified: fast(args, captured data) -> (result, stepped)
        self.seen = [t.data for t in plan.captured]
        self.kinds = [key_of(t) for t in plan.captured]
        self.armed_on: tuple = ()  # what the armed check was made for: a call that failed it arms no other

    def arm(self, args: tuple, view: Any, stepped: Callable[[Any], Any]) -> None:
        """Arm ``call`` for calls like ``args`` where the executor has settled (a compiled step kept, or the
        Python graph), else disarm it; ``stepped(result)`` makes an unfolded optimizer step. Where the check
        would bake in what it baked in last time (a call failed it: a gradient held, a hook), nothing is made."""
        fast, plan = self.fast, self.plan
        on = (fast, getattr(fast, "compiled", None), getattr(fast, "layout", None), *self.seen)
        if len(on) == len(self.armed_on) and all(map(operator.is_, on, self.armed_on)):
            return
        self.call, self.armed_on = _never, on if getattr(fast, "settled", True) else ()
        if not self.armed_on:  # a compiled step not kept yet, or still to be compiled
            return
        folded = on[2] is not None
        tests = armed(self, args, view.optimizer if folded else None, fast.layout[1] if folded else None)
        if tests is None:  # no tensor guard in this torch
            return
        check, env = tests
        if folded:  # the folded step's inputs: the arguments' data, then what it was built with
            datas = [f"args[{i}]" + (".data" if k[3] is not None else "") for i, k in enumerate(self.key) if len(k) > 2]
            env.update(compiled=fast.compiled, tail=[*self.seen, *plan.consts, *fast.layout[0]], result=plan.result)
            body = f"result(compiled({', '.join(datas)}, *tail))"
        else:  # the Python graph, or an unfolded compiled step: the optimizer steps after it
            env.update(stepped=stepped, fast=fast, seen=self.seen)
            body = "stepped(fast(args, seen)[0])"
        self.call = eval(f"lambda args: {body} if {check} else None", env)

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
    except Exception:  # (a private API: without it no entry is armed, and every call is looked up by key)
        return None


def armed(entry: Entry, args: tuple, optimizer: Any = None, hyperparameters: Any = None) -> tuple[str, dict] | None:
    """The armed check, as an expression on ``args`` and the names it reads: no tape is open, grad mode is
    on and anomaly mode off; the call has ``entry``'s signature (``args``'s); each captured tensor holds
    the data it held (by identity) with the same ``requires_grad``, none of them has hooks, and with a
    folded ``optimizer``, no parameter holds a gradient, its state is the state the step was compiled
    with (the same tensors) and its groups equal ``hyperparameters``. None where torch has no tensor guard."""
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
