"""sort, argsort, topk, kthvalue, median: the indices come from torch (constants); the values are
``gather`` of the input at them, so each value's gradient goes back to the element it came from."""

from __future__ import annotations

import operator
from collections import namedtuple
from typing import Any

import torch

from ..engine.errors import call_site
from ..engine.tensors import Tensor, wrap
from ._operands import raw
from .gathering import _gather
from .shape import reshape

__all__ = ["sort", "argsort", "topk", "kthvalue", "median", "msort"]

SortResult = namedtuple("SortResult", ["values", "indices"])
TopkResult = namedtuple("TopkResult", ["values", "indices"])
KthvalueResult = namedtuple("KthvalueResult", ["values", "indices"])
MedianResult = namedtuple("MedianResult", ["values", "indices"])


def _picked(result: type, input: Any, indices: torch.Tensor, dim: int, keepdim: bool = True) -> Any:
    """``result(values, indices)``: the values gathered from ``input`` (recorded), the indices a constant."""
    if raw(input).dim() == 0:
        values = input
    else:
        idx = indices if keepdim else indices.unsqueeze(dim)
        values = _gather(input, dim=dim, index=idx)
        if not keepdim:
            values = reshape(values, indices.shape)
    return result(values, wrap(indices) if isinstance(input, Tensor) else indices)


def sort(input: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """``(values, indices)`` of ``input`` sorted along ``dim``, as torch.sort; ``stable`` keeps ties in order."""
    indices = torch.sort(raw(input), dim=dim, descending=descending, stable=stable).indices
    return _picked(SortResult, input, indices, dim)


def msort(input: Any) -> Any:
    """``input`` sorted along its first dimension (values only), as torch.msort."""
    return sort(input, dim=0).values


def argsort(input: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """The indices that sort ``input`` along ``dim``, as torch.argsort: an integer constant."""
    indices = torch.argsort(raw(input), dim=dim, descending=descending, stable=stable)
    return wrap(indices) if isinstance(input, Tensor) else indices


def _count(op: str, k: Any) -> int:
    """``k`` as an int (anything with ``__index__``), or a TypeError naming ``op``. A tg.Tensor ``k``
    handed to torch would come back to tapegrad through ``__torch_function__``, without end."""
    try:
        return operator.index(k)
    except TypeError:
        raise TypeError(f"{op}: k must be an integer, got {type(k).__name__} (called at {call_site()})") from None


def topk(input: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    """``(values, indices)`` of the ``k`` largest (smallest) elements along ``dim``, as torch.topk."""
    k = _count("topk", k)
    x = raw(input)
    size = x.shape[dim] if x.dim() else 1
    if not 0 <= k <= size:
        raise ValueError(f"topk: k={k} is out of range for dimension {dim} of size {size} (called at {call_site()})")
    indices = torch.topk(x, k, dim=dim, largest=largest, sorted=sorted).indices
    return _picked(TopkResult, input, indices, dim)


def kthvalue(input: Any, k: int, dim: int = -1, keepdim: bool = False) -> Any:
    """``(values, indices)`` of the ``k``-th smallest element along ``dim``, as torch.kthvalue."""
    indices = torch.kthvalue(raw(input), _count("kthvalue", k), dim=dim, keepdim=keepdim).indices
    return _picked(KthvalueResult, input, indices, dim, keepdim)


def median(input: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median of all elements, or ``(values, indices)`` along ``dim``, as torch.median."""
    if dim is None:
        flat = reshape(input, (-1,))
        index = torch.argsort(raw(flat), stable=True)[(raw(flat).numel() - 1) // 2]
        return reshape(_gather(flat, dim=0, index=index.reshape(1)), ())
    indices = torch.median(raw(input), dim=dim, keepdim=keepdim).indices
    return _picked(MedianResult, input, indices, dim, keepdim)
