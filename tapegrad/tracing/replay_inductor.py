"""The inductor executor of `tg.trace`: the step (`executors.Entry`), compiled to fused kernels.

The step is captured at the aten level with ``make_fx`` (fake tensors: a value read into Python
refuses it), then compiled by ``torch._inductor.compile`` without Dynamo (whose guards cost tens of
microseconds a call), in a tracing context whose inputs are all static: without one, inductor
bypasses its FX graph cache ("no shape env"); with it, a later process loads the step from the
on-disk caches. Two updates torch 2.13's inductor miscompiles on the CPU are rewritten first (see
`rewrite_updates`); random draws run torch's kernels (``fallback_random``: the eager step's masks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch._inductor
import torch.fx
from torch.fx.experimental.proxy_tensor import make_fx

from .tracegen import Declined

__all__ = ["CPP_WRAPPER", "compile_inductor", "rewrite_updates"]

aten = torch.ops.aten
# an op with alpha= -> the multiply that scales its second operand instead
_ALPHA = {op: aten.mul.Tensor for op in (aten.add.Tensor, aten.add_.Tensor, aten.sub.Tensor, aten.sub_.Tensor)}
_ALPHA |= {op: aten._foreach_mul.Scalar for op in (aten._foreach_add.List, aten._foreach_add_.List,
                                                   aten._foreach_sub.List, aten._foreach_sub_.List)}  # fmt: skip


# On the CPU the compiled step calls its kernels from a C++ wrapper, not inductor's Python one: the seed
# network's step takes 50 us instead of 78, and compiles warm in under a second (docs/performance.md, tg.trace,
# eighth round); a step the C++ wrapper cannot build is compiled with the Python wrapper.
CPP_WRAPPER = True


def compile_inductor(fn: Callable[..., Any], inputs: list[torch.Tensor], kept: int | None) -> Callable[..., Any]:
    """``fn`` captured with ``make_fx`` (fake tensors), its updates rewritten, compiled by inductor;
    `Declined` where it cannot be captured (a value read into Python) or compiled."""
    try:
        gm = make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
        rewrite_updates(gm)
        cpp = CPP_WRAPPER and not any(t.is_cuda for t in inputs)
        try:
            return _compiled(gm, inputs, cpp)
        except Exception:
            if not cpp:
                raise
        return _compiled(gm, inputs, False)
    except Declined:
        raise
    except Exception as err:  # any failure to capture or compile: the Python graph runs
        raise Declined(f"inductor cannot compile it ({type(err).__name__}: {str(err)[:200]})") from err


def _compiled(gm: torch.fx.GraphModule, inputs: list[torch.Tensor], cpp: bool) -> Callable[..., Any]:
    """``gm`` compiled by inductor (``cpp``: with the C++ wrapper), in a static tracing context."""
    with _static_context(inputs), torch._inductor.config.patch(_settings(cpp)):
        fn = torch._inductor.compile(gm, list[Any](inputs))
    # its AOT runtime wrapper without Dynamo's frame-hook toggle around it: 40-70 us a call of the lstm row's step
    inner = getattr(fn, "__wrapped__", None)  # (which prepends the module's parameters: a make_fx graph has none)
    cells = dict(zip(inner.__code__.co_freevars, (c.cell_contents for c in inner.__closure__ or ()))) if inner else {}
    boxed = getattr(cells.get("compiled_fn"), "compiled_fn", cells.get("compiled_fn"))  # (a cached one's: wrapped)
    return fn if cells.get("params_buffers_flat", True) or boxed is None else lambda *args: boxed(list(args))


def _settings(cpp: bool) -> dict[str, Any]:
    """Random draws by torch's own kernels (the eager step's masks); and on the CPU, the vector ISA the
    CPU reports trusted without inductor's probe (a compile and a child process per ISA, seconds in every
    process, even on a cache hit): a build it cannot make declines, and a wrong kernel fails the check."""
    config = torch._inductor.config
    vec = True if config.cpp.vec_isa_ok is None else config.cpp.vec_isa_ok
    return {"fallback_random": True, "cpp.vec_isa_ok": vec, "cpp_wrapper": cpp}


def _static_context(inputs: list[torch.Tensor]) -> Any:
    """A tracing context with a shape environment (which inductor's caches need) in which every
    input's sizes are static, as the trace's are (the step is compiled per input signature)."""
    from torch._dynamo.source import LocalSource
    from torch._guards import TracingContext, tracing
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatefulSymbolicContext

    context = TracingContext(FakeTensorMode(shape_env=ShapeEnv()))
    for i, t in enumerate(inputs):
        context.tensor_to_context[t] = StatefulSymbolicContext(
            dynamic_sizes=[DimDynamic.STATIC] * t.dim(),
            constraint_sizes=[None] * t.dim(),
            tensor_source=LocalSource(f"input_{i}"),
            shape_env_to_source_to_symbol_cache={},
        )
    return tracing(context)


def rewrite_updates(gm: torch.fx.GraphModule) -> None:
    """Rewrite the updates inductor miscompiles: ``add(x, y, alpha=a)`` (fused into ``addmm`` with ``alpha``
    dropped) as ``add(x, mul(y, a))``, and an in-place add on a 0-d float64 tensor (lost) as
    ``copy_(x, add(x, y))``."""
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        alpha = node.kwargs.get("alpha", 1)
        if node.target in _ALPHA and alpha != 1:
            with graph.inserting_before(node):
                scaled = graph.call_function(_ALPHA[node.target], (node.args[1], alpha))
            node.args = (node.args[0], scaled, *node.args[2:])
            node.kwargs = {k: v for k, v in node.kwargs.items() if k != "alpha"}
        if node.target is aten.add_.Tensor:
            val = node.args[0].meta.get("val") if isinstance(node.args[0], torch.fx.Node) else None
            if isinstance(val, torch.Tensor) and val.dim() == 0 and val.dtype == torch.float64:
                with graph.inserting_before(node):
                    total = graph.call_function(aten.add.Tensor, node.args, dict(node.kwargs))
                    copy = graph.call_function(aten.copy_.default, (node.args[0], total))
                node.replace_all_uses_with(copy)
                graph.erase_node(node)
    graph.lint()
    gm.recompile()
