"""Whether a graph capture is running the code that asks: ``make_fx`` (tg.trace's inductor executor),
``torch.jit.trace`` or Dynamo. Such a capture records what tensors flow through, so code that reads a tensor's
value into Python, or hands out a reused buffer, must take another path under it."""

from __future__ import annotations

import torch

__all__ = ["capturing"]


def capturing() -> bool:
    """Whether ``make_fx``, ``torch.jit.trace`` or Dynamo is capturing the calling code."""
    proxy = torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY)
    return proxy is not None or torch.jit.is_tracing() or torch.compiler.is_compiling()
