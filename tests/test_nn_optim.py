"""SGD and Adam against torch.optim: 50-step trajectories in float64 end equal to 1e-8."""

import pytest
import torch

import nn
import tapegrad as tg

STEPS = 50


def make_pair(seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    ours = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)


def train_ours(model, opt, steps, start=0):
    loss_fn = nn.MSELoss()
    for s in range(start, start + steps):
        x, y = batch(s)
        with tg.Tape() as tape:
            loss = loss_fn(model(x), y)
        tape.backward(loss)
        opt.step()
        opt.zero_grad()


def train_torch(model, opt, steps):
    loss_fn = torch.nn.MSELoss()
    for s in range(steps):
        x, y = batch(s)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


def max_gap(ours, ref):
    return max((p.data - q.detach()).abs().max().item() for p, q in zip(ours.parameters(), ref.parameters()))


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.899), eps=1e-6)),  # seed 000's best Adam setting
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.02, weight_decay=0.05, amsgrad=True)),
]


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{k}" for n, k in CONFIGS])
def test_trajectory_matches_torch(name, kwargs):
    ours, ref = make_pair()
    start = [p.data.clone() for p in ours.parameters()]
    train_ours(ours, getattr(nn, name)(ours.parameters(), **kwargs), STEPS)
    train_torch(ref, getattr(torch.optim, name)(ref.parameters(), **kwargs), STEPS)
    assert max_gap(ours, ref) < 1e-8
    moved = max((p.data - s).abs().max().item() for p, s in zip(ours.parameters(), start))
    assert moved > 1e-2  # the parameters did travel: the comparison is not vacuous


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_param_groups_match_torch(name):
    ours, ref = make_pair()
    extra = {"momentum": 0.9} if name == "SGD" else {"betas": (0.85, 0.99)}

    def groups(m):
        return [{"params": list(m[0].parameters()), "lr": 0.003}, {"params": list(m[2].parameters()), **extra}]

    opt = getattr(nn, name)(groups(ours), lr=0.05)
    assert opt.param_groups[0]["lr"] == 0.003 and opt.param_groups[1]["lr"] == 0.05
    train_ours(ours, opt, STEPS)
    train_torch(ref, getattr(torch.optim, name)(groups(ref), lr=0.05), STEPS)
    assert max_gap(ours, ref) < 1e-8


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True))])
def test_state_dict_resumes_the_same_trajectory(name, kwargs):
    straight, _ = make_pair()
    train_ours(straight, getattr(nn, name)(straight.parameters(), **kwargs), STEPS)
    first, _ = make_pair()
    opt = getattr(nn, name)(first.parameters(), **kwargs)
    train_ours(first, opt, 20)
    resumed, _ = make_pair()
    resumed.load_state_dict(first.state_dict())
    opt2 = getattr(nn, name)(resumed.parameters(), lr=123.0)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    train_ours(resumed, opt2, STEPS - 20, start=20)
    assert max((p.data - q.data).abs().max().item() for p, q in zip(resumed.parameters(), straight.parameters())) == 0


def test_state_dict_has_torchs_layout():
    ours, ref = make_pair()
    opt = nn.Adam(ours.parameters(), lr=0.01)
    train_ours(ours, opt, 3)
    topt = torch.optim.Adam(ref.parameters(), lr=0.01)
    train_torch(ref, topt, 3)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["param_groups"][0]["params"] == tsd["param_groups"][0]["params"]
    assert sorted(sd["state"][0]) == sorted(tsd["state"][0])
    for key in ("step", "exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(sd["state"][3][key], tsd["state"][3][key], rtol=0, atol=1e-12)


def test_zero_grad_and_validation():
    model = nn.Linear(2, 1)
    opt = nn.SGD(model.parameters(), lr=0.1)
    with tg.Tape() as tape:
        loss = model(torch.ones(1, 2)).sum()
    tape.backward(loss)
    opt.zero_grad(set_to_none=False)
    assert torch.equal(model.weight.grad.data, torch.zeros(1, 2))
    opt.zero_grad()
    assert model.weight.grad is None
    before = model.weight.data.clone()
    opt.step()  # no gradients: nothing moves
    assert torch.equal(model.weight.data, before)
    with pytest.raises(ValueError, match="Nesterov"):
        nn.SGD(model.parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        nn.SGD(model.parameters(), lr=-1)
    with pytest.raises(ValueError, match="beta"):
        nn.Adam(model.parameters(), betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        nn.Adam([])


ADAM_SETTINGS = [
    dict(lr=0.01),
    dict(lr=0.0215, betas=(0.8, 0.9), eps=1e-6),
    dict(lr=0.003, weight_decay=0.1, amsgrad=True),
]


PATHS = [(False, False), (False, True), (True, True)]  # (as captured, torch's foreach) pairs


@pytest.mark.parametrize("captured, foreach", PATHS, ids=["eager-vs-torch-default", "eager-vs-foreach", "as-captured"])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("kwargs", ADAM_SETTINGS)
def test_adam_is_torchs_adam_bit_for_bit_in_float32(kwargs, name, captured, foreach, monkeypatch):
    # eager: the bias corrections are Python floats; as-captured: the ops a graph capture records (the step
    # sizes never read as numbers), run eagerly. torch's default on CPU is its per-tensor loop (foreach=False)
    monkeypatch.setattr(nn.optim.optimizer.capture, "capturing", lambda: captured)
    torch.manual_seed(0)
    ours = [tg.Tensor(torch.randn(s), requires_grad=True) for s in [(25, 2), (25,), (25, 25), (2,)]]
    ref = [torch.nn.Parameter(p.data.clone()) for p in ours]
    opt, topt = getattr(nn, name)(ours, **kwargs), getattr(torch.optim, name)(ref, foreach=foreach, **kwargs)
    for _ in range(600):
        for p, q in zip(ours, ref):
            g = torch.randn(p.data.shape)
            p.grad, q.grad = tg.Tensor(g), g.clone()
        opt.step()
        topt.step()
    assert all(torch.equal(p.data, q.data) for p, q in zip(ours, ref))


class _Ops(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("captured", [False, True], ids=["eager", "as-captured"])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_reads_its_step_counts_as_numbers_only_when_not_captured(name, captured, monkeypatch):
    # eagerly one read per count and float scalars (no tensor op per correction); under a capture no read at
    # all (a read value would be frozen into the graph) but tensor ops on the counts
    monkeypatch.setattr(nn.optim.optimizer.capture, "capturing", lambda: captured)
    params = [tg.Tensor(torch.randn(3, 2), requires_grad=True), tg.Tensor(torch.randn(2), requires_grad=True)]
    opt = getattr(nn, name)(params, lr=0.01)
    for p in params:
        p.grad = tg.Tensor(torch.randn(p.data.shape))
    opt.step()
    with _Ops() as ops:
        opt.step()
    reads, powers = ops.names.count("_local_scalar_dense"), ops.names.count("pow")
    assert (reads, powers) == ((0, 2) if captured else (2, 0))
