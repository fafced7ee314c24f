"""Helpers for comparing a tapegrad layer with the torch.nn layer of the same name, in float64."""

from __future__ import annotations

import torch
from strategies import F64

import nn
import tapegrad as tg

TOL = dict(rtol=1e-9, atol=1e-10)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    """A float64 N(0, 1) tensor from its own generator."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def ported(ours: nn.Module, ref: torch.nn.Module) -> nn.Module:
    """``ours`` with ``ref``'s weights and buffers: torch's state_dict loads strictly into ours, and
    ours back into a torch module, with the same keys in the same order."""
    ref.double()
    ours.double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    return ours


def assert_parity(
    ours: nn.Module, ref: torch.nn.Module, *inputs: torch.Tensor, seed: int = 0, out_index=None, tol=None
):
    """Outputs and the gradients of every float input and parameter agree with torch's; returns ours.

    ``out_index`` picks one output of a module that returns a tuple (the gradient flows from it);
    ``tol`` replaces the default tolerances.
    """
    tol = TOL if tol is None else tol
    xs = [tg.Tensor(x.clone(), requires_grad=x.is_floating_point()) for x in inputs]
    params = list(ours.parameters())
    with tg.Tape() as tape:
        out = ours(*xs)
        if out_index is not None:
            out = out[out_index]
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    float_xs = [x for x in xs if x.requires_grad]
    grads = tape.gradient(out, float_xs + params, grad_output=tg.Tensor(g), allow_unused=True)
    refs = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    ref_out = ref(*refs)
    if out_index is not None:
        ref_out = ref_out[out_index]
    torch.testing.assert_close(out.data, ref_out.detach(), **tol)
    ref_sources = [r for r in refs if r.requires_grad] + list(ref.parameters())
    ref_grads = torch.autograd.grad(ref_out, ref_sources, g, allow_unused=True)
    assert len(grads) == len(ref_grads)
    for ours_g, ref_g, src in zip(grads, ref_grads, ref_sources):
        ours_g = torch.zeros_like(src) if ours_g is None else ours_g.data
        ref_g = torch.zeros_like(src) if ref_g is None else ref_g
        torch.testing.assert_close(ours_g, ref_g, **tol)
    return out


class Picked(nn.Module):
    """One tensor of a module's nested outputs (so the parity helper can pull a gradient from it)."""

    def __init__(self, inner, pick):
        super().__init__()
        object.__setattr__(self, "inner", inner)
        self.pick = pick

    def forward(self, *args):
        return self.pick(self.inner(*args))

    def parameters(self):
        return self.inner.parameters()

    __call__ = forward
