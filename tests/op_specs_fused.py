"""Input specs for the fused layer primitives (layer_norm, cross_entropy, embedding, attention, ...).

Imported by ``op_specs`` (which owns ``SPECS``); the same rules hold: float tensors in ``args`` are
the differentiable inputs, anything else is a constant.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st
from op_specs import REFERENCES, Case, spec
from strategies import floats, small_shapes


@spec("layer_norm")  # spread-out values: the variance stays well away from 0
def _layer_norm(draw):
    shape = draw(small_shapes(min_dims=1))
    n = draw(st.integers(1, len(shape)))
    normalized = list(shape[len(shape) - n :])
    if all(s == 1 for s in normalized):  # a single value has no spread: normalise more of it
        shape, normalized = (*shape[: len(shape) - n], 3), [3]
    x = draw(floats(shape, -2.0, 2.0)) + torch.arange(torch.Size(shape).numel(), dtype=torch.float64).reshape(shape)
    w = draw(st.one_of(st.none(), floats(normalized, 0.5, 1.5)))
    # torch's own double backward fails for a bias without a weight: first order covers that case
    b = None if w is None else draw(st.one_of(st.none(), floats(normalized)))
    return Case((x, w, b), {"normalized_shape": normalized, "eps": draw(st.sampled_from([1e-5, 0.1]))})


@spec("cross_entropy")  # class indices (some ignored, never all) or class probabilities
def _cross_entropy(draw):
    lead = draw(st.sampled_from([(), (2,), (3,), (2, 2)]))
    classes = draw(st.integers(2, 4))
    shape = (lead[0], classes, *lead[1:]) if lead else (classes,)
    x = draw(floats(shape, -3.0, 3.0))
    params = {
        "weight": draw(st.one_of(st.none(), floats((classes,), 0.5, 1.5))),
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.0, 0.2])),
        "ignore_index": -100,
    }
    if draw(st.booleans()):
        return Case((x, draw(floats(shape, 0.0, 1.0))), params)
    target_shape = (lead[0], *lead[1:]) if lead else ()
    n = torch.Size(target_shape).numel()
    labels = draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))
    target = torch.tensor(labels, dtype=torch.long).reshape(target_shape)
    if n > 1 and draw(st.booleans()):  # one ignored position (the first keeps a counted one)
        params["ignore_index"] = int(target.reshape(-1)[-1])
        target.reshape(-1)[-1] = params["ignore_index"]
        target.reshape(-1)[0] = (params["ignore_index"] + 1) % classes
    return Case((x, target), params)


@st.composite
def _lookup(draw):
    """(indices with repeats, num_weights, params) for embedding and embedding_backward."""
    num = draw(st.integers(2, 4))
    shape = draw(small_shapes(min_dims=1, max_dims=2))
    n = torch.Size(shape).numel()
    indices = torch.tensor(draw(st.lists(st.integers(0, num - 1), min_size=n, max_size=n))).reshape(shape)
    params = {}
    if draw(st.booleans()):
        params["padding_idx"] = draw(st.integers(0, num - 1))
    if draw(st.booleans()):
        params["scale_grad_by_freq"] = True
    return indices, num, params


@spec("embedding")  # padding_idx and scale_grad_by_freq are not derivatives: test_fused_ops checks them
def _embedding(draw):
    indices, num, _ = draw(_lookup())
    return Case((indices, draw(floats((num, draw(st.integers(1, 3)))))))


@spec("embedding_backward")
def _embedding_backward(draw):
    indices, num, params = draw(_lookup())
    # torch's own double backward ignores scale_grad_by_freq (finite differences agree with ours):
    # test_fused_ops checks that case against finite differences alone
    params.pop("scale_grad_by_freq", None)
    g = draw(floats((*indices.shape, draw(st.integers(1, 3)))))
    params.setdefault("padding_idx", -1)
    return Case((g, indices), {"num_weights": num, **params})


@spec("scaled_dot_product_attention")  # (N, L, E) or (N, H, L, E); a float bias, the causal mask, a scale
def _attention(draw):
    lead = draw(st.sampled_from([(1,), (2,), (1, 2)]))
    length, source, features = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    q = draw(floats((*lead, length, features)))
    k, v = draw(floats((*lead, source, features))), draw(floats((*lead, source, features)))
    params: dict = {}
    mode = draw(st.sampled_from(["plain", "causal", "bias"]))
    if mode == "causal":
        params["is_causal"] = True
    if mode == "bias":
        params["attn_mask"] = draw(floats(draw(st.sampled_from([(length, source), (*lead, length, source)]))))
    if draw(st.booleans()):
        params["scale"] = draw(st.sampled_from([0.5, 1.5]))
    return Case((q, k, v), params)


def attention_in_torch(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """softmax(q k^T * scale + bias) v in plain torch ops (torch cannot differentiate its flash kernel twice)."""
    scores = (q @ k.mT) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        above = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).triu(1)
        scores = scores.masked_fill(above, -math.inf)
    if attn_mask is not None:
        scores = scores + attn_mask
    return scores.softmax(-1) @ v


REFERENCES["scaled_dot_product_attention"] = attention_in_torch


@spec("gru_recurrence")  # a sequence (T, N, 3H) or one step (N, 3H); either direction; with or without b_hh
def _gru_recurrence(draw):
    steps, batch, size = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    gi = draw(floats(draw(st.sampled_from([(steps, batch, 3 * size), (batch, 3 * size)])), -1.5, 1.5))
    h0 = draw(floats((batch, size), -1.0, 1.0))
    w = draw(floats((3 * size, size), -1.0, 1.0))
    b = draw(st.one_of(st.none(), floats((3 * size,), -1.0, 1.0)))
    return Case((gi, h0, w, b), {"reverse": draw(st.booleans())})


@spec("lstm_recurrence")  # a sequence (T, N, 4H) or one step (N, 4H); either direction; with or without b_hh, w_hr
def _lstm_recurrence(draw):
    steps, batch, size = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    w_hr = draw(st.one_of(st.none(), floats((draw(st.integers(1, 2)), size), -1.0, 1.0)))  # torch's proj_size
    width = size if w_hr is None else w_hr.shape[0]
    gi = draw(floats(draw(st.sampled_from([(steps, batch, 4 * size), (batch, 4 * size)])), -1.5, 1.5))
    h0, c0 = draw(floats((batch, width), -1.0, 1.0)), draw(floats((batch, size), -1.0, 1.0))
    w = draw(floats((4 * size, width), -1.0, 1.0))
    b = draw(st.one_of(st.none(), floats((4 * size,), -1.0, 1.0)))
    return Case((gi, h0, c0, w, b, w_hr), {"reverse": draw(st.booleans())})


@spec("lstm_layer")  # float64: the step loop (float32 runs oneDNN's kernel: tests/test_lstm_layer.py)
def _lstm_layer(draw):
    steps, batch, size, width = (draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2)),
                                 draw(st.integers(1, 2)))  # fmt: skip
    batch_first = draw(st.booleans())  # x (N, T, I), the output (N, T + 1, H)
    x = draw(floats((batch, steps, width) if batch_first else (steps, batch, width), -1.5, 1.5))
    w_ih, w_hh = draw(floats((4 * size, width), -1.0, 1.0)), draw(floats((4 * size, size), -1.0, 1.0))
    b_ih, b_hh = (draw(st.one_of(st.none(), floats((4 * size,), -1.0, 1.0))) for _ in range(2))
    h0, c0 = draw(floats((batch, size), -1.0, 1.0)), draw(floats((batch, size), -1.0, 1.0))
    return Case((x, w_ih, w_hh, b_ih, b_hh, h0, c0), {"reverse": draw(st.booleans()), "batch_first": batch_first})


@spec("rnn_recurrence")  # tanh only: ReLU's kink at 0 (hypothesis likes 0) is checked by nn.RNN's parity tests
def _rnn_recurrence(draw):
    steps, batch, size = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    gi = draw(floats(draw(st.sampled_from([(steps, batch, size), (batch, size)])), -1.5, 1.5))
    h0 = draw(floats((batch, size), -1.0, 1.0))
    w = draw(floats((size, size), -1.0, 1.0))
    b = draw(st.one_of(st.none(), floats((size,), -1.0, 1.0)))
    return Case((gi, h0, w, b), {"reverse": draw(st.booleans())})
