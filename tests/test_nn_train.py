"""Training: the seed task with SGD and Adam x MSE and cross-entropy, evaluate, cross-validation."""

import io
import warnings

import pytest
import torch

import nn
from nn.data import disk_dataset, normalize


@pytest.fixture(scope="module")
def disk():
    """Seed 002's setting: 1000 training and 1000 test points, normalised by the training stats."""
    (xtr, ytr), (xte, yte) = disk_dataset(1000, seed=1), disk_dataset(1000, seed=2)
    xtr, xte = normalize(xtr, xte)
    return (xtr, ytr), (xte, yte)


def seed_net(init="default", tanh=False):
    """2-25-25-25-2 with ReLU; seed 002 puts a Tanh on the output for its +-1 targets."""
    layers = [nn.Linear(2, 25, init=init), nn.ReLU(), nn.Linear(25, 25, init=init), nn.ReLU()]
    layers += [nn.Linear(25, 25, init=init), nn.ReLU(), nn.Linear(25, 2, init=init)]
    return nn.Sequential(*(layers + [nn.Tanh()] if tanh else layers))


SEED_RUNS = {
    "SGD-MSE": (lambda p: nn.SGD(p, lr=0.05, momentum=0.9), nn.MSELoss, dict(init="he", tanh=True)),
    "SGD-CE": (lambda p: nn.SGD(p, lr=0.05, momentum=0.9), nn.CrossEntropyLoss, {}),
    "Adam-MSE": (lambda p: nn.Adam(p, lr=3e-3), nn.MSELoss, dict(init="he", tanh=True)),
    "Adam-CE": (lambda p: nn.Adam(p, lr=3e-3), nn.CrossEntropyLoss, {}),
}


@pytest.mark.parametrize("run", list(SEED_RUNS))
def test_seed_task_reaches_96_percent(run, disk):
    make_opt, make_loss, net_kwargs = SEED_RUNS[run]
    train, test = disk
    torch.manual_seed(0)
    model = seed_net(**net_kwargs)
    opt, loss_fn = make_opt(model.parameters()), make_loss()
    history = nn.fit(model, loss_fn, opt, train, epochs=10, batch_size=10, val_data=test, progress=False, seed=0)
    for group in opt.param_groups:  # a short run: one step decay of the learning rate
        group["lr"] /= 10
    nn.fit(model, loss_fn, opt, train, epochs=5, batch_size=10, progress=False, seed=1)
    result = nn.evaluate(model, test, loss_fn)
    print(f"{run}: test accuracy {result.accuracy:.3f}")
    assert result.accuracy >= 0.96
    assert result.error_rate == pytest.approx(1 - result.accuracy)
    assert len(history) == 10 and len(history.val_error_rate) == 10 and len(history.error_rate) == 10
    assert history.loss[-1] < history.loss[0]


def test_fit_is_reproducible_and_history_is_complete(disk):
    train, test = disk
    small = (train[0][:200], train[1][:200])

    def run():
        torch.manual_seed(5)
        model = seed_net()
        h = nn.fit(model, nn.CrossEntropyLoss(), nn.Adam(model.parameters(), lr=0.01), small, 3, 20,
                   val_data=test, progress=False, seed=5)  # fmt: skip
        return model, h

    (m1, h1), (m2, h2) = run(), run()
    assert h1.loss == h2.loss and all(torch.equal(p.data, q.data) for p, q in zip(m1.parameters(), m2.parameters()))
    d = h1.as_dict()
    assert set(d) == {"loss", "error_rate", "val_loss", "val_error_rate", "epoch_time"}
    assert all(len(v) == 3 for v in d.values())
    assert h1.val_accuracy == [1 - e for e in h1.val_error_rate]
    assert h1.val_loss[-1] == pytest.approx(nn.evaluate(m1, test, nn.CrossEntropyLoss()).loss)


def test_evaluate_counts_errors_and_restores_the_mode():
    model = nn.Linear(2, 2, bias=False)
    model.weight.data.copy_(torch.eye(2))  # predicts the larger coordinate
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([0, 1, 1, 1])
    model.train()
    result = nn.evaluate(model, (x, y), batch_size=3)
    assert (result.accuracy, result.error_rate, result.loss, result.n) == (0.75, 0.25, None, 4)
    assert model.training
    signed = nn.signed_targets(y)  # +-1 targets count by argmax
    assert nn.evaluate(model, (x, signed), nn.MSELoss()).error_rate == 0.25
    assert torch.equal(nn.predict(model, x), torch.tensor([0, 1, 0, 1]))


def test_progress_bar_only_on_a_terminal(disk, monkeypatch, capsys):
    train, _ = disk
    small = (train[0][:50], train[1][:50])
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a tty
    model = seed_net()
    nn.fit(model, nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=0.1), small, 2, 10, progress=True)
    import sys

    assert sys.stderr.getvalue() == ""


def build(lr, momentum=0.0):
    """A picklable build_fn for cross_validate (worker processes import it)."""
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    return model, nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=lr, momentum=momentum)


def test_cross_validate_table_and_jobs(disk):
    train, _ = disk
    data = (train[0][:240], train[1][:240])
    grid = {"lr": [0.3, 0.03, 1e-4], "momentum": [0.0, 0.9]}
    table = nn.cross_validate(build, grid, data, k=3, jobs=1, seed=0, epochs=2, batch_size=20)
    assert len(table) == 6
    assert sorted((r.params["lr"], r.params["momentum"]) for r in table) == sorted(
        (lr, m) for lr in grid["lr"] for m in grid["momentum"]
    )
    means = [r.mean_accuracy for r in table]
    assert means == sorted(means, reverse=True) and table.best is table[0]
    for r in table:
        accs = torch.tensor(r.fold_accuracies, dtype=torch.float64)
        assert len(r.fold_accuracies) == 3
        assert r.mean_accuracy == pytest.approx(accs.mean().item())
        assert r.std_accuracy == pytest.approx(accs.std().item())
    assert table.best.params["lr"] != 1e-4  # a learning rate that barely moves loses
    assert "mean acc" in str(table)
    torch.manual_seed(123)
    expected = torch.rand(2)
    torch.manual_seed(123)
    parallel = nn.cross_validate(build, grid, data, k=3, jobs=2, seed=0, epochs=2, batch_size=20)
    assert torch.equal(torch.rand(2), expected)  # the caller's RNG stream is untouched
    assert parallel == table
    assert [r.fold_accuracies for r in parallel] == [r.fold_accuracies for r in table]


TRACEABLE = {
    "SGD-momentum-CE": (lambda p: nn.SGD(p, lr=0.05, momentum=0.9), nn.CrossEntropyLoss()),
    "SGD-MSE": (lambda p: nn.SGD(p, lr=0.05), nn.MSELoss()),
    "SGD-MSE-batchmean": (lambda p: nn.SGD(p, lr=0.05), nn.MSELoss(reduction="batchmean")),
    "SGD-MSE-sum": (lambda p: nn.SGD(p, lr=0.01), nn.MSELoss(reduction="sum")),
    "Adam-L1": (lambda p: nn.Adam(p, lr=3e-3), nn.L1Loss()),
}


@pytest.mark.parametrize("raw", [False, True], ids=["tg data", "torch data"])
@pytest.mark.parametrize("run", list(TRACEABLE))
def test_a_traced_fit_trains_the_eager_weights(run, raw, disk):
    # class labels into MSE and L1 are turned into +-1 rows inside the loss's op, so a traced step
    # sees each batch's labels (they were converted outside any op, and frozen at trace time)
    make_opt, loss_fn = TRACEABLE[run]
    x, y = disk[0][0][:200], disk[0][1][:200]
    data = (x.data, y.data) if raw else (x, y)
    weights, histories = [], []
    for trace in (False, True):
        torch.manual_seed(0)
        model = seed_net(tanh=not isinstance(loss_fn, nn.CrossEntropyLoss))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to eager: the step is traced
            history = nn.fit(model, loss_fn, make_opt(model.parameters()), data, 3, 10, seed=0, trace=trace)
        weights.append([p.data.clone() for p in model.parameters()])
        histories.append(history)
    assert all(torch.equal(a, b) for a, b in zip(*weights))
    assert histories[0].loss == histories[1].loss and histories[0].error_rate == histories[1].error_rate


def test_a_traced_fit_of_a_dropout_model_trains_the_eager_weights(disk):
    # the dropout masks are drawn inside the traced step, from torch's generator, in the eager order
    x, y = disk[0][0][:100], disk[0][1][:100]
    weights, histories = [], []
    for trace in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to eager: the step is traced
            history = nn.fit(model, nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=0.1), (x, y), 2, 10,
                             seed=0, trace=trace)  # fmt: skip
        weights.append([p.data.clone() for p in model.parameters()])
        histories.append(history)
    assert all(torch.equal(a, b) for a, b in zip(*weights))
    assert histories[0].loss == histories[1].loss


class _SignGate(nn.Module):
    """Doubles a batch whose first input is positive: a Python branch on a value, which a trace freezes."""

    def forward(self, x):
        return x * (2.0 if float(x.data[0, 0]) > 0 else 1.0)


def test_a_fit_that_cannot_be_traced_warns_and_trains_eagerly(disk):
    x, y = disk[0][0][:100], disk[0][1][:100]
    weights = []
    for trace in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(_SignGate(), nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
        opt = nn.SGD(model.parameters(), lr=0.1)
        if trace:  # (the first two shuffled batches of seed 0 take different branches)
            with pytest.warns(UserWarning, match="cannot be traced, training eagerly"):
                nn.fit(model, nn.CrossEntropyLoss(), opt, (x, y), 2, 10, seed=0, trace=True)
        else:
            nn.fit(model, nn.CrossEntropyLoss(), opt, (x, y), 2, 10, seed=0)
        weights.append([p.data.clone() for p in model.parameters()])
    # the second batch showed the trace wrong before it stepped anything: every step was the eager one
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_cross_validate_with_traced_fits_gives_the_eager_table(disk):
    train, _ = disk
    data = (train[0][:120].data, train[1][:120].data)  # torch data, as the CLI passes it
    grid = {"lr": [0.3, 0.03], "momentum": [0.0, 0.9]}
    eager = nn.cross_validate(build, grid, data, k=3, seed=0, epochs=2, batch_size=10)
    traced = nn.cross_validate(build, grid, data, k=3, seed=0, epochs=2, batch_size=10, trace=True)
    assert [r.fold_accuracies for r in traced] == [r.fold_accuracies for r in eager]
