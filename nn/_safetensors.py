"""safetensors for `nn.save`/`nn.load`, imported on first use (the ``[io]`` extra)."""

from __future__ import annotations

from typing import Any

import torch

from tapegrad._optional import require

__all__ = ["SafetensorError", "load", "save"]


class SafetensorError(ValueError):
    """safetensors could not parse a checkpoint (its own error, re-raised under this name)."""


def save(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """`safetensors.torch.save`: the tensors and string metadata as safetensors bytes."""
    st: Any = require("safetensors.torch", "nn.save (a checkpoint in the safetensors format)")
    return st.save(tensors, metadata=metadata)


def load(blob: bytes) -> dict[str, torch.Tensor]:
    """`safetensors.torch.load`: the tensors in safetensors bytes, or `SafetensorError`."""
    st: Any = require("safetensors.torch", "nn.load (a checkpoint in the safetensors format)")
    errors: Any = require("safetensors", "nn.load")
    try:
        return st.load(blob)
    except errors.SafetensorError as err:
        raise SafetensorError(str(err)) from err
