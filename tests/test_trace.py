"""`tg.trace`: a replayed step gives the eager step's loss and gradients, and refuses what it cannot replay."""

from __future__ import annotations

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.tracing.traced import TraceError


def seed_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, 25), nn.ReLU(), nn.Linear(25, 25), nn.ReLU(), nn.Linear(25, 2), nn.Tanh()
    )  # fmt: skip


def eager_step(model, loss_fn, x, y):
    with tg.Tape():
        loss = loss_fn(model(x), y)
    loss.backward()
    return loss


def batch(n: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tg.Tensor(torch.rand(n, 2, generator=g)), tg.Tensor(torch.rand(n, 2, generator=g) * 2 - 1)


def test_traced_training_matches_eager_training_step_by_step():
    eager, traced = seed_model(), seed_model()
    loss_fn = nn.MSELoss()
    opt_e, opt_t = nn.SGD(eager.parameters(), lr=0.1), nn.SGD(traced.parameters(), lr=0.1)
    step = tg.trace(lambda x, y: loss_fn(traced(x), y))
    for i in range(6):
        x, y = batch(seed=i)
        le = eager_step(eager, loss_fn, x, y)
        lt = step(x, y)
        assert isinstance(lt, tg.Tensor) and lt.requires_grad
        assert abs(le.item() - lt.item()) <= 1e-6
        for pe, pt in zip(eager.parameters(), traced.parameters()):
            assert pt.grad is not None
            torch.testing.assert_close(pt.grad.data, pe.grad.data, rtol=0, atol=1e-6)
        opt_e.step(), opt_t.step()
        opt_e.zero_grad(), opt_t.zero_grad()
    assert step.traces == 1
    assert "def forward" in step.source() and "Tape" not in step.source()


def test_gradients_accumulate_like_backward_when_not_zeroed():
    eager, traced = seed_model(), seed_model()
    loss_fn = nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(traced(x), y))
    for i in range(3):
        x, y = batch(seed=i)
        eager_step(eager, loss_fn, x, y)
        step(x, y)
    for pe, pt in zip(eager.parameters(), traced.parameters()):
        torch.testing.assert_close(pt.grad.data, pe.grad.data, rtol=0, atol=1e-6)


def test_a_new_input_shape_is_traced_again_and_still_matches():
    eager, traced = seed_model(), seed_model()
    loss_fn = nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(traced(x), y))
    for n in (10, 10, 7, 7, 10):
        x, y = batch(n, seed=n)
        le, lt = eager_step(eager, loss_fn, x, y), step(x, y)
        assert abs(le.item() - lt.item()) <= 1e-6
        for pe, pt in zip(eager.parameters(), traced.parameters()):
            torch.testing.assert_close(pt.grad.data, pe.grad.data, rtol=0, atol=1e-6)
            pe.grad = pt.grad = None
    assert step.traces == 2


def test_value_dependent_control_flow_is_refused():
    w = tg.Tensor(torch.tensor([1.0, -2.0]), requires_grad=True)

    def f(x):
        h = x * w
        return h.sum() if h.sum().item() > 0 else (h * h).sum()

    step = tg.trace(f)
    step(tg.Tensor(torch.tensor([3.0, 1.0])))  # traced: the first branch
    with pytest.raises(TraceError, match="different ops"):
        step(tg.Tensor(torch.tensor([-3.0, 1.0])))  # the other branch


def test_values_computed_outside_tapegrad_ops_are_refused():
    w = tg.Tensor(torch.tensor([1.0, 2.0]), requires_grad=True)
    step = tg.trace(lambda x: (x * w).sum() * float(x.data.sum()))
    step(tg.Tensor(torch.tensor([1.0, 1.0])))
    with pytest.raises(TraceError, match="different output"):
        step(tg.Tensor(torch.tensor([2.0, 5.0])))


def test_a_captured_tensor_that_changes_shape_is_traced_again():
    w = tg.Tensor(torch.ones(3), requires_grad=True)
    step = tg.trace(lambda x: (x * w).sum())
    x = tg.Tensor(torch.tensor([1.0, 2.0, 3.0]))
    step(x), step(x)
    w.data, w.grad = torch.ones(1), None
    step(x)
    assert step.traces == 2
    torch.testing.assert_close(w.grad.data, torch.tensor([6.0]))


def test_inputs_that_require_grad_receive_their_gradient():
    w = tg.Tensor(torch.tensor([2.0, 3.0]), requires_grad=True)
    step = tg.trace(lambda x: (x * x * w).sum())
    for v in ([1.0, 1.0], [1.0, 2.0], [4.0, -1.0]):
        x = tg.Tensor(torch.tensor(v), requires_grad=True)
        step(x)
        torch.testing.assert_close(x.grad.data, 2 * torch.tensor(v) * w.data)


def test_auxiliary_outputs_are_replayed_too():
    w = tg.Tensor(torch.tensor([1.0, -1.0]), requires_grad=True)
    step = tg.trace(lambda x: ((x * w).sum() ** 2, x * w))
    for v in ([1.0, 2.0], [3.0, 1.0], [0.5, 0.5]):
        w.grad = None
        loss, prod = step(tg.Tensor(torch.tensor(v)))
        x = torch.tensor(v)
        torch.testing.assert_close(prod.data, x * w.data)
        torch.testing.assert_close(loss.data, (x * w.data).sum() ** 2)
        torch.testing.assert_close(w.grad.data, 2 * (x * w.data).sum() * x)


def test_inside_an_open_tape_it_runs_eagerly_so_higher_order_works():
    w = tg.Tensor(torch.tensor([0.5, -1.5]), requires_grad=True)
    step = tg.trace(lambda x: ((x * w) ** 3).sum())
    x = tg.Tensor(torch.tensor([1.0, 2.0]))
    step(x), step(x)  # traced and replayed
    w.grad = None
    with tg.Tape() as outer:
        step(x)
        total = w.grad.sum()
    second = outer.gradient(total, w)
    torch.testing.assert_close(second.data, 6 * x.data**3 * w.data)


def test_no_grad_just_evaluates_and_anomaly_mode_keeps_its_checks():
    w = tg.Tensor(torch.tensor([1.0, 2.0]), requires_grad=True)
    step = tg.trace(lambda x: (x * w).log().sum())
    x = tg.Tensor(torch.tensor([1.0, 1.0]))
    step(x), step(x)
    w.grad = None
    with tg.no_grad():
        out = step(x)
    assert w.grad is None and not out.requires_grad
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError):
        step(tg.Tensor(torch.tensor([-1.0, 1.0])))


def test_fn_must_return_the_loss():
    step = tg.trace(lambda x: 3.0)
    with pytest.raises(TraceError, match="must return the loss"):
        step(tg.Tensor(torch.ones(2)))


def test_traced_gradients_equal_eager_in_float64_for_a_mixed_graph():
    torch.manual_seed(1)
    a = tg.Tensor(torch.randn(4, 3, dtype=torch.float64), requires_grad=True)
    b = tg.Tensor(torch.randn(3, dtype=torch.float64), requires_grad=True)

    def f(x):
        h = (x @ a).tanh() + b.sigmoid()
        return (h.exp().mean(dim=0) * b).sum() + tg.logsumexp(h, dim=1).mean()

    step = tg.trace(f)
    for _ in range(3):
        x = tg.Tensor(torch.randn(5, 4, dtype=torch.float64))
        with tg.Tape() as tape:
            loss = f(x)
        ga, gb = tape.gradient(loss, [a, b])
        a.grad = b.grad = None
        lt = step(x)
        assert abs(lt.item() - loss.item()) <= 1e-12
        torch.testing.assert_close(a.grad.data, ga.data, rtol=0, atol=1e-12)
        torch.testing.assert_close(b.grad.data, gb.data, rtol=0, atol=1e-12)


def test_the_fused_mse_loss_primitive_is_right_to_second_order():
    # nn.MSELoss's mean reduction is one record (a speed path the trace replays): check it here.
    torch.manual_seed(2)
    x = tg.Tensor(torch.randn(4, 2, dtype=torch.float64), requires_grad=True)
    y = tg.Tensor(torch.randn(4, 2, dtype=torch.float64), requires_grad=True)
    with tg.Tape() as tape:
        loss = nn.MSELoss()(x.tanh(), y)
    assert [r.primitive.name for r in tape.records] == ["tanh", "mse_loss"]
    assert tg.gradcheck(lambda a, b: nn.MSELoss()(a.tanh(), b), [x, y])
    hessian = tg.hessian(lambda a: nn.MSELoss()(a, y), x)
    torch.testing.assert_close(hessian.data.reshape(8, 8), torch.eye(8, dtype=torch.float64) / 4)
    assert abs(loss.item() - float(((x.data.tanh() - y.data) ** 2).mean())) <= 1e-12


def test_the_batchmean_mse_loss_is_one_record_right_to_second_order():
    # sum / N (the seed reports' loss) is the fused mean rescaled inside the same record
    torch.manual_seed(3)
    x = tg.Tensor(torch.randn(4, 2, dtype=torch.float64), requires_grad=True)
    y = tg.Tensor(torch.randn(4, 2, dtype=torch.float64))
    batchmean = nn.MSELoss(reduction="batchmean")
    with tg.Tape() as tape:
        loss = batchmean(x.tanh(), y)
    assert [r.primitive.name for r in tape.records] == ["tanh", "mse_loss"]
    assert tg.gradcheck(lambda a: batchmean(a.tanh(), y), [x])
    reference = x.data.detach().clone().requires_grad_()
    expected = torch.nn.functional.mse_loss(reference.tanh(), y.data, reduction="sum") / 4
    (grad,) = torch.autograd.grad(expected, reference)
    torch.testing.assert_close(tape.gradient(loss, [x])[0].data, grad, rtol=0, atol=1e-12)
    hessian = tg.hessian(lambda a: batchmean(a, y), x)
    torch.testing.assert_close(hessian.data.reshape(8, 8), torch.eye(8, dtype=torch.float64) / 2)


@pytest.mark.parametrize("executor", ["python", "inductor"])
@pytest.mark.parametrize("generator", [False, True], ids=["torch's generator", "a generator of its own"])
def test_a_step_with_dropout_draws_the_eager_masks_bit_for_bit(executor, generator, quick_inductor):
    def model():
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(7) if generator else None
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3, generator=g), nn.Linear(16, 2)), g

    (eager, gen_e), (traced, gen_t) = model(), model()
    loss_fn = nn.MSELoss()
    opt_e = nn.SGD(eager.parameters(), lr=0.1, momentum=0.9)
    opt_t = nn.SGD(traced.parameters(), lr=0.1, momentum=0.9)
    step = tg.trace(lambda x, y: loss_fn(traced(x), y), optimizer=opt_t, executor=executor)
    data = torch.Generator().manual_seed(1)
    # python: the eager kernels, bit for bit; inductor (folded with SGD) scales alpha= by a multiply: to rounding
    same = torch.equal if executor == "python" else lambda a, b: torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    for i in range(10):  # traced, checked against eager, then replayed
        x, y = tg.Tensor(torch.randn(8, 4, generator=data)), tg.Tensor(torch.randn(8, 2, generator=data))
        torch.manual_seed(100 + i)
        eager_loss = eager_step(eager, loss_fn, x, y)
        opt_e.step(), opt_e.zero_grad()
        torch.manual_seed(100 + i)
        assert same(step(x, y).data, eager_loss.data), f"step {i}"
        assert all(same(p.data, q.data) for p, q in zip(eager.parameters(), traced.parameters())), f"step {i}"
    if generator:
        assert torch.equal(gen_e.get_state(), gen_t.get_state())  # each call drew exactly once
    assert step.traces == 1 and "dropout_mask_2 = " in step.source()


def test_the_traced_graph_is_an_fx_graph_named_by_op_and_module():
    model, loss_fn = seed_model(), nn.MSELoss()
    step = tg.trace(lambda x, y: loss_fn(model(x), y))
    step(*batch())
    gm = step.graph_module()
    names = [n.name for n in gm.graph.nodes]
    assert names[:2] == ["input_0", "input_1"] and "linear_0" in names and "relu_1" in names
    assert "linear_4_vjp1" in names and "tanh_5_vjp0" in names  # the walk's rule calls, by record
    assert [n.meta["tapegrad"] for n in gm.graph.nodes if n.name == "linear_2"] == [("forward", "linear", "2")]
    assert "forward_linear(" in step.source() and "vjp_linear_input1(" in step.source()


def test_the_least_recently_used_signature_is_the_one_dropped():
    w = tg.Tensor(torch.ones(2), requires_grad=True)
    step = tg.trace(lambda x: (x.sum(0) * w).sum(), max_traces=2)
    for n in (1, 2, 1, 3, 1):  # 2 is dropped when 3 comes: 1 was used since
        step(tg.Tensor(torch.ones(n, 2)))
    assert step.traces == 3 and [k[0][0][0] for k in step._entries] == [3, 1]


def test_the_graph_reads_the_forward_residuals_as_an_eager_tape_does():
    # flash attention's row log-sum-exps and layer norm's mean and 1/std come from the forward's node:
    # the backward does not run the forward kernels again
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            calls.append(func._overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    w = tg.Tensor(torch.rand(8) + 0.5, requires_grad=True)
    b = tg.Tensor(torch.randn(8), requires_grad=True)

    def loss(x):
        h = tg.layer_norm(x, (8,), w, b)
        return tg.scaled_dot_product_attention(h, h, h).sum()

    step = tg.trace(loss, executor="python")
    x = tg.Tensor(torch.randn(2, 1, 4, 8))
    calls: list[str] = []
    with Count():  # the tracing call: the eager step on a tape that keeps everything (its rules recompute)
        step(x)
    assert calls.count("_scaled_dot_product_flash_attention_for_cpu") == calls.count("native_layer_norm") == 2
    for _ in range(2):
        step(x)
    want = (w.grad.data / 3).clone()
    calls.clear()
    w.grad = None
    with Count():
        step(x)
    assert calls.count("_scaled_dot_product_flash_attention_for_cpu") == 1
    assert calls.count("native_layer_norm") == 1
    torch.testing.assert_close(w.grad.data, want)


@pytest.mark.parametrize("executor", ["python", "inductor"])
def test_a_param_named_like_a_python_keyword_is_passed_as_one_dict(executor, quick_inductor):
    # generated code cannot say ``lambda=2.0``: the node takes such params as a last positional dict
    def forward(x, **params):
        return x * params["lambda"]

    def vjp(g, out, x, **params):
        return g * params["lambda"]

    scale = tg.primitive("test_keyword_param_scale", forward, [vjp])
    w = tg.Tensor(torch.rand(3), requires_grad=True)
    step = tg.trace(lambda x: scale(x * w, **{"lambda": 2.0}).sum(), executor=executor)
    for _ in range(5):
        w.grad = None
        x = tg.Tensor(torch.rand(3))
        step(x)
        assert torch.equal(w.grad.data, 2.0 * x.data)
    assert "{'lambda': 2.0}" in step.source() and step.traces == 1


def test_a_parameter_rebound_before_the_first_replay_is_checked_runs_the_check():
    # the entry was armed on a rebind while it had no executor yet: the call raised TypeError
    w = tg.Tensor(torch.ones(3), requires_grad=True)
    step = tg.trace(lambda x: (w * x).sum(), executor="python")
    x = tg.Tensor(torch.ones(3))
    step(x)
    w.data, w.grad = torch.full((3,), 2.0), None
    assert step(x).item() == 6.0 and w.grad.data.tolist() == [1.0, 1.0, 1.0]
    assert step.traces == 1 and next(iter(step._entries.values())).verified
