"""`tapegrad cv`: seed 000's cross-validated grid search (their Table I ranges), then a test score.

For each loss, initialisation, activation and optimizer asked for, every configuration of the
grid is trained on k-1 folds of the training set and scored on the held-out fold
(`nn.cross_validate`); the best one is retrained on the whole training set and scored on the
test set: seed 000's Table II (best values per optimizer), Figure 1 (accuracy per activation
and optimizer, ``--plot``) and its ablations (``--loss mse,ce``, ``--init default,xavier``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch

import tapegrad.nn as nn
from tapegrad.progress import Progress, clock

from .cluster import ClusterError, Workers, cluster_executor
from .common import build_loss, build_model, build_optimizer, load_data
from .cv_grid import grid_for, params_text, search_name, searches_of
from .cv_report import print_tables, report_of
from .export import cv_rows, write_csv

__all__ = ["run", "build_candidate"]


def build_candidate(
    *,
    hidden: list[int],
    activation: str,
    loss: str,
    init: str,
    gain: float,
    optimizer: str,
    momentum: float,
    lr: float,
    eps: float = 1e-8,
    beta1: float = 0.9,
    beta2: float = 0.999,
    reduction: str = "mean",
) -> tuple[nn.Sequential, nn.Module, nn.Optimizer]:
    """(model, loss, optimizer) of one grid configuration; module level, so worker processes can unpickle it."""
    model = build_model(hidden, activation, loss, init, gain)
    opt = build_optimizer(optimizer, model.parameters(), lr, momentum, (beta1, beta2), eps)
    return model, build_loss(loss, reduction), opt


class _Clock:
    """Progress of the whole command: one line per configuration, and an estimate after the first."""

    def __init__(self, args: argparse.Namespace, searches: list[dict[str, str]], workers: Workers | None) -> None:
        self.args = args
        self.k = args.k
        # how many fits run at once: --jobs local processes, or the cluster's worker threads or CPUs
        self.jobs = workers.count if workers is not None else args.jobs
        self.where = workers.text if workers is not None else f"{args.jobs} job{'s' * (args.jobs > 1)}"
        self.configs = [math.prod(len(v) for v in grid_for(s["optimizer"], args).values()) for s in searches]
        fits = sum(self.configs) * args.k
        # a final fit trains on k/(k-1) times the data, maybe for more epochs than a fold's fit
        final = len(searches) * (args.final_epochs or args.epochs) / args.epochs * args.k / (args.k - 1)
        self.fits = fits + final
        self.progress = Progress(sum(self.configs), "cv", "config", enabled=not args.quiet, lines_on_bar=True)
        self.estimated = False
        self.name = ""

    def row(self, row: Any) -> None:
        p = self.progress
        if not self.estimated:
            self.estimated = True
            # the first configuration's k fits took ceil(k / jobs) rounds of the worker pool
            per_round = p.elapsed / math.ceil(self.k / max(1, min(self.jobs, self.k * self.configs[0])))
            total = per_round * math.ceil(self.fits / max(1, self.jobs))
            p.note(
                f"cv: {sum(self.configs)} configurations x {self.k} folds + {len(self.configs)} final fits; "
                f"the first configuration took {p.elapsed:.1f} s, so about {clock(total)} in all "
                f"({self.where})"
            )
        left = p.elapsed / (p.done + 1) * (p.total - p.done - 1)
        p.update(
            f"{self.name} {params_text(row.params)}: {row.mean_accuracy:.4f} +- {row.std_accuracy:.4f} "
            f"({clock(p.elapsed)} elapsed, about {clock(left)} left)"
        )


def _search(
    args: argparse.Namespace, data: Any, search: dict[str, str], clock_: _Clock, executor: Any = None
) -> dict[str, Any]:
    build = functools.partial(
        build_candidate,
        hidden=list(args.hidden),
        activation=search["activation"],
        loss=search["loss"],
        init=search["init"],
        gain=args.gain,
        optimizer=search["optimizer"],
        momentum=args.momentum,
        reduction=args.reduction,
    )
    clock_.name = search_name(search, args)
    start = time.perf_counter()
    table = nn.cross_validate(
        build,
        grid_for(search["optimizer"], args),
        data.train,
        k=args.k,
        jobs=args.jobs,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        callback=clock_.row,
        executor=executor,
        trace=not args.eager,
    )
    search_time = time.perf_counter() - start
    best = table.best
    torch.manual_seed(args.seed)
    model, loss_fn, opt = build(**best.params)
    epochs = args.final_epochs or args.epochs
    start = time.perf_counter()
    nn.fit(
        model, loss_fn, opt, data.train, epochs, args.batch_size, progress=False, seed=args.seed, trace=not args.eager
    )
    final_time = time.perf_counter() - start
    rows = [
        {
            "params": r.params,
            "mean_accuracy": r.mean_accuracy,
            "std_accuracy": r.std_accuracy,
            "fold_accuracies": list(r.fold_accuracies),
        }
        for r in table
    ]
    return {
        **search,
        "rows": rows,
        "best": rows[0],
        "test_accuracy": nn.evaluate(model, data.test).accuracy,
        "search_time_s": search_time,
        "final_fit_time_s": final_time,
    }


@contextlib.contextmanager
def _workers(args: argparse.Namespace) -> Iterator[Workers | None]:
    """The Dask or Ray cluster's executor for ``--scheduler``, else None (``--jobs`` local processes)."""
    if getattr(args, "scheduler", None) is None:
        yield None
        return
    with cluster_executor(args.scheduler, args.connect_timeout) as workers:
        yield workers


def run(args: argparse.Namespace) -> int:
    """Run every search asked for; print the grids and the summary (or JSON); write the plot and CSV.

    With ``--scheduler`` the fits run on that Dask or Ray cluster; a scheduler that cannot be used
    is one error line and exit status 2.
    """
    start = time.perf_counter()
    try:
        results, clock_ = _run_searches(args)
    except ClusterError as err:
        print(f"tapegrad cv: error: {err}", file=sys.stderr)
        return 2
    report = report_of(args, results, time.perf_counter() - start, clock_.jobs)
    if args.csv:
        write_csv(args.csv, cv_rows(report))
    if args.plot:
        from .figures import plot_cv

        plot_cv(report, args.plot)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_tables(args, report, clock_.where)
    return 0


def _run_searches(args: argparse.Namespace) -> tuple[list[dict[str, Any]], _Clock]:
    """Every search's result, on ``--jobs`` local processes or the ``--scheduler``'s cluster."""
    data = load_data(args.n_train, args.n_test, args.seed)
    searches = searches_of(args)
    clock_: _Clock | None = None
    try:
        with _workers(args) as workers:
            clock_ = _Clock(args, searches, workers)
            executor = workers.executor if workers is not None else None
            return [_search(args, data, s, clock_, executor) for s in searches], clock_
    finally:
        if clock_ is not None:
            clock_.progress.close()
