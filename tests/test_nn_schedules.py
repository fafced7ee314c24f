"""AdamW, RMSprop, SGD's nesterov, gradient clipping and the learning-rate schedules against torch."""

from __future__ import annotations

import math

import pytest
import torch
from strategies import F64

import nn
import tapegrad as tg


def twin_params(seed: int = 0) -> tuple[list[tg.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    datas = [torch.randn(3, 4, generator=gen, dtype=F64), torch.randn(4, generator=gen, dtype=F64)]
    return [tg.Tensor(d.clone(), requires_grad=True) for d in datas], [d.clone().requires_grad_() for d in datas]


def run_steps(make_ours, make_ref, steps: int = 6) -> None:
    """The same gradients fed to both optimizers for ``steps`` steps give the same parameters and state."""
    ours_p, ref_p = twin_params()
    ours, ref = make_ours(ours_p), make_ref(ref_p)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for a, b in zip(ours_p, ref_p):
            g = torch.randn(a.shape, generator=gen, dtype=F64)
            a.grad = tg.Tensor(g.clone())
            b.grad = g.clone()
        ours.step()
        ref.step()
    for a, b in zip(ours_p, ref_p):
        torch.testing.assert_close(a.data, b.detach(), rtol=1e-12, atol=1e-12)
    for a, b in zip(ours_p, ref_p):
        theirs = ref.state[b]
        for key, value in ours.state[a].items():
            value = torch.as_tensor(value)
            torch.testing.assert_close(value, torch.as_tensor(theirs[key]).to(value.dtype))


OPTIMIZERS = {
    "AdamW": (lambda p: nn.AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
    "AdamW amsgrad": (
        lambda p: nn.AdamW(p, lr=0.02, weight_decay=0.1, amsgrad=True),
        lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.1, amsgrad=True),
    ),
    "RMSprop": (lambda p: nn.RMSprop(p, lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "RMSprop centered momentum decay": (
        lambda p: nn.RMSprop(p, lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.8, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.8, centered=True),
    ),
    "RMSprop maximize": (
        lambda p: nn.RMSprop(p, lr=0.01, maximize=True),
        lambda p: torch.optim.RMSprop(p, lr=0.01, maximize=True),
    ),
    "SGD nesterov": (
        lambda p: nn.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    ),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_torch(name):
    run_steps(*OPTIMIZERS[name])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: nn.AdamW(p, lr=-1.0), "invalid learning rate"),
        (lambda p: nn.AdamW(p, betas=(0.9, 1.0)), "invalid beta parameter at index 1"),
        (lambda p: nn.AdamW(p, weight_decay=-0.1), "invalid weight_decay"),
        (lambda p: nn.RMSprop(p, alpha=-0.5), "invalid alpha"),
        (lambda p: nn.RMSprop(p, momentum=-0.5), "invalid momentum"),
        (lambda p: nn.RMSprop(p, eps=-1.0), "invalid epsilon"),
        (lambda p: nn.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires a momentum"),
    ],
)
def test_optimizer_arguments_are_checked_like_torch(make, message):
    with pytest.raises(ValueError, match=message):
        make(twin_params()[0])


def test_adamw_state_dict_round_trip_continues_identically():
    a, _ = twin_params()
    b, _ = twin_params()
    first, second = nn.AdamW(a, lr=0.05), nn.AdamW(b, lr=0.05)
    for p in a + b:
        p.grad = tg.Tensor(torch.ones_like(p.data))
    first.step()
    second.step()
    second.load_state_dict(first.state_dict())
    first.step()
    second.step()
    for x, y in zip(a, b):
        assert torch.equal(x.data, y.data)


# --- gradient clipping ---------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, ref = twin_params()
    gen = torch.Generator().manual_seed(2)
    for a, b in zip(ours, ref):
        g = torch.randn(a.shape, generator=gen, dtype=F64)
        a.grad, b.grad = tg.Tensor(g.clone()), g.clone()
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    ref_total = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type)
    torch.testing.assert_close(total, ref_total)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.grad.data, b.grad)


def test_clip_grad_value_and_nonfinite_norms():
    ours, ref = twin_params()
    for a, b in zip(ours, ref):
        g = torch.linspace(-3, 3, a.numel(), dtype=F64).reshape(a.shape)
        a.grad, b.grad = tg.Tensor(g.clone()), g.clone()
    nn.utils.clip_grad_value_(ours, 1.5)
    torch.nn.utils.clip_grad_value_(ref, 1.5)
    for a, b in zip(ours, ref):
        assert torch.equal(a.grad.data, b.grad)
    ours[0].grad.data[0, 0] = math.inf
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)


# --- schedules ------------------------------------------------------------------------------------------
SCHEDULES = {
    "StepLR": (lambda o: nn.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    "ExponentialLR": (lambda o: nn.ExponentialLR(o, 0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    "CosineAnnealingLR": (
        lambda o: nn.CosineAnnealingLR(o, 7, eta_min=0.001),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.001),
    ),
    "LambdaLR": (
        lambda o: nn.LambdaLR(o, lambda e: 1 / (1 + e)),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e)),
    ),
    "LinearLR": (
        lambda o: nn.LinearLR(o, 0.25, 1.0, 6),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.25, 1.0, 6),
    ),
}


def _optimizers():
    ours, ref = twin_params()
    groups = [{"params": [ours[0]]}, {"params": [ours[1]], "lr": 0.3}]
    ref_groups = [{"params": [ref[0]]}, {"params": [ref[1]], "lr": 0.3}]
    return nn.SGD(groups, lr=0.1), torch.optim.SGD(ref_groups, lr=0.1)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_matches_torch_and_round_trips_its_state(name):
    make, make_ref = SCHEDULES[name]
    opt, ref_opt = _optimizers()
    sched, ref_sched = make(opt), make_ref(ref_opt)
    for epoch in range(20):
        assert sched.get_last_lr() == pytest.approx(ref_sched.get_last_lr(), rel=1e-12, abs=1e-15), epoch
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in ref_opt.param_groups], rel=1e-12)
        if epoch == 8:  # a fresh schedule restored from the state_dict carries on identically
            saved = sched.state_dict()
            sched = make(opt)
            sched.load_state_dict(saved)
            for group, lr in zip(opt.param_groups, saved["_last_lr"]):
                group["lr"] = lr
        opt.step()
        ref_opt.step()
        sched.step()
        ref_sched.step()


def test_reduce_lr_on_plateau_matches_torch_and_round_trips():
    opt, ref_opt = _optimizers()
    kw = dict(mode="min", factor=0.5, patience=2, threshold=0.01, cooldown=1, min_lr=[0.0, 0.05])
    sched = nn.ReduceLROnPlateau(opt, **kw)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **kw)
    metrics = [1.0, 0.9, 0.95, 0.93, 0.92, 0.91, 0.91, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    for i, m in enumerate(metrics):
        sched.step(m)
        ref.step(m)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in ref_opt.param_groups])
        if i == 5:
            again = nn.ReduceLROnPlateau(opt, **kw)
            again.load_state_dict(sched.state_dict())
            sched = again
    assert sched.get_last_lr() == pytest.approx(ref.get_last_lr())


def test_fit_steps_the_schedule_once_per_epoch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = nn.SGD(model.parameters(), lr=0.1)
    sched = nn.StepLR(opt, step_size=1, gamma=0.5)
    x, y = torch.randn(20, 2), torch.randint(0, 2, (20,))
    nn.fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=3, batch_size=10, progress=False, schedule=sched)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
    plateau = nn.ReduceLROnPlateau(opt, patience=0, factor=0.1)
    nn.fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=10, progress=False, schedule=plateau)
    assert plateau.last_epoch == 1
