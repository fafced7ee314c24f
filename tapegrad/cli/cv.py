"""`tapegrad cv`: seed 000's cross-validated grid search (their Table I ranges), then a test score.

For each activation and optimizer asked for, every configuration of the grid is trained on
k-1 folds of the training set and scored on the held-out fold (`nn.cross_validate`); the best
one is retrained on the whole training set and scored on the test set: seed 000's Table II
(best values per optimizer) and Figure 1 (accuracy per activation and optimizer).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from collections.abc import Iterator
from typing import Any

import torch

import nn

from .cluster import ClusterError, dask_executor
from .common import build_loss, build_model, build_optimizer, load_data, progress_enabled, sizes_of

__all__ = ["run", "grid_for", "build_candidate"]


def grid_for(optimizer: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """The grid searched for ``optimizer``: the learning rates, plus eps and betas for Adam."""
    if optimizer == "sgd":
        return {"lr": list(args.lrs)}
    return {"lr": list(args.lrs), "eps": list(args.epss), "beta1": list(args.beta1s), "beta2": list(args.beta2s)}


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
):
    """(model, loss, optimizer) of one grid configuration; module level, so worker processes can unpickle it."""
    model = build_model(hidden, activation, loss, init, gain)
    opt = build_optimizer(optimizer, model.parameters(), lr, momentum, (beta1, beta2), eps)
    return model, build_loss(loss), opt


def _search(
    args: argparse.Namespace, data: Any, activation: str, optimizer: str, show: bool, executor: Any = None
) -> dict[str, Any]:
    build = functools.partial(
        build_candidate,
        hidden=list(args.hidden),
        activation=activation,
        loss=args.loss,
        init=args.init,
        gain=args.gain,
        optimizer=optimizer,
        momentum=args.momentum,
    )
    table = nn.cross_validate(
        build,
        grid_for(optimizer, args),
        data.train,
        k=args.k,
        jobs=args.jobs,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        progress=show,
        executor=executor,
    )
    best = table.best
    torch.manual_seed(args.seed)
    model, loss_fn, opt = build(**best.params)
    epochs = args.final_epochs or args.epochs
    nn.fit(model, loss_fn, opt, data.train, epochs, args.batch_size, progress=False, seed=args.seed)
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
        "activation": activation,
        "optimizer": optimizer,
        "rows": rows,
        "best": rows[0],
        "test_accuracy": nn.evaluate(model, data.test).accuracy,
    }


@contextlib.contextmanager
def _executor(args: argparse.Namespace) -> Iterator[Any]:
    """The Dask cluster's executor for ``--scheduler``, else None (``--jobs`` local processes)."""
    if getattr(args, "scheduler", None) is None:
        yield None
        return
    with dask_executor(args.scheduler, args.connect_timeout) as executor:
        yield executor


def _fmt(params: dict[str, float], key: str) -> str:
    return f"{params[key]:.3g}" if key in params else "-"


def run(args: argparse.Namespace) -> int:
    """Search every (activation, optimizer) pair asked for; print the grids and the summary (or JSON).

    With ``--scheduler`` the fits run on that Dask cluster; a scheduler that cannot be used is
    one error line and exit status 2.
    """
    data = load_data(args.n_train, args.n_test, args.seed)
    show = progress_enabled(args)
    try:
        with _executor(args) as executor:
            pairs = [(act, opt) for act in args.activation for opt in args.optimizer]
            results = [_search(args, data, act, opt, show, executor) for act, opt in pairs]
    except ClusterError as err:
        print(f"tapegrad cv: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        config = {
            "sizes": sizes_of(args.hidden),
            "activations": args.activation,
            "optimizers": args.optimizer,
            "loss": args.loss,
            "init": args.init,
            "gain": args.gain,
            "epochs": args.epochs,
            "final_epochs": args.final_epochs or args.epochs,
            "batch_size": args.batch_size,
            "k": args.k,
            "jobs": args.jobs,
            "scheduler": getattr(args, "scheduler", None),
            "seed": args.seed,
            "n_train": args.n_train,
            "n_test": args.n_test,
            "grid": {opt: grid_for(opt, args) for opt in args.optimizer},
        }
        print(json.dumps({"command": "cv", "config": config, "results": results}, indent=2))
        return 0
    keys = ("lr", "eps", "beta1", "beta2")
    if not args.quiet:
        for res in results:
            print(
                f"{res['activation']} / {res['optimizer']}: {len(res['rows'])} configurations, {args.k} folds, "
                f"{args.epochs} epochs (best {min(args.top, len(res['rows']))} by mean accuracy)"
            )
            print(f"  {'mean acc':>8} {'std':>7}  " + " ".join(f"{k:>7}" for k in keys))
            for row in res["rows"][: args.top]:
                cells = " ".join(f"{_fmt(row['params'], k):>7}" for k in keys)
                print(f"  {row['mean_accuracy']:8.4f} {row['std_accuracy']:7.4f}  {cells}")
            print()
    final = args.final_epochs or args.epochs
    print(f"best configurations; test accuracy after {final} epochs on all {args.n_train} training points")
    print(f"{'activation':10} {'optimizer':9} " + " ".join(f"{k:>7}" for k in keys) + f" {'cv acc':>8} {'test acc':>8}")
    for res in results:
        best = res["best"]
        cells = " ".join(f"{_fmt(best['params'], k):>7}" for k in keys)
        print(
            f"{res['activation']:10} {res['optimizer']:9} {cells} {best['mean_accuracy']:8.4f} "
            f"{res['test_accuracy']:8.4f}"
        )
    return 0
