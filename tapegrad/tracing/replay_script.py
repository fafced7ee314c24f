"""The TorchScript compiler of `tg.trace` (see `tapegrad.tracing.executors`): the step without Python per op.

``torch.jit.trace`` runs the step once and keeps the aten ops it made as a graph, which
TorchScript's interpreter (C++) replays without its optimization passes (which would rewrite ops
and change the rounding): the eager step's kernels. A Python value computed from a tensor
(``torch.jit.TracerWarning``: it would be frozen) declines.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, cast

import torch
from torch.overrides import TorchFunctionMode

from .tracegen import Declined

__all__ = ["available", "compile_script"]

# None on a torch without them: `available()` is then False, and no graph runs
_get_optimize = cast("Callable[[], bool]", getattr(torch._C, "_get_graph_executor_optimize", None))
_set_optimize = cast("Callable[[bool], None]", getattr(torch._C, "_set_graph_executor_optimize", None))
_set_profiling = cast("Callable[[bool], bool]", getattr(torch._C, "_jit_set_profiling_mode", None))


def available() -> bool:
    """Whether this torch has TorchScript's tracer and its simple (unoptimized) executor."""
    has = (_get_optimize, _set_optimize, _set_profiling, getattr(torch._C, "ScriptFunction", None))
    return hasattr(torch, "jit") and hasattr(torch.jit, "trace") and all(f is not None for f in has)


def compile_script(fn: Callable[..., Any], inputs: list[torch.Tensor], kept: int | None) -> Callable[..., Any]:
    """``fn`` traced by ``torch.jit.trace`` on ``inputs`` (it runs once, for real) and lowered (see `_lower`
    for ``kept``); `Declined` where the tracer could not follow it or saw a tensor value read into Python."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _Recordable():
                graph = torch.jit.trace(fn, tuple(inputs), check_trace=False)
        except Exception as err:  # the tracer could not follow the step: it runs in Python
            raise Declined(str(err)) from err
    for w in caught:  # a Python boolean is a shape test (shapes are fixed per trace) or a branch, which
        # the first replay catches; a Python number read from a tensor (.item()) would be frozen
        if issubclass(w.category, torch.jit.TracerWarning) and "Python boolean" not in str(w.message):
            raise Declined("the step reads tensor values into Python")
    function, buffers = _lower(graph, kept)
    _make_simple(function, [*inputs, *buffers])
    if not buffers:
        return function

    def with_buffers(*inputs: torch.Tensor) -> Any:  # the graph, with the buffers it writes into
        return function(*inputs, *buffers)

    with_buffers.buffers = buffers  # type: ignore[attr-defined]
    return with_buffers


class _Recordable(TorchFunctionMode):
    """While the tracer runs: an aten op with a fixed-size bool list argument (the output mask of
    ``native_layer_norm_backward``, ``native_batch_norm_backward``, ``convolution_backward``), which the
    JIT tracer cannot record, is called through a TorchScript function of it, which it records (and the
    inliner then flattens: the same kernel). Its masked-out outputs are None, as the op's are."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        at = _mask_index(func) if isinstance(func, torch._ops.OpOverload) else None
        if at is None:
            return func(*args, **kwargs)
        mask = args[at] if at < len(args) else kwargs[func._schema.arguments[at].name]
        return tuple(out if wanted else None for out, wanted in zip(_scripted(func)(*args, **kwargs), mask))


@functools.cache
def _mask_index(op: Any) -> int | None:
    """The position of ``op``'s one bool list argument, if it has one and returns only tensors."""
    found = [i for i, a in enumerate(op._schema.arguments) if a.type.annotation_str == "List[bool]"]
    tensors = all(r.type.annotation_str == "Tensor" for r in op._schema.returns)
    return found[0] if len(found) == 1 and tensors else None


@functools.cache
def _scripted(op: Any) -> Any:
    """A TorchScript function calling ``op``; a masked-out output is replaced by the first tensor argument
    (an undefined tensor cannot leave a function the tracer records)."""
    schema = op._schema
    namespace, name = schema.name.split("::")
    mask = schema.arguments[_mask_index(op)].name
    first = next(a.name for a in schema.arguments if a.type.annotation_str == "Tensor")
    n = len(schema.returns)
    source = (
        f"def call({', '.join(f'{a.name}: {a.type.annotation_str}' for a in schema.arguments)})"
        f" -> Tuple[{', '.join(['Tensor'] * n)}]:\n"
        f"    {', '.join(f'r{i}' for i in range(n))} = torch.ops.{namespace}.{name}"
        f"({', '.join(a.name for a in schema.arguments)})\n"
        f"    return ({', '.join(f'r{i} if {mask}[{i}] else {first}' for i in range(n))})\n"
    )
    return torch.jit.CompilationUnit(source).call


def _make_simple(function: Any, inputs: list[torch.Tensor]) -> None:
    """Make ``function``'s executor now, in TorchScript's simple mode: its one plan is the graph after
    the no-optimization passes, whatever the global flags say on later calls (autocast ignored, so no
    second executor is made for it). Runs the graph once, on the compiler's copies."""
    ignore_amp = getattr(function, "_set_ignore_amp", None)  # (not in torch's stubs)
    if ignore_amp is not None:
        ignore_amp(True)
    profiling, optimize = _set_profiling(False), _get_optimize()
    _set_optimize(False)
    try:
        function(*inputs)
    finally:
        _set_profiling(profiling)
        _set_optimize(optimize)


# Products this large get a buffer of their own that lives across calls: a fresh multi-MB buffer
# per step comes from the kernel (mmap, or the heap top that glibc trimmed) and is faulted in
# again page by page on every step, which made a width-2048 layer at batch 10 slower than torch.
_REUSE_BYTES = 128 * 1024


def _lower(graph: Any, kept: int | None) -> tuple[Any, list[torch.Tensor]]:
    """A leaner copy of a traced graph that makes the same kernels, and its persistent buffers.

    Only rewrites that keep every kernel: inlining, one constant node per value, dead nodes
    removed, 2-D ``matmul`` as the ``mm`` it dispatches to. Where the caller keeps only the first
    ``kept`` outputs (the folded graph's results; its weight gradients, after them, are read before
    the next call, if at all), each large CPU product that is none of those writes into a persistent
    buffer (``mm(..., out=buffer)``, the buffer a new input): no allocation per call. ``kept=None``:
    every output is kept.
    """
    g = graph.graph.copy()
    torch._C._jit_pass_inline(g)
    torch._C._jit_pass_constant_pooling(g)  # type: ignore[attr-defined]  # not in torch's stubs
    torch._C._jit_pass_dce(g)
    outputs = list(g.outputs())
    if len(outputs) == 1 and outputs[0].node().kind() == "prim::TupleConstruct":
        outputs = list(outputs[0].node().inputs())
    returned = {v.unique() for v in outputs[:kept]}
    buffers = []
    for node in list(g.nodes()):
        if node.kind() not in ("aten::matmul", "aten::mm"):
            continue
        inputs = list(node.inputs())
        t = node.output().type()
        kind = "aten::mm" if all(i.type().dim() == 2 for i in inputs[:2]) else node.kind()
        extra = []
        if kept is not None and node.output().unique() not in returned and _big_cpu(t):
            buffers.append(torch.empty(t.sizes(), dtype=t.dtype()))
            slot = g.addInput()
            slot.setType(t)
            extra = [slot]
        if kind == node.kind() and not extra:
            continue
        new = g.create(kind, inputs + extra, 1)
        new.insertBefore(node)
        new.output().setType(t)
        node.output().replaceAllUsesWith(new.output())
        node.destroy()
    g.lint()
    return torch._C._create_function_from_graph("tapegrad_step", g), buffers


def _big_cpu(t: Any) -> bool:
    device = t.device()
    return device is not None and device.type == "cpu" and math.prod(t.sizes()) * t.dtype().itemsize >= _REUSE_BYTES
