"""Progress where people look: a bar on a terminal, one flushed line per item in logs, never a warning."""

from __future__ import annotations

import io
import warnings

import torch

import nn
from tapegrad import progress as progress_module
from tapegrad.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def small_fit(**kwargs) -> nn.History:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))
    data = nn.data.disk_dataset(40, seed=0)
    return nn.fit(model, nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=0.1), data, epochs=3, batch_size=10,
                  seed=0, **kwargs)  # fmt: skip


def test_fit_prints_one_line_per_epoch_in_a_log_and_nothing_without_progress(capsys):
    history = small_fit()
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["fit [1/3] epoch 1", "fit [2/3] epoch 2", "fit [3/3] epoch 3"]
    assert err[-1] == f"fit [3/3] epoch 3: loss {history.loss[-1]:.4f}"
    small_fit(progress=False)
    assert capsys.readouterr().err == ""


def test_cross_validate_prints_one_line_per_fit(capsys):
    data = nn.data.disk_dataset(30, seed=0)

    def build(lr: float):
        model = nn.Sequential(nn.Linear(2, 2))
        return model, nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=lr)

    nn.cross_validate(build, {"lr": [0.1]}, data, k=2, epochs=1, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == [
        "cross-validate [1/2] {'lr'",
        "cross-validate [2/2] {'lr'",
    ]
    assert "fold 0: accuracy" in err[0] and "fold 1: accuracy" in err[1]


def test_a_terminal_gets_a_bar_with_the_loss_and_without_tqdm_lines_and_no_warning(monkeypatch):
    term = Terminal()
    bar = Progress(3, "fit", "epoch", stream=term)
    assert bar.mode == "bar" and type(bar.bar).__module__ == "tqdm.std"  # not tqdm.auto's notebook guess
    bar.show(loss="0.1234")
    bar.update("epoch 1")
    bar.close()
    assert "fit:  33%" in term.getvalue() and "loss=0.1234" in term.getvalue() and "epoch 1" not in term.getvalue()
    monkeypatch.setattr(progress_module, "bar_class", lambda notebook: None)  # as without the [cli] extra
    term = Terminal()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lines = Progress(2, "fit", "epoch", stream=term)
        lines.update("epoch 1: loss 0.5")
    assert lines.mode == "lines" and term.getvalue() == "fit [1/2] epoch 1: loss 0.5\n"


def test_the_bar_class_is_the_widget_only_in_a_notebook_with_ipywidgets(monkeypatch):
    assert progress_module.bar_class(False).__module__ == "tqdm.std"
    real = progress_module.importlib.util.find_spec
    monkeypatch.setattr(
        progress_module.importlib.util, "find_spec", lambda n, *a: None if n == "ipywidgets" else real(n)
    )
    assert progress_module.bar_class(True).__module__ == "tqdm.std"  # no widget, no IProgress warning
    assert not progress_module.in_notebook()
