"""nn.optim (every optimizer) and nn.optim.lr_scheduler (every schedule) against torch.optim: Adagrad,
Adadelta, per-group options in every optimizer, and each schedule's rates (and momenta) step by step."""

from __future__ import annotations

import pytest
import torch
from strategies import F64

import nn
import tapegrad as tg

TO = torch.optim
OURS_S, TORCH_S = nn.optim.lr_scheduler, torch.optim.lr_scheduler


def twins(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    datas = [torch.randn(3, 4, generator=gen, dtype=F64), torch.randn(4, generator=gen, dtype=F64)]
    return [tg.Tensor(d.clone(), requires_grad=True) for d in datas], [d.clone().requires_grad_() for d in datas]


def step_both(ours, ref, ours_p, ref_p, steps: int = 5) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for a, b in zip(ours_p, ref_p):
            g = torch.randn(a.shape, generator=gen, dtype=F64)
            a.grad, b.grad = tg.Tensor(g.clone()), g.clone()
        ours.step()
        ref.step()
    for a, b in zip(ours_p, ref_p):
        torch.testing.assert_close(a.data, b.detach(), rtol=1e-12, atol=1e-12)
        for key, value in ours.state[a].items():
            torch.testing.assert_close(torch.as_tensor(value), torch.as_tensor(ref.state[b][key]))


OPTIMIZERS = {
    "SGD": (nn.optim.SGD, TO.SGD, dict(lr=0.1, momentum=0.9)),
    "Adam": (nn.optim.Adam, TO.Adam, dict(lr=0.01)),
    "AdamW": (nn.optim.AdamW, TO.AdamW, dict(lr=0.01)),
    "RMSprop": (nn.optim.RMSprop, TO.RMSprop, dict(lr=0.01)),
    "Adagrad": (nn.optim.Adagrad, TO.Adagrad, dict(lr=0.1)),
    "Adadelta": (nn.optim.Adadelta, TO.Adadelta, dict()),
}


@pytest.mark.parametrize(
    "name, options",
    [
        ("Adagrad", dict(lr=0.1)),
        ("Adagrad", dict(lr=0.05, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.2, eps=1e-6)),
        ("Adagrad", dict(lr=0.05, maximize=True)),
        ("Adadelta", dict()),
        ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
        ("Adadelta", dict(maximize=True)),
    ],
)
def test_adagrad_and_adadelta_match_torch(name, options):
    ours_cls, ref_cls, _ = OPTIMIZERS[name]
    ours_p, ref_p = twins()
    step_both(ours_cls(ours_p, **options), ref_cls(ref_p, **options), ours_p, ref_p)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_takes_per_group_options(name):
    ours_cls, ref_cls, options = OPTIMIZERS[name]
    ours_p, ref_p = twins(2)
    extra = {"weight_decay": 0.3, "lr": 0.02}
    ours = ours_cls([{"params": [ours_p[0]], **extra}, {"params": [ours_p[1]]}], **options)
    ref = ref_cls([{"params": [ref_p[0]], **extra}, {"params": [ref_p[1]]}], **options)
    assert ours.param_groups[0]["lr"] == 0.02 and ours.param_groups[1]["lr"] == ref.param_groups[1]["lr"]
    step_both(ours, ref, ours_p, ref_p)


def test_layout_and_aliases():
    for name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Optimizer"):
        assert getattr(nn.optim, name) is getattr(nn, name, getattr(nn.optim, name))
    assert nn.StepLR is nn.optim.lr_scheduler.StepLR is nn.schedules.StepLR
    torch_schedules = {n for n in TORCH_S.__all__ if n not in ("SWALR", "_LRScheduler")}
    assert torch_schedules <= set(OURS_S.__all__)


def _opt(lib, cls_name="SGD", **kw):
    """An optimizer of two groups (the second with its own lr) over fresh tensors of ``lib``'s kind."""
    make = (lambda d: d.requires_grad_()) if lib is TO else (lambda d: tg.Tensor(d, requires_grad=True))
    groups = [{"params": [make(torch.zeros(2))]}, {"params": [make(torch.ones(1))], "lr": 0.5}]
    return getattr(lib, cls_name)(groups, lr=1.0, **kw)


SCHEDULES = {
    "MultiplicativeLR": lambda S, o: S.MultiplicativeLR(o, lambda e: 0.9),
    "MultiStepLR": lambda S, o: S.MultiStepLR(o, [2, 4, 4], gamma=0.5),
    "ConstantLR": lambda S, o: S.ConstantLR(o, factor=0.25, total_iters=3),
    "PolynomialLR": lambda S, o: S.PolynomialLR(o, total_iters=6, power=2.0),
    "CosineAnnealingWarmRestarts": lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01),
    "OneCycleLR": lambda S, o: S.OneCycleLR(o, max_lr=[1.0, 0.3], total_steps=10),
    "OneCycleLR linear three-phase": lambda S, o: S.OneCycleLR(
        o, max_lr=1.0, epochs=2, steps_per_epoch=5, anneal_strategy="linear", three_phase=True
    ),
    "CyclicLR": lambda S, o: S.CyclicLR(o, base_lr=0.1, max_lr=1.0, step_size_up=3),
    "CyclicLR triangular2": lambda S, o: S.CyclicLR(
        o, 0.1, [1.0, 2.0], step_size_up=2, step_size_down=3, mode="triangular2"
    ),
    "CyclicLR exp_range": lambda S, o: S.CyclicLR(o, 0.1, 1.0, step_size_up=2, mode="exp_range", gamma=0.9),
    "SequentialLR": lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=3), S.CosineAnnealingLR(o, T_max=4)], milestones=[3]
    ),
    "SequentialLR of three": lambda S, o: S.SequentialLR(
        o, [S.ConstantLR(o, 0.5, 2), S.StepLR(o, 2, 0.5), S.ExponentialLR(o, 0.9)], milestones=[2, 5]
    ),
    "ChainedScheduler": lambda S, o: S.ChainedScheduler([S.ConstantLR(o, 0.5, 3), S.ExponentialLR(o, 0.9)]),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_match_torch(name):
    ours_opt, ref_opt = _opt(nn), _opt(TO)
    ours, ref = SCHEDULES[name](OURS_S, ours_opt), SCHEDULES[name](TORCH_S, ref_opt)
    for _ in range(10):
        for g, h in zip(ours_opt.param_groups, ref_opt.param_groups):
            assert g["lr"] == pytest.approx(h["lr"], rel=1e-12, abs=1e-15)
            assert g.get("momentum") == pytest.approx(h.get("momentum"), rel=1e-12)
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-12, abs=1e-15)
        ours_opt.step()
        ref_opt.step()
        ours.step()
        ref.step()


def test_one_cycle_cycles_adams_beta1():
    ours_opt, ref_opt = _opt(nn, "Adam"), _opt(TO, "Adam")
    ours = OURS_S.OneCycleLR(ours_opt, max_lr=0.1, total_steps=6)
    ref = TORCH_S.OneCycleLR(ref_opt, max_lr=0.1, total_steps=6)
    for _ in range(5):
        ours.step()
        ref.step()
        assert ours_opt.param_groups[0]["betas"] == pytest.approx(ref_opt.param_groups[0]["betas"])
    with pytest.raises(ValueError, match="momentum"):
        OURS_S.OneCycleLR(_opt(nn, "Adagrad"), max_lr=0.1, total_steps=6)
