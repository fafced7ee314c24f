"""Cross-validation: `cross_validate` (a k-fold grid search over `fit`), `expand_grid` and the
result table (`CVResult` of `CVRow`s); the fits run here, in worker processes or on any executor."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from tapegrad.progress import Progress

from .parallel.main_guard import check_main_guard
from .train import _raw, evaluate, fit
from .validation import check_data, check_int

__all__ = ["CVRow", "CVResult", "cross_validate", "expand_grid"]


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

    _check_args(build_fn, data, k, jobs, epochs, batch_size, executor)
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
    pool = _pool(jobs, len(tasks)) if executor is None and jobs > 1 else None
    executor = pool if pool is not None else executor
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


def _check_args(build_fn: Any, data: Any, k: int, jobs: int, epochs: int, batch_size: int, executor: Any) -> None:
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


def _pool(jobs: int, n_tasks: int) -> Any:
    """``jobs`` spawned worker processes (at most one per task), one torch thread each."""
    check_main_guard(f"cross_validate(jobs={jobs})")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch started its threads
    return ProcessPoolExecutor(min(jobs, n_tasks), mp_context=ctx, initializer=_init_worker)


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
