"""safetensors for `nn.save`, imported on first use (the ``[io]`` extra); `nn.load` reads files itself."""

from __future__ import annotations

from typing import Any

import torch

from tapegrad._optional import require

__all__ = ["save"]


def save(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """`safetensors.torch.save`: the tensors and string metadata as safetensors bytes."""
    st: Any = require("safetensors.torch", "nn.save (a checkpoint in the safetensors format)")
    return st.save(tensors, metadata=metadata)
