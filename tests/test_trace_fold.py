"""The optimizer folded into a compiled step: its first replay is checked against the optimizer's own
step on the compiled gradients, so a compiler's rounding of a gradient that is zero but for rounding
(which Adam turns into a whole step) is not mistaken for a frozen value."""

from __future__ import annotations

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.tracing import replay_inductor

NOISE = {"value": 0.0}  # what the rule below adds to its gradient: read when the rule runs


def _noisy_vjp(g, out, b):
    return g * 0 + NOISE["value"]  # zero eagerly; a graph traced while it is nonzero keeps that value


_noisy = tg.primitive("test_noisy_zero_gradient", lambda b: b * 0, [_noisy_vjp])


COMPILE = replay_inductor.compile_inductor


def _training(noise_at_compile: float, monkeypatch):
    def compile_noisy(fn, inputs, kept):  # the graph is traced while the rule adds the noise
        NOISE["value"] = noise_at_compile
        try:
            return COMPILE(fn, inputs, kept)
        finally:
            NOISE["value"] = 0.0

    monkeypatch.setattr(replay_inductor, "compile_inductor", compile_noisy)
    torch.manual_seed(0)
    w = tg.Tensor(torch.randn(3), requires_grad=True)
    b = tg.Tensor(torch.zeros(3), requires_grad=True)
    opt = nn.AdamW([w, b], lr=0.01, eps=1e-12)
    step = tg.trace(lambda x: (x * w).sum() ** 2 + _noisy(b).sum(), optimizer=opt, executor="inductor")
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        step(tg.Tensor(torch.randn(3, generator=g)))
    (entry,) = step._entries.values()
    return entry, w, b


def test_a_rounding_level_gradient_difference_keeps_the_update_folded(monkeypatch, quick_inductor):
    # the compiled graph's gradient of b is 1e-13 where the eager one is 0: Adam (eps 1e-12) moves b by
    # a hundred times the check's tolerance where the eager step would not move it at all
    fast, _, b = _training(1e-13, monkeypatch)
    assert fast.fold and fast.checked  # checked on its own gradients: the update is the optimizer's
    assert b.data.abs().min() > 1e-4
    exact, _, b0 = _training(0.0, monkeypatch)
    assert exact.fold and exact.checked and torch.equal(b0.data, torch.zeros(3))


def test_a_folded_gradient_far_from_the_eager_one_is_still_refused(monkeypatch, quick_inductor):
    with pytest.warns(RuntimeWarning, match="differs from the eager step on its first replay"):
        fast, w, b = _training(1e-3, monkeypatch)  # beyond rounding: the graph froze a value
    # folded: refused on its first replay; unfolded (traced with the noise too): refused, the Python graph runs
    assert not fast.fold and fast.refused
    assert torch.equal(b.data, torch.zeros(3))
