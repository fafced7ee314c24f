"""The outputs of `tapegrad cv`: the ``--json`` document, and the tables it prints (the best
configurations of each search, then the best of each search with its test accuracy)."""

from __future__ import annotations

import argparse
from typing import Any

from tapegrad.progress import clock

from .common import sizes_of
from .cv_grid import KEYS, grid_for, search_name
from .export import machine

__all__ = ["report_of", "print_tables"]


def report_of(args: argparse.Namespace, results: list[dict[str, Any]], wall: float, parallel: int) -> dict[str, Any]:
    """The ``--json`` document: the settings, one result per search, the wall time and the machine.

    ``parallel`` is how many fits ran at once (``--jobs``, or the cluster's workers under ``--scheduler``).
    """
    config = {
        "sizes": sizes_of(args.hidden),
        "activations": args.activation,
        "optimizers": args.optimizer,
        "losses": args.loss,
        "inits": args.init,
        "reduction": args.reduction,
        "gain": args.gain,
        "momentum": args.momentum,
        "epochs": args.epochs,
        "final_epochs": args.final_epochs or args.epochs,
        "batch_size": args.batch_size,
        "k": args.k,
        "jobs": args.jobs,
        "parallel_fits": parallel,
        "traced": not args.eager,
        "scheduler": getattr(args, "scheduler", None),
        "seed": args.seed,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "grid": {opt: grid_for(opt, args) for opt in args.optimizer},
    }
    return {
        "command": "cv",
        "config": config,
        "results": results,
        "wall_time_s": wall,
        "machine": machine(),
    }


def print_tables(args: argparse.Namespace, report: dict[str, Any], where: str) -> None:
    """The searches' tables (unless ``--quiet``), the summary of the best, the wall time and the files written;
    ``where`` says what ran the fits."""
    results = report["results"]
    if not args.quiet:
        for res in results:
            _print_search(args, res)
    _print_best(args, results)
    if not args.quiet:
        print(f"wall time {clock(report['wall_time_s'])} ({where})")
        for path in (args.plot, args.csv):
            if path:
                print(f"wrote {path}")


def _print_search(args: argparse.Namespace, res: dict[str, Any]) -> None:
    print(
        f"{search_name(res, args)}: {len(res['rows'])} configurations, {args.k} folds, "
        f"{args.epochs} epochs (best {min(args.top, len(res['rows']))} by mean accuracy)"
    )
    print(f"  {'mean acc':>8} {'std':>7}  " + " ".join(f"{k:>7}" for k in KEYS))
    for row in res["rows"][: args.top]:
        cells = " ".join(f"{_fmt(row['params'], k):>7}" for k in KEYS)
        print(f"  {row['mean_accuracy']:8.4f} {row['std_accuracy']:7.4f}  {cells}")
    print()


def _print_best(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    final = args.final_epochs or args.epochs
    print(f"best configurations; test accuracy after {final} epochs on all {args.n_train} training points")
    extra = [c for c, many in (("loss", len(args.loss) > 1), ("init", len(args.init) > 1)) if many]
    print(
        f"{'activation':10} {'optimizer':9} "
        + "".join(f"{c:8} " for c in extra)
        + " ".join(f"{k:>7}" for k in KEYS)
        + f" {'cv acc':>8} {'test acc':>8}"
    )
    for res in results:
        best = res["best"]
        cells = " ".join(f"{_fmt(best['params'], k):>7}" for k in KEYS)
        print(
            f"{res['activation']:10} {res['optimizer']:9} "
            + "".join(f"{res[c]:8} " for c in extra)
            + f"{cells} {best['mean_accuracy']:8.4f} {res['test_accuracy']:8.4f}"
        )


def _fmt(params: dict[str, float], key: str) -> str:
    return f"{params[key]:.3g}" if key in params else "-"
