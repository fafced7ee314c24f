"""`LayerNorm` and `Embedding` (a lookup table with torch's ``padding_idx``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tapegrad.engine.errors import IndexShapeError, ShapeError
from tapegrad.engine.tensors import Tensor
from tapegrad.ops import embedding
from tapegrad.ops.normalization import affine_layer_norm

from . import init as _init
from ._where import called_at, layer_name
from .layers import as_tensor
from .module import Module, Parameter

__all__ = ["LayerNorm", "Embedding"]


class LayerNorm(Module):
    """Normalises over the last ``len(normalized_shape)`` dimensions: (x - mean) / sqrt(var + eps),
    then ``* weight + bias`` (ones and zeros at first) when ``elementwise_affine``."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(torch.ones(shape, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(torch.zeros(shape, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        """The normalised input: one fused record (`tg.layer_norm`)."""
        if not isinstance(x, Tensor):
            x = as_tensor(x)
        dims = x.data.shape
        shape = self.normalized_shape
        n = len(shape)
        if len(dims) < n or dims[len(dims) - n :] != shape:
            raise ShapeError(
                f"{layer_name('LayerNorm')} expects inputs ending in {self.normalized_shape}, got {tuple(x.shape)}"
                f"{called_at()}"
            )
        params = self._parameters  # one dict lookup instead of two Module.__getattr__ calls
        return affine_layer_norm(x, list(shape), params["weight"], params["bias"], self.eps)

    def extra_repr(self) -> str:
        """``(8,), eps=1e-05, elementwise_affine=True``."""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim`` (N(0, 1) at first), looked up by
    integer indices (`tg.embedding`, one record); the row ``padding_idx`` starts at zero and never
    receives a gradient. ``max_norm``, ``norm_type`` and ``scale_grad_by_freq`` are torch's."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx must lie within num_embeddings={num_embeddings}, got {padding_idx}"
                )
            padding_idx %= num_embeddings
        if sparse:
            raise ValueError("Embedding: sparse gradients are not supported")
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        self.weight = Parameter(torch.empty((num_embeddings, embedding_dim), device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw N(0, 1) rows; the padding row is zero."""
        _init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx].zero_()

    def forward(self, indices: Any) -> Tensor:
        """The rows of ``weight`` at ``indices`` (any shape): output shape ``(*indices.shape, embedding_dim)``."""
        idx = indices.data if isinstance(indices, Tensor) else torch.as_tensor(indices)
        if idx.is_floating_point() or idx.is_complex() or idx.dtype is torch.bool:
            raise TypeError(
                f"{layer_name('Embedding')}: indices must be an integer tensor, got {idx.dtype}{called_at()}"
            )
        try:
            return embedding(
                idx, self.weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq
            )  # fmt: skip
        except IndexShapeError:  # an index out of range: name the range (only now, no sync per step)
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.num_embeddings):
                raise IndexShapeError(
                    f"{layer_name('Embedding')}: indices must lie in [0, {self.num_embeddings - 1}] "
                    f"(num_embeddings={self.num_embeddings}), got values in [{int(idx.min())}, {int(idx.max())}]"
                    f"{called_at()}"
                ) from None
            raise

    def extra_repr(self) -> str:
        """``10, 3, padding_idx=0``."""
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
