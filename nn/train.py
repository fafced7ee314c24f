"""Training and evaluation: `fit`, `evaluate` and the per-epoch `History`.

One training step is the tape pattern of the README: record the forward pass and the loss
on a `tg.Tape`, replay it into ``.grad``, let the optimizer update the parameters.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from tapegrad.engine.tape import Tape, no_grad
from tapegrad.engine.tensors import Tensor
from tapegrad.progress import Progress
from tapegrad.tracing.traced import TraceError
from tapegrad.tracing.traced import trace as trace_step

from .data import Batches
from .dataloader import DataLoader
from .datasets import TensorDataset
from .module import Module
from .optim.lr_scheduler import ReduceLROnPlateau
from .parallel.main_guard import check_main_guard
from .validation import check_data, check_fit_args, check_int

__all__ = [
    "History", "Evaluation", "fit", "evaluate", "predict", "labels_of",
    "CVRow", "CVResult", "cross_validate", "expand_grid",
]  # fmt: skip


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
    (``tg.trace(step, optimizer=optimizer)``): the same kernels in the same order, so the same
    weights as the eager loop, with far less Python per step (dropout's masks are drawn inside the
    traced step, the eager step's masks). A step that cannot be traced (Python branching on tensor
    values; see `tg.trace`) is noticed on the second batch and trains eagerly from there, with a warning.
    """
    check_fit_args(model, loss_fn, optimizer, train_data, epochs, batch_size, val_data, seed)
    loader: Any
    if isinstance(train_data, DataLoader):
        loader, sampler = train_data, train_data.sampler
        dataset = train_data.dataset
        scored = dataset.tensors if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2 else None
    else:
        assert batch_size is not None  # check_fit_args saw to it
        loader = Batches(train_data, batch_size, shuffle=shuffle and sampler is None, seed=seed, sampler=sampler)
        scored = train_data
    history = History()
    step = _traced_step(model, loss_fn, optimizer) if trace else None
    shown = Progress(epochs, "fit", "epoch", enabled=progress)
    for epoch in range(epochs):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        model.train()
        start, cpu_start = time.perf_counter(), time.process_time()
        total, count = 0.0, 0
        for xb, yb in loader:
            if step is not None:
                try:
                    loss = step(xb, yb)
                except TraceError as err:  # raised before the step changed anything
                    warnings.warn(f"fit: the step cannot be traced, training eagerly instead: {err}", stacklevel=2)
                    step = None
            if step is None:
                with Tape() as tape:
                    loss = loss_fn(model(xb), yb)
                tape.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            n = len(xb)
            total += loss.item() * n
            count += n
        history.epoch_time.append(time.perf_counter() - start)
        history.epoch_cpu_time.append(time.process_time() - cpu_start)
        history.loss.append(total / max(count, 1))
        train_eval = evaluate(model, scored) if scored is not None else None
        if train_eval is not None and train_eval.error_rate is not None:
            history.error_rate.append(train_eval.error_rate)
        if val_data is not None:
            val = evaluate(model, val_data, loss_fn)
            assert val.loss is not None  # evaluate measures the loss when given a loss function
            history.val_loss.append(val.loss)
            if val.error_rate is not None:
                history.val_error_rate.append(val.error_rate)
        if isinstance(schedule, ReduceLROnPlateau):
            schedule.step(history.val_loss[-1] if val_data is not None else history.loss[-1])
        elif schedule is not None:
            schedule.step()
        values = {"loss": f"{history.loss[-1]:.4f}"}
        if history.val_error_rate:
            values["val_err"] = f"{history.val_error_rate[-1]:.3f}"
        shown.show(**values)
        shown.update(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    shown.close()
    return history


def _traced_step(model: Module, loss_fn: Module, optimizer: Any) -> Callable[[Any, Any], Tensor]:
    """One whole training step (forward, backward, ``optimizer.step()``, ``zero_grad()``) as a `tg.trace`."""

    def step(xb: Any, yb: Any) -> Tensor:
        return loss_fn(model(xb), yb)

    return trace_step(step, optimizer=optimizer)


# --- cross-validation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CVRow:
    """One configuration of a grid search: its parameters, mean and std (unbiased, as torch.std)
    of the validation accuracy over the folds, and the accuracy of each fold."""

    params: dict[str, Any]
    mean_accuracy: float
    std_accuracy: float
    fold_accuracies: tuple[float, ...]


class CVResult:
    """The table of `cross_validate`: one `CVRow` per configuration, best mean accuracy first."""

    def __init__(self, rows: list[CVRow]) -> None:
        self.rows = sorted(rows, key=lambda r: -r.mean_accuracy)  # stable: ties keep grid order

    @property
    def best(self) -> CVRow:
        """The configuration with the highest mean accuracy."""
        return self.rows[0]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[CVRow]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> CVRow:
        return self.rows[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CVResult) and self.rows == other.rows

    def __str__(self) -> str:
        lines = [f"{'mean acc':>9} {'std':>7}  parameters"]
        for r in self.rows:
            params = ", ".join(f"{k}={v}" for k, v in r.params.items())
            lines.append(f"{r.mean_accuracy:9.4f} {r.std_accuracy:7.4f}  {params}")
        return "\n".join(lines)

    __repr__ = __str__


def expand_grid(param_grid: dict[str, list] | list[dict[str, list]]) -> list[dict[str, Any]]:
    """Every configuration of a grid (a dict of value lists, or a list of such dicts), in order."""
    import itertools

    grids = [param_grid] if isinstance(param_grid, dict) else list(param_grid)
    configs = []
    for grid in grids:
        names = list(grid)
        for name in names:
            if isinstance(grid[name], (str, bytes)) or not hasattr(grid[name], "__iter__") or not len(grid[name]):
                raise ValueError(f"param_grid[{name!r}] must be a non-empty list of values")
        for values in itertools.product(*(list(grid[n]) for n in names)):
            configs.append(dict(zip(names, values)))
    return configs


_TASK_LOCK = threading.Lock()  # tasks seed torch's process-wide RNG: one at a time per process


def _init_worker() -> None:
    torch.set_num_threads(1)  # the workers share the cores; one thread each is fastest


def _fit_fold(task: dict[str, Any]) -> tuple[int, int, float]:
    """Train one configuration on the training part of one fold; its validation accuracy.

    Self-contained (data, indices, seed and ``build_fn`` travel with the task), so that any
    executor can run it: a local pool, a Dask or Ray worker. Torch's RNG is seeded from the
    task alone and the worker's RNG state and thread count are restored afterwards.
    """
    with _TASK_LOCK:
        rng, threads = torch.get_rng_state(), torch.get_num_threads()
        c, f = task["c"], task["f"]
        try:
            torch.set_num_threads(1)
            torch.manual_seed(task["seed"])
            model, loss_fn, optimizer = task["build_fn"](**task["config"])
            fit(model, loss_fn, optimizer, task["train"], task["epochs"], task["batch_size"], progress=False,
                seed=task["seed"], trace=task["trace"])  # fmt: skip
            accuracy = evaluate(model, task["val"]).accuracy
        except Exception as err:
            raise RuntimeError(f"cross_validate: configuration {task['config']}, fold {f} failed: {err}") from err
        finally:
            torch.set_rng_state(rng)
            torch.set_num_threads(threads)
    if accuracy is None:
        raise ValueError("cross_validate needs class labels (integer or +-1 targets) to measure accuracy")
    return c, f, accuracy


def _completed(executor: Any, tasks: list[dict[str, Any]]) -> Iterator[tuple[int, int, float]]:
    """The tasks' results in the order they finish; the rest are cancelled if one fails."""
    from concurrent.futures import Future, as_completed

    futures = [executor.submit(_fit_fold, task) for task in tasks]
    try:
        if all(isinstance(fut, Future) for fut in futures):
            for fut in as_completed(futures):
                yield fut.result()
        else:  # an executor with futures of its own kind: collect them in order
            for fut in futures:
                yield fut.result()
    finally:
        for fut in futures:
            fut.cancel()


def cross_validate(
    build_fn: Any,
    param_grid: dict[str, list] | list[dict[str, list]],
    data: tuple[Any, Any],
    k: int = 5,
    jobs: int = 1,
    seed: int = 0,
    epochs: int = 10,
    batch_size: int = 10,
    progress: bool = False,
    callback: Callable[[CVRow], Any] | None = None,
    executor: Any = None,
    trace: bool = False,
) -> CVResult:
    """k-fold grid search: ``build_fn(**config) -> (model, loss_fn, optimizer)`` per configuration.

    Each configuration is trained with `fit` on k-1 folds and scored by its accuracy on the
    held-out fold. Fold ``f`` seeds torch's RNG with ``seed * 1000 + f`` before ``build_fn``
    (so every configuration starts from the same weights; the caller's RNG state is restored),
    which makes the table independent of where the fits run: ``jobs > 1`` runs the
    (configuration, fold) tasks in that many spawned worker processes, and ``executor`` (any
    `concurrent.futures.Executor`: a process pool, a Dask ``Client().get_executor()``, Ray's)
    runs them wherever it sends work; ``build_fn`` must then be picklable (defined at module
    level). ``callback(row)``, when given, is called with each configuration's `CVRow` as soon
    as its last fold is scored (for progress reports). ``trace=True`` trains every fit with
    ``fit(..., trace=True)`` (the same table, less Python per step). Returns a `CVResult`, best
    mean accuracy first.
    """
    from .data import kfold_indices

    if not callable(build_fn):
        raise TypeError(f"cross_validate: build_fn must be callable, got {type(build_fn).__name__}")
    check_data("cross_validate", "data", data, allow_empty=False)
    for name, value, low in (("k", k, 2), ("jobs", jobs, 1), ("epochs", epochs, 1), ("batch_size", batch_size, 1)):
        check_int("cross_validate", name, value, low)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "cross_validate: executor must be a concurrent.futures.Executor (with submit), "
            f"got {type(executor).__name__}"
        )
    if executor is not None and jobs > 1:
        raise ValueError(f"cross_validate: pass jobs={jobs} or an executor, not both (the executor sets the workers)")
    configs = expand_grid(param_grid)
    x, y = _raw(data[0]), _raw(data[1])
    folds = kfold_indices(len(x), k, seed)
    tasks = [
        dict(c=c, f=f, config=configs[c], build_fn=build_fn, train=(x[folds[f][0]], y[folds[f][0]]),
             val=(x[folds[f][1]], y[folds[f][1]]), seed=seed * 1000 + f, epochs=epochs, batch_size=batch_size,
             trace=trace)
        for c in range(len(configs)) for f in range(k)
    ]  # fmt: skip
    scores: dict[int, dict[int, float]] = {c: {} for c in range(len(configs))}
    shown = Progress(len(tasks), "cross-validate", "fit", enabled=progress)
    pool = None
    if executor is None and jobs > 1:
        check_main_guard(f"cross_validate(jobs={jobs})")
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch started its threads
        pool = executor = ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=ctx, initializer=_init_worker)
    try:
        results = map(_fit_fold, tasks) if executor is None else _completed(executor, tasks)
        for c, f, acc in results:
            scores[c][f] = acc
            _report(callback, configs, scores, c, k)
            shown.update(f"{configs[c]} fold {f}: accuracy {acc:.4f}")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        shown.close()
    return CVResult([_cv_row(config, scores[c], k) for c, config in enumerate(configs)])


def _cv_row(config: dict[str, Any], fold_scores: dict[int, float], k: int) -> CVRow:
    accs = torch.tensor([fold_scores[f] for f in range(k)], dtype=torch.float64)
    return CVRow(config, float(accs.mean()), float(accs.std()), tuple(accs.tolist()))


def _report(
    callback: Callable[[CVRow], Any] | None,
    configs: list[dict[str, Any]],
    scores: dict[int, dict[int, float]],
    c: int,
    k: int,
) -> None:
    if callback is not None and len(scores[c]) == k:
        callback(_cv_row(configs[c], scores[c], k))
