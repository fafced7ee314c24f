"""torch functions on tapegrad tensors (`Tensor.__torch_function__`), `tg.multinomial`,
`tg.inference_mode`, `tg.manual_seed`, and torch's edge forms of masked_fill, gather and pooling."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from strategies import F64

import tapegrad as tg
from tapegrad.torch_compat import interop

TOL = dict(rtol=1e-10, atol=1e-10)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# torch calls as a torch user writes them, on two float inputs: each must run tapegrad's op
TORCH_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "sin": lambda x, y: torch.sin(x),
    "softmax": lambda x, y: torch.softmax(x, dim=-1),
    "log_softmax": lambda x, y: torch.log_softmax(x, 1),
    "sum_dim": lambda x, y: torch.sum(x * y, dim=1),
    "matmul": lambda x, y: torch.matmul(x, y.T),
    "cat": lambda x, y: torch.cat([x, y], dim=0),
    "stack": lambda x, y: torch.stack((x, y), 1),
    "where": lambda x, y: torch.where(x > 0, x, y),
    "clamp_alias_clip": lambda x, y: torch.clip(x, -0.5, 0.5),
    "multiply_alias": lambda x, y: torch.multiply(x, y),
    "special_erf": lambda x, y: torch.special.erf(x),
    "torch_left_operand": lambda x, y: y.data * x + 2.0 * y.data - y.data / (x * x + 1),
    "torch_method_on_torch": lambda x, y: y.data.add(x),
    "transpose_reshape": lambda x, y: torch.reshape(torch.transpose(x, 0, 1), (-1,)),
    "maximum": lambda x, y: torch.maximum(x, y),
    "logsumexp": lambda x, y: torch.logsumexp(x, dim=0),
    "tanh_sigmoid": lambda x, y: torch.tanh(x) * torch.sigmoid(y),
}


@pytest.mark.parametrize("name", sorted(TORCH_CALLS))
def test_torch_functions_run_tapegrads_op_recorded_and_match_torch(name: str) -> None:
    call = TORCH_CALLS[name]
    a, b = rand(3, 4), rand(3, 4, seed=1)
    ra, rb = a.clone().requires_grad_(), b.clone().requires_grad_()
    ref = call(ra, rb)
    x, y = tg.Tensor(a.clone(), requires_grad=True), tg.Tensor(b.clone(), requires_grad=True)
    with tg.Tape(persistent=True) as outer:
        with tg.Tape() as tape:
            out = call(x, y)
        assert isinstance(out, tg.Tensor) and len(tape) > 0
        torch.testing.assert_close(out.data, ref.detach(), **TOL)
        g = rand(*ref.shape, seed=2)
        grads = tape.gradient(out, [x, y], grad_output=tg.Tensor(g), allow_unused=True)
        ref_grads = torch.autograd.grad(ref, [ra, rb], g, create_graph=True, allow_unused=True)
        for ours, theirs in zip(grads, ref_grads):
            if theirs is None:
                assert ours is None
            else:
                torch.testing.assert_close(ours.data, theirs.detach(), **TOL)
        total = sum(((gr * gr).sum() for gr in grads if gr is not None), tg.Tensor(torch.zeros((), dtype=F64)))
    ref_total = sum((gr * gr).sum() for gr in ref_grads if gr is not None)
    if isinstance(ref_total, torch.Tensor) and ref_total.requires_grad and total.requires_grad:
        second = outer.gradient(total, [x, y], allow_unused=True)
        ref_second = torch.autograd.grad(ref_total, [ra, rb], allow_unused=True)
        for ours2, theirs2 in zip(second, ref_second):
            expected = torch.zeros_like(a) if theirs2 is None else theirs2
            torch.testing.assert_close(torch.zeros_like(a) if ours2 is None else ours2.data, expected, **TOL)


def test_torch_functions_agree_with_finite_differences() -> None:
    y = tg.Tensor(rand(3, 4, seed=1))
    for name in ("sin", "softmax", "torch_left_operand", "where", "logsumexp"):
        call = TORCH_CALLS[name]
        assert tg.gradcheck(lambda x, call=call: call(x, y), [tg.Tensor(rand(3, 4))])


def test_non_differentiable_torch_functions_return_torchs_results_unrecorded() -> None:
    x = tg.Tensor(rand(3, 4), requires_grad=True)
    with tg.Tape() as tape:
        am = torch.argmax(x, dim=1)
        close = torch.isclose(x, x)
        same = torch.allclose(x, x)
        hot = torch.multinomial(torch.softmax(x, -1).detach(), 2)
        zeros = torch.zeros_like(x)
        nans = torch.isnan(x)
    torch.testing.assert_close(am.data, torch.argmax(x.data, dim=1))
    assert isinstance(am, tg.Tensor) and isinstance(close, tg.Tensor) and bool(close.data.all())
    assert same is True and tuple(hot.shape) == (3, 2) and hot.dtype == torch.int64
    assert isinstance(zeros, tg.Tensor) and not zeros.requires_grad and not bool(nans.data.any())
    assert [r.primitive.name for r in tape.records] == ["softmax"]  # only the differentiable one


def test_a_torch_function_tapegrad_lacks_raises_one_clear_error() -> None:
    x = tg.Tensor(rand(3, 4), requires_grad=True)
    with pytest.raises(TypeError, match=r"^tapegrad has no op for torch\.histc; .*test_interop\.py:\d+"):
        torch.histc(x)
    with pytest.raises(TypeError, match=r"^tapegrad has no op for torch\.special\.i0;"):
        torch.special.i0(x)
    with pytest.raises(TypeError, match=r"^tapegrad's torch\.sum does not take these arguments"):
        torch.sum(x, dim=1, dtype=torch.float32)


def test_ops_added_later_are_found_by_name() -> None:
    class Extra:
        __all__ = ["cummax"]

        @staticmethod
        def cummax(x: Any, dim: int) -> str:
            return f"ours {dim}"

    saved = list(interop._NAMESPACES["torch"])
    interop.register_namespace("torch", Extra)  # type: ignore[arg-type]
    try:
        assert torch.cummax(tg.Tensor(rand(3)), 0) == "ours 0"
    finally:
        interop._NAMESPACES["torch"][:] = saved
        interop._CACHE.clear()


def test_multinomial_and_manual_seed_follow_torch() -> None:
    p = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], dtype=F64)
    tg.manual_seed(5)
    ours = tg.multinomial(tg.Tensor(p), 4, replacement=True)
    torch.manual_seed(5)
    theirs = torch.multinomial(p, 4, replacement=True)
    assert isinstance(ours, tg.Tensor) and torch.equal(ours.data, theirs)
    tg.manual_seed(5)
    assert torch.equal(torch.multinomial(tg.Tensor(p), 4, True).data, theirs)
    with pytest.raises(tg.ShapeError, match=r"multinomial: cannot draw 5 samples \(replacement=False\)"):
        tg.multinomial(p, 5)


def test_inference_mode_is_no_grad_as_context_and_decorator() -> None:
    x = tg.Tensor(rand(3), requires_grad=True)

    @tg.inference_mode
    def bare() -> bool:
        return (x * 2).requires_grad

    @tg.inference_mode()
    def called() -> bool:
        return (x * 2).requires_grad

    with tg.Tape() as tape:
        with tg.inference_mode():
            assert not (x * 2).requires_grad
        assert not bare() and not called()
        with tg.inference_mode(False):
            assert (x * 2).requires_grad
        assert (x * 2).requires_grad
    assert len(tape) == 2


def test_masked_fill_mask_broadcasting_the_input_to_a_larger_shape() -> None:
    a = rand(3)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    ra = a.clone().requires_grad_()
    ref = torch.masked_fill(ra, mask, 0.5)
    x = tg.Tensor(a.clone(), requires_grad=True)
    with tg.Tape() as tape:
        out = tg.masked_fill(x, mask, 0.5)
    torch.testing.assert_close(out.data, ref.detach())
    g = rand(2, 3, seed=1)
    torch.testing.assert_close(tape.gradient(out, x, tg.Tensor(g)).data, torch.autograd.grad(ref, ra, g)[0])
    assert tg.gradcheck(lambda t: t.masked_fill(mask, -1.0), [tg.Tensor(a)])


def test_gather_on_zero_dimensional_inputs() -> None:
    a = torch.tensor(1.5, dtype=F64)
    ra = a.clone().requires_grad_()
    ref = torch.gather(ra, 0, torch.tensor(0))
    x = tg.Tensor(a.clone(), requires_grad=True)
    with tg.Tape() as tape:
        out = torch.gather(x, 0, torch.tensor(0)) * 3.0
    torch.testing.assert_close(out.data, ref.detach() * 3.0)
    torch.testing.assert_close(tape.gradient(out, x).data, torch.autograd.grad(ref * 3.0, ra)[0])
    assert tg.gradcheck(lambda t: tg.gather(t, 0, torch.tensor(0)) ** 2, [tg.Tensor(a)])


@pytest.mark.parametrize(
    "call",
    [
        lambda F, x, w: F.conv2d(x, w, stride=(1,), padding=(1,), dilation=(1,)),
        lambda F, x, w: F.conv2d(x, w, padding="same"),
        lambda F, x, w: F.conv2d(x, w[..., :2, :], padding="same", dilation=(2, 1)),
        lambda F, x, w: F.conv2d(x, w, padding="valid"),
        lambda F, x, w: F.max_pool2d(x, (2,), (1,), (1,), (1,)),
        lambda F, x, w: F.avg_pool2d(x, (3,), stride=(2,), padding=(1,)),
    ],
)
def test_convolution_and_pooling_take_every_argument_form_torch_takes(call: Callable[..., Any]) -> None:
    from tapegrad.nn import functional as F

    a, w = rand(1, 2, 5, 6), rand(3, 2, 4, 4, seed=1)
    ra, rw = a.clone().requires_grad_(), w.clone().requires_grad_()
    ref = call(torch.nn.functional, ra, rw)
    x, v = tg.Tensor(a.clone(), requires_grad=True), tg.Tensor(w.clone(), requires_grad=True)
    with tg.Tape() as tape:
        out = call(F, x, v)
    torch.testing.assert_close(out.data, ref.detach(), **TOL)
    g = rand(*ref.shape, seed=2)
    grads = tape.gradient(out, [x, v], tg.Tensor(g), allow_unused=True)
    for ours, theirs in zip(grads, torch.autograd.grad(ref, [ra, rw], g, allow_unused=True)):
        assert (ours is None) == (theirs is None)
        if theirs is not None:
            torch.testing.assert_close(ours.data, theirs, **TOL)


def test_without_tapegrad_nn_the_error_says_to_import_it() -> None:
    code = (
        "import torch, tapegrad as tg\n"
        "x = tg.tensor([[1.0, 2.0]])\n"
        "print(type(torch.nn.functional.relu(x)).__name__)\n"  # an op of tapegrad's own
        "try:\n"
        "    torch.nn.functional.pad(x, (1, 1))\n"
        "except TypeError as err:\n"
        "    print(err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == "Tensor"
    assert lines[1].startswith("tapegrad has no op for F.pad; import tapegrad.nn first")


def test_a_name_that_means_something_else_in_the_other_namespace_is_not_borrowed() -> None:
    import tapegrad.nn  # noqa: F401  (registers nn.functional)

    x = tg.Tensor(rand(1, 2, 4, 4), requires_grad=True)
    with pytest.raises(TypeError, match=r"^tapegrad has no op for F\.unfold;"):
        torch.nn.functional.unfold(x, 2)  # im2col, not Tensor.unfold's windows
    target = torch.tensor([1.0, -1.0])
    with pytest.raises(TypeError, match=r"^tapegrad has no op for torch\.margin_ranking_loss;"):
        torch.margin_ranking_loss(x[0, 0, 0, :2], x[0, 0, 1, :2], target, 0.0, 1)  # an int reduction
    torch.testing.assert_close(torch.conv1d(x[0], x[0, :, :, :2]).data, torch.conv1d(x.data[0], x.data[0, :, :, :2]))


def test_torch_embedding_takes_the_weight_first() -> None:
    import tapegrad.nn  # noqa: F401  (registers nn.functional)

    w0 = rand(5, 3)
    idx = torch.tensor([[0, 4], [2, 2]])
    rw = w0.clone().requires_grad_()
    ref = torch.embedding(rw, idx, 2)
    w = tg.Tensor(w0.clone(), requires_grad=True)
    with tg.Tape() as tape:
        out = torch.embedding(w, idx, 2)
    torch.testing.assert_close(out.data, ref.detach())
    g = rand(2, 2, 3, seed=1)
    torch.testing.assert_close(tape.gradient(out, w, tg.Tensor(g)).data, torch.autograd.grad(ref, rw, g)[0])
