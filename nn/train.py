"""Training and evaluation: `fit`, `evaluate` and the per-epoch `History`.

One training step is the tape pattern of the README: record the forward pass and the loss
on a `tg.Tape`, replay it into ``.grad``, let the optimizer update the parameters.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from tapegrad.engine.modes import no_grad
from tapegrad.engine.tape import Tape
from tapegrad.engine.tensors import Tensor
from tapegrad.progress import Progress
from tapegrad.tracing.traced import TraceError
from tapegrad.tracing.traced import trace as trace_step

from .data import Batches
from .dataloader import DataLoader
from .datasets import TensorDataset
from .module import Module
from .optim.lr_scheduler import ReduceLROnPlateau
from .validation import check_data, check_fit_args

__all__ = ["History", "Evaluation", "fit", "evaluate", "predict", "labels_of"]


@dataclass
class History:
    """Per-epoch curves of `fit`: training loss (mean over the epoch's batches), training error
    rate (on the whole training set after the epoch), the same on the validation data when
    given (else empty lists), and the seconds each epoch's training took: wall time (``epoch_time``)
    and this process's CPU time (``epoch_cpu_time``, which other jobs on a shared machine do not
    inflate)."""

    loss: list[float] = field(default_factory=list)
    error_rate: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_error_rate: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    epoch_cpu_time: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.loss)

    @property
    def accuracy(self) -> list[float]:
        """1 - error_rate, per epoch."""
        return [1 - e for e in self.error_rate]

    @property
    def val_accuracy(self) -> list[float]:
        """1 - val_error_rate, per epoch."""
        return [1 - e for e in self.val_error_rate]

    def as_dict(self) -> dict[str, list[float]]:
        """The curves as a plain dict (for JSON or plotting)."""
        return {k: list(v) for k, v in vars(self).items()}


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` measured: accuracy and error rate (``None`` without class labels), the
    mean loss (``None`` without a loss function) and the number of samples."""

    accuracy: float | None
    error_rate: float | None
    loss: float | None
    n: int


def _raw(t: Any) -> torch.Tensor:
    return t.data if isinstance(t, Tensor) else torch.as_tensor(t)


def labels_of(y: Any) -> torch.Tensor | None:
    """Class labels of targets: integer labels as they are, +-1 or one-hot rows by argmax; else None."""
    y = _raw(y)
    if not (y.is_floating_point() or y.is_complex()):
        return y
    if y.dim() == 2 and y.shape[1] > 1:
        return y.argmax(1)
    return None


def _predicted(out: torch.Tensor) -> torch.Tensor:
    """The class a model output stands for: the argmax of several outputs, ``> 0`` for one score."""
    if out.dim() == 2 and out.shape[1] > 1:
        return out.argmax(1)
    return (out.reshape(-1) > 0).long()


def predict(model: Module, x: Any) -> torch.Tensor:
    """Predicted class labels for inputs ``x`` (argmax of the outputs), without recording."""
    with no_grad():
        return _predicted(_raw(model(x)))


def evaluate(
    model: Module, data: tuple[Any, Any], loss_fn: Module | None = None, batch_size: int | None = None
) -> Evaluation:
    """Accuracy, error rate and (with ``loss_fn``) mean loss of ``model`` on ``data = (x, y)``.

    Runs under `tg.no_grad` in eval mode (the previous mode is restored). Returns `Evaluation`.
    """
    x, y = check_data("evaluate", "data", data)
    n = len(_raw(x))
    labels = labels_of(y)
    was_training = model.training
    model.eval()
    wrong, total_loss = 0, 0.0
    try:
        with no_grad():
            for xb, yb in Batches((x, y), batch_size or max(n, 1)):
                out = model(xb)
                if loss_fn is not None:
                    total_loss += float(loss_fn(out, yb).item()) * len(_raw(xb))
                lb = labels_of(yb) if labels is not None else None
                if lb is not None:
                    wrong += int((_predicted(_raw(out)) != lb).sum())
    finally:
        model.train(was_training)
    error = wrong / n if labels is not None and n else None
    return Evaluation(
        accuracy=None if error is None else 1 - error,
        error_rate=error,
        loss=total_loss / n if loss_fn is not None and n else None,
        n=n,
    )


def fit(
    model: Module,
    loss_fn: Module,
    optimizer: Any,
    train_data: tuple[Any, Any] | DataLoader,
    epochs: int,
    batch_size: int | None = None,
    val_data: tuple[Any, Any] | None = None,
    progress: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
    sampler: Any = None,
    schedule: Any = None,
    trace: bool = False,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_data = (x, y)`` in mini-batches.

    Each batch: ``with tg.Tape() as tape: loss = loss_fn(model(xb), yb)``, then
    ``tape.backward(loss)``, ``optimizer.step()``, ``optimizer.zero_grad()``. Batches are
    shuffled each epoch (from ``seed`` when given). With ``progress``, a bar shows on a terminal
    or in a notebook (with the ``[cli]`` extra), else one line per epoch on stderr (in logs and
    pipes); see `tapegrad.progress.Progress`. Returns the per-epoch `History`.

    ``train_data`` may be an `nn.data.DataLoader` instead (then without ``batch_size``): its batches,
    in its order, are the steps; the error rates are measured when its data set is a
    ``TensorDataset(x, y)``.

    A ``sampler`` (`nn.data.DistributedSampler` under `nn.parallel.DistributedDataParallel`)
    picks this process's samples instead of ``shuffle``; its ``set_epoch`` is called before
    every epoch. The error rates are still measured on all of ``train_data``.

    ``schedule`` (an ``nn.schedules`` learning-rate schedule) steps once per epoch;
    `ReduceLROnPlateau` is given the validation loss when there is validation data, else the
    training loss.

    ``trace=True`` runs each step as one `tg.trace` call with the optimizer folded in
    (``tg.trace(step, optimizer=optimizer)``): the same weights as the eager loop (bit for bit on the
    Python graph; to float32 rounding once a long run's step is compiled by inductor), with far less
    Python per step (dropout's masks are drawn inside the traced step, the eager step's masks). A step that
    cannot be traced (Python branching on tensor values; see `tg.trace`) is noticed on the second batch and
    trains eagerly from there, with a warning.
    """
    check_fit_args(model, loss_fn, optimizer, train_data, epochs, batch_size, val_data, seed)
    loader, sampler, scored = _loader(train_data, batch_size, shuffle, seed, sampler)
    history = History()
    run = _Steps(model, loss_fn, optimizer, trace)
    shown = Progress(epochs, "fit", "epoch", enabled=progress)
    for epoch in range(epochs):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        model.train()
        run.epoch(loader, history)
        _measure(history, model, loss_fn, scored, val_data)
        if isinstance(schedule, ReduceLROnPlateau):
            schedule.step(history.val_loss[-1] if val_data is not None else history.loss[-1])
        elif schedule is not None:
            schedule.step()
        _show(shown, history, epoch)
    shown.close()
    return history


def _show(shown: Progress, history: History, epoch: int) -> None:
    values = {"loss": f"{history.loss[-1]:.4f}"}
    if history.val_error_rate:
        values["val_err"] = f"{history.val_error_rate[-1]:.3f}"
    shown.show(**values)
    shown.update(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v}" for k, v in values.items()))


def _loader(
    train_data: tuple[Any, Any] | DataLoader, batch_size: int | None, shuffle: bool, seed: int | None, sampler: Any
) -> tuple[Any, Any, tuple[Any, Any] | None]:
    """(the batches of an epoch, the sampler, the (x, y) the error rates are measured on or None)."""
    if isinstance(train_data, DataLoader):
        dataset = train_data.dataset
        scored = dataset.tensors if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2 else None
        return train_data, train_data.sampler, scored
    assert batch_size is not None  # check_fit_args saw to it
    loader = Batches(train_data, batch_size, shuffle=shuffle and sampler is None, seed=seed, sampler=sampler)
    return loader, sampler, train_data


class _Steps:
    """The training steps of `fit`: eager (a tape per batch), or one `tg.trace` call per batch, which
    falls back to eager for good when the step cannot be traced (noticed on the second batch)."""

    def __init__(self, model: Module, loss_fn: Module, optimizer: Any, trace: bool) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.traced = trace_step(self._loss, optimizer=optimizer) if trace else None

    def _loss(self, xb: Any, yb: Any) -> Tensor:
        return self.loss_fn(self.model(xb), yb)

    def epoch(self, loader: Any, history: History) -> None:
        """One pass over the batches: its mean loss (weighted by the batches' sizes) and times in ``history``."""
        start, cpu_start = time.perf_counter(), time.process_time()
        total, count = 0.0, 0
        for xb, yb in loader:
            loss = self.step(xb, yb)
            total += loss.item() * len(xb)
            count += len(xb)
        history.epoch_time.append(time.perf_counter() - start)
        history.epoch_cpu_time.append(time.process_time() - cpu_start)
        history.loss.append(total / max(count, 1))

    def step(self, xb: Any, yb: Any) -> Tensor:
        """Forward, backward, ``optimizer.step()``, ``optimizer.zero_grad()``; the loss."""
        if self.traced is not None:
            try:
                return self.traced(xb, yb)
            except TraceError as err:  # raised before the step changed anything
                warnings.warn(f"fit: the step cannot be traced, training eagerly instead: {err}", stacklevel=4)
                self.traced = None
        with Tape() as tape:
            loss = self._loss(xb, yb)
        tape.backward(loss)
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss


def _measure(
    history: History, model: Module, loss_fn: Module, scored: tuple[Any, Any] | None, val_data: tuple[Any, Any] | None
) -> None:
    """The error rates after an epoch (on the training data when it is scored, and the validation data)."""
    train_eval = evaluate(model, scored) if scored is not None else None
    if train_eval is not None and train_eval.error_rate is not None:
        history.error_rate.append(train_eval.error_rate)
    if val_data is not None:
        val = evaluate(model, val_data, loss_fn)
        assert val.loss is not None  # evaluate measures the loss when given a loss function
        history.val_loss.append(val.loss)
        if val.error_rate is not None:
            history.val_error_rate.append(val.error_rate)
