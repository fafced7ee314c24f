"""Node attributes of the networkx graph: what a tensor, a constant, a scope and an op look like."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from tapegrad.engine.errors import NO_USER_FRAME, site_line
from tapegrad.engine.state import Scope
from tapegrad.engine.tensors import Tensor

__all__ = ["tensor_attrs", "constant_attrs", "module_attrs", "scope_label", "site_text", "params_text"]


def tensor_attrs(t: Tensor, values: bool) -> dict:
    """Shape, dtype, device, requires_grad, size and finiteness of a tensor (value stats if asked)."""
    data = t.data
    released = not isinstance(data, torch.Tensor)  # no VJP on its tape saved it (release.Released)
    attrs = {
        "out_shape": tuple(data.shape),
        "dtype": str(data.dtype).replace("torch.", ""),
        "device": str(data.device),
        "requires_grad": bool(t.requires_grad),
        "numel": data.numel(),
        "finite": bool(torch.isfinite(data).all()) if not released and data.is_floating_point() else True,
    }
    if released:
        return {**attrs, "released": True}
    if values and data.numel() and not data.is_complex():
        d = data.double()
        attrs.update(
            value_min=float(d.min()),
            value_max=float(d.max()),
            value_mean=float(d.mean()),
            value_std=float(d.std()) if d.numel() > 1 else 0.0,
        )
    return attrs


def constant_attrs(a: Any) -> dict:
    """The node of a Python number or a raw torch tensor that an op took as an input."""
    if isinstance(a, torch.Tensor):
        name = f"const {tuple(a.shape)}" if a.numel() != 1 else f"{a.item():.4g}"
        return {
            "kind": "constant",
            "op": "",
            "name": name,
            "out_shape": tuple(a.shape),
            "dtype": str(a.dtype).replace("torch.", ""),
            "device": str(a.device),
            "requires_grad": False,
            "numel": a.numel(),
            "finite": bool(torch.isfinite(a).all()) if a.is_floating_point() else True,
        }
    text = f"{a:.4g}" if isinstance(a, float) else repr(a)
    return {
        "kind": "constant",
        "op": "",
        "name": text if len(text) <= 24 else text[:21] + "...",
        "out_shape": (),
        "dtype": type(a).__name__,
        "device": "",
        "requires_grad": False,
        "numel": 1,
        "finite": not isinstance(a, float) or math.isfinite(a),
    }


def module_attrs(scope: Scope | None, index: int | None) -> dict:
    """The ``module`` label and the ``scope`` index of a node recorded in ``scope``."""
    return {"module": "" if scope is None else scope_label(scope), "scope": index}


def scope_label(s: Scope) -> str:
    """'0 (Linear)', a bare path for a plain name scope, the type for a root module."""
    if s.path and s.type_name:
        return f"{s.path} ({s.type_name})"
    return s.path or s.type_name or "(root)"


def site_text(site: Any) -> str:
    """'model.py:12 in forward' (file name only, so that pictures do not depend on the machine)."""
    if site is None or site is NO_USER_FRAME:
        return ""
    code = site[0]
    return f"{os.path.basename(code.co_filename)}:{site_line(site)} in {code.co_name}"


def params_text(params: Mapping[str, Any]) -> str:
    """'dim=1' for the short scalar params of an op; shapes and index objects are left out."""
    parts = []
    for k, v in params.items():
        if k == "shape":
            continue
        if v is None or isinstance(v, (bool, int, float, str)):
            parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
        elif isinstance(v, tuple) and len(v) <= 6 and all(isinstance(i, int) for i in v):
            parts.append(f"{k}={v}")
    return ", ".join(parts)
