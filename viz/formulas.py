"""Each VJP rule as the formula a learner writes, for `viz.explain` and ``tapegrad graph --explain``.

A rule's code (``g.sum(0) if g.ndim == 2 ...``, ``_linear_weight``) shows how it is computed;
the formula says what it computes: ``dL/dweight = gᵀ x``. The formulas use the names of the
rule's arguments, which the explanation's ``with`` line binds (``g = dL/dv2, x = v1, weight =
2.weight``): ``g`` is the gradient arriving at the output ``out``, ``⊙`` multiplies elementwise,
``ᵀ`` transposes, ``1[x>0]`` is 1 where the condition holds and 0 elsewhere, and ``unbroadcast``
sums a gradient over the dimensions broadcasting added. An op without an entry is explained by
its rule's code (`viz.rules.rule_text`).
"""

from __future__ import annotations

__all__ = ["FORMULAS", "formula"]

_UNARY = {
    "neg": "-g",
    "exp": "g ⊙ out",
    "log": "g / x",
    "sqrt": "g / (2 out)",
    "abs": "g ⊙ sign(x)",
    "tanh": "g ⊙ (1 - out²)",
    "sigmoid": "g ⊙ out ⊙ (1 - out)",
    "relu": "g ⊙ 1[x>0]",
    "sin": "g ⊙ cos(x)",
    "cos": "-g ⊙ sin(x)",
    "log1p": "g / (1 + x)",
    "expm1": "g ⊙ (out + 1)",
    "erf": "g ⊙ 2/√π exp(-x²)",
    "leaky_relu": "g ⊙ (1[x>0] + negative_slope 1[x≤0])",
    "softplus": "g ⊙ sigmoid(beta x)",
    "gelu": "g ⊙ (Φ(x) + x φ(x))",
    "clamp": "g ⊙ 1[min ≤ x ≤ max]",
    "dropout": "g ⊙ mask (the kept elements, scaled by 1/(1-p))",
    "softmax": "out ⊙ (g - Σ_dim g ⊙ out)",
    "log_softmax": "g - softmax(x) ⊙ Σ_dim g",
    "logsumexp": "g ⊙ softmax(x) along dim",
    "sum": "g broadcast back to the shape of x",
    "mean": "g / n, broadcast back to the shape of x (n elements averaged)",
    "max": "g at the position of the maximum, 0 elsewhere",
    "min": "g at the position of the minimum, 0 elsewhere",
    "max_dim": "g at the position of each maximum along dim, 0 elsewhere",
    "min_dim": "g at the position of each minimum along dim, 0 elsewhere",
    "var": "g ⊙ 2 (x - mean(x)) / (n - correction)",
    "std": "g ⊙ (x - mean(x)) / ((n - correction) out)",
    "norm": "g ⊙ x / out (p = 2)",
    "reshape": "g reshaped to the shape of x",
    "permute": "g with the dimensions permuted back",
    "transpose": "gᵀ (dim0 and dim1 swapped back)",
    "broadcast_to": "g summed over the broadcast dimensions (unbroadcast)",
    "sum_to": "g broadcast back to the shape of x",
    "cast": "g cast back to the dtype of x",
    "index": "g scattered into zeros shaped like x at idx",
    "gather": "g scattered into zeros shaped like x at index",
    "cat": "g split back into the pieces xs",
    "stack": "g unstacked into the pieces xs",
    "max_pool2d": "g routed to the position of each window's maximum",
    "avg_pool2d": "g spread evenly over each window",
    "tan": "g ⊙ (1 + out²)",
    "sinh": "g ⊙ cosh(x)",
    "cosh": "g ⊙ sinh(x)",
    "asin": "g / √(1 - x²)",
    "acos": "-g / √(1 - x²)",
    "atan": "g / (1 + x²)",
    "asinh": "g / √(x² + 1)",
    "acosh": "g / √(x² - 1)",
    "atanh": "g / (1 - x²)",
    "rsqrt": "-g ⊙ out³ / 2",
    "log2": "g / (x ln 2)",
    "log10": "g / (x ln 10)",
    "floor": "0 (piecewise constant)",
    "ceil": "0 (piecewise constant)",
    "round": "0 (piecewise constant)",
    "trunc": "0 (piecewise constant)",
    "sign": "0 (piecewise constant)",
    "contiguous": "g",
    "flip": "g flipped back",
    "roll": "g rolled back",
    "tril": "tril(g)",
    "triu": "triu(g)",
    "cumsum": "the reversed cumulative sum of g along dim",
    "layer_norm": "(g ⊙ w - mean(g ⊙ w) - x̂ mean(g ⊙ w ⊙ x̂)) / σ over the normalised dimensions",
    "batch_norm": "(g ⊙ weight - mean(g ⊙ weight) - x̂ mean(g ⊙ weight ⊙ x̂)) / σ over the batch (training)",
    "embedding": "g summed into the rows of weight that indices picked",
    "cross_entropy": "g ⊙ (softmax(x) - onehot(target)) / n (class weights and label smoothing scale it)",
}

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
# linear_chain(x, W₁, b₁, ..., Wₙ, bₙ): gₖ is the gradient of layer k's pre-activation, aₖ its output (a₀ = x)
_CHAIN = ("g₁ W₁, where gₙ = g ⊙ act'ₙ and gₖ = (gₖ₊₁ Wₖ₊₁) ⊙ act'ₖ (act' read from the layer's output)",) + tuple(
    text.translate(_SUB) for k in range(1, 65) for text in (f"g{k}ᵀ a{k - 1}", f"Σ_batch g{k}")
)

FORMULAS: dict[str, tuple[str, ...]] = {
    **{name: (text,) for name, text in _UNARY.items()},
    "add": ("unbroadcast(g)", "unbroadcast(g)"),
    "sub": ("unbroadcast(g)", "-unbroadcast(g)"),
    "mul": ("unbroadcast(g ⊙ y)", "unbroadcast(g ⊙ x)"),
    "div": ("unbroadcast(g / y)", "-unbroadcast(g ⊙ x / y²)"),
    "pow": ("unbroadcast(g ⊙ y x^(y-1))", "unbroadcast(g ⊙ out ⊙ log x)"),
    "maximum": ("g ⊙ 1[x>y] (ties: half)", "g ⊙ 1[y>x] (ties: half)"),
    "minimum": ("g ⊙ 1[x<y] (ties: half)", "g ⊙ 1[y<x] (ties: half)"),
    "matmul": ("g yᵀ", "xᵀ g"),
    "linear": ("g weight", "gᵀ x", "Σ_batch g"),
    "linear_chain": _CHAIN,
    "conv2d": ("conv_transpose2d(g, w)", "conv2d(xᵀ, gᵀ): each weight's correlation of x with g", "Σ_batch,h,w g"),
    "where": ("0", "g ⊙ 1[condition]", "g ⊙ 1[not condition]"),
    "masked_fill": ("g ⊙ 1[not mask]", "Σ g ⊙ 1[mask]"),
    "mse_loss": ("g ⊙ 2 (x - y) / n", "g ⊙ 2 (y - x) / n"),
    "sub_signed": ("g (the labels y as ±1 rows get none)",),
    "tanh_backward": ("gg ⊙ (1 - out²)", "-2 gg ⊙ g ⊙ out"),
    "sigmoid_backward": ("gg ⊙ out ⊙ (1 - out)", "gg ⊙ g ⊙ (1 - 2 out)"),
}
"""Per primitive name, the formula of the gradient sent to each input, in input order."""


def formula(op: str, position: int) -> str:
    """The formula of ``op``'s gradient for its input at ``position`` ('' when there is none)."""
    texts = FORMULAS.get(op, ())
    return texts[position] if position < len(texts) else ""
