"""A one-shot backward frees as it goes: saved tensors and intermediate gradients die mid-walk."""

from __future__ import annotations

import weakref

import torch

import tapegrad as tg

gradients_seen: list[weakref.ref] = []  # the upstream gradients the probes received
forward_values: list[weakref.ref] = []  # the outputs tanh saved for the backward pass
alive_at_bottom: list[tuple[int, int]] = []


def _probe_vjp(g, out, x, bottom=False):
    if bottom:  # the last rule the walk runs: how much of the chain above is still held?
        alive_at_bottom.append(
            (sum(r() is not None for r in gradients_seen), sum(r() is not None for r in forward_values))
        )
    else:
        gradients_seen.append(weakref.ref(g))
    return g * 1.0


# the identity, with a VJP that watches the walk
probe = tg.primitive("test_walk_probe", lambda x, bottom=False: x.clone(), [_probe_vjp], saves=())


def chain(x: tg.Tensor, n: int) -> tg.Tensor:
    gradients_seen.clear()
    forward_values.clear()
    alive_at_bottom.clear()
    h = probe(x, bottom=True)
    for _ in range(n):
        t = h.tanh()  # tanh saves its output: kept until the walk replays tanh's record
        forward_values.append(weakref.ref(t.data))
        h = probe(t)
    return h.sum()


def test_one_shot_walk_frees_saved_tensors_and_gradients_as_it_goes():
    x = tg.tensor(torch.randn(256, dtype=torch.float64), requires_grad=True)
    with tg.Tape():
        loss = chain(x, 40)
    assert all(r() is not None for r in forward_values)  # kept for the backward pass
    loss.backward()
    assert len(gradients_seen) == 40
    assert alive_at_bottom == [(0, 0)]  # nothing from the chain above outlived its use
    ref = x.data.clone().requires_grad_()
    z = ref
    for _ in range(40):
        z = torch.tanh(z)
    z.sum().backward()
    torch.testing.assert_close(x.grad.data, ref.grad)


def test_a_persistent_tape_keeps_its_records():
    x = tg.tensor(torch.randn(8, dtype=torch.float64), requires_grad=True)
    with tg.Tape(persistent=True) as tape:
        loss = chain(x, 5)
    first = tape.gradient(loss, x)
    assert alive_at_bottom == [(0, 5)]  # the gradients went; the saved outputs stay for the next replay
    assert len(tape) == 1 + 5 * 2 + 1
    torch.testing.assert_close(tape.gradient(loss, x).data, first.data)
