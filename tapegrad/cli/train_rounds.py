"""The rounds of `tapegrad train`: each trains the seed network from its own seed (`train_round`);
the main process then writes the plots and the checkpoint of round 0 and prints the table (or JSON)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch

import tapegrad.nn as nn
from tapegrad.progress import Progress

from .common import build_loss, build_model, build_optimizer, load_data, mean_std, progress_enabled, round_seed
from .train_settings import config_of, describe

__all__ = ["run_rounds", "train_round", "diverged"]

SUMMARY_KEYS = ("test_error_rate", "test_accuracy", "train_error_rate", "train_time_s")


def train_round(
    args: argparse.Namespace, r: int, curves: bool, bar: bool, parallel: bool = False
) -> tuple[dict[str, Any], Any, Any, Any]:
    """Round ``r``: fresh data and weights from its seed, `nn.fit`, test evaluation.

    With ``parallel`` (inside a torch.distributed process group) the model is wrapped in
    `nn.parallel.DistributedDataParallel` and each process trains on its `DistributedSampler`
    shard. Returns (the round's numbers, the model, the data, the history).
    """
    seed = round_seed(args.seed, r)
    data = load_data(args.n_train, args.n_test, seed)
    torch.manual_seed(seed)
    model = build_model(args.hidden, args.activation, args.loss, args.init, args.gain)
    loss_fn = build_loss(args.loss, args.reduction)
    net = nn.parallel.DistributedDataParallel(model) if parallel else model
    sampler = nn.data.DistributedSampler(data.train, seed=seed) if parallel else None
    opt = build_optimizer(args.optimizer, net.parameters(), args.lr, args.momentum, tuple(args.betas), args.eps)
    history = nn.fit(
        net,
        loss_fn,
        opt,
        data.train,
        args.epochs,
        args.batch_size,
        val_data=data.test if curves else None,
        progress=bar,
        seed=seed,
        sampler=sampler,
    )
    test = nn.evaluate(model, data.test, loss_fn)
    train = nn.evaluate(model, data.train, loss_fn)
    numbers = {
        "round": r,
        "seed": seed,
        "train_error_rate": train.error_rate,
        "train_loss": train.loss,
        "test_error_rate": test.error_rate,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "train_time_s": sum(history.epoch_time),
    }
    return numbers, model, data, history


def run_rounds(args: argparse.Namespace, parallel: bool = False) -> int:
    """Train every round; the main process (rank 0 of a parallel run) prints and writes the outputs."""
    main = nn.parallel.is_main_process()
    trained = _train_rounds(args, parallel, main)
    if trained is None:
        return 1
    if not main:
        return 0
    rounds, (model, data, history) = trained
    summary = {key: mean_std([n[key] for n in rounds]) for key in SUMMARY_KEYS}
    written = _write_outputs(args, rounds[0], model, data, history)
    if args.json:
        out = {
            "command": "train",
            "config": config_of(args),
            "rounds": rounds,
            "summary": summary,
            "history": history.as_dict(),
            "outputs": written,
        }
        print(json.dumps(out, indent=2))
    elif args.quiet:
        print(_summary_line(summary, len(rounds)))
    else:
        _print_table(args, rounds, summary, written)
    return 0


def _train_rounds(
    args: argparse.Namespace, parallel: bool, main: bool
) -> tuple[list[dict[str, Any]], tuple[Any, Any, Any]] | None:
    """Every round's numbers and round 0's (model, data, history); None when a round diverged (the main
    process says where on stderr: every rank of a parallel run diverges alike)."""
    show = progress_enabled(args) and main
    rounds: list[dict[str, Any]] = []
    first: tuple[Any, Any, Any] | None = None
    shown = Progress(args.rounds, "rounds", "round", enabled=show and args.rounds > 1)
    try:
        for r in range(args.rounds):
            numbers, model, data, history = train_round(
                args, r, curves=r == 0, bar=show and args.rounds == 1, parallel=parallel
            )
            shown.update(f"round {r}: test error rate {numbers['test_error_rate']:.2%}")
            losses = history.loss + [numbers["test_loss"]]
            where = diverged(losses)
            if where is not None:
                epoch = f"epoch {where + 1}" if where < len(history.loss) else "the test evaluation"
                if main:
                    print(
                        f"tapegrad train: error: training diverged: the loss became {losses[where]:g} in {epoch} "
                        f"of round {r} (try a smaller --lr)",
                        file=sys.stderr,
                    )
                return None
            rounds.append(numbers)
            if r == 0:
                first = (model, data, history)
    finally:
        shown.close()
    assert first is not None  # --rounds is at least 1
    return rounds, first


def _write_outputs(args: argparse.Namespace, first: dict[str, Any], model: Any, data: Any, history: Any) -> list[str]:
    """Round 0's curves, decision regions and checkpoint, where asked for; the paths written."""
    from .plots import plot_boundary, plot_curves

    written = []
    if args.plot:
        plot_curves(history, args.plot, title=describe(args))
        written.append(args.plot)
    if args.boundary:
        title = f"decision regions, test error {100 * first['test_error_rate']:.2f}%"
        plot_boundary(model, data.raw_train_x, data.raw_test_x, data.test[1], args.boundary, title=title)
        written.append(args.boundary)
    if args.save:
        nn.save(model, args.save)
        written.append(args.save)
    return written


def _print_table(
    args: argparse.Namespace, rounds: list[dict[str, Any]], summary: dict[str, Any], written: list[str]
) -> None:
    print(f"tapegrad train: {describe(args)}")
    print(f"{'round':>5} {'seed':>6} {'train err':>10} {'test err':>9} {'test loss':>10} {'time (s)':>9}")
    for n in rounds:
        print(
            f"{n['round']:5d} {n['seed']:6d} {100 * n['train_error_rate']:9.2f}% {100 * n['test_error_rate']:8.2f}%"
            f" {n['test_loss']:10.4f} {n['train_time_s']:9.2f}"
        )
    print(_summary_line(summary, len(rounds)))
    for path in written:
        print(f"wrote {path}")


def diverged(losses: list[float]) -> int | None:
    """The index of the first loss that is NaN or infinite, or None."""
    return next((i for i, loss in enumerate(losses) if not math.isfinite(loss)), None)


def _summary_line(summary: dict[str, dict[str, float]], n: int) -> str:
    err, t = summary["test_error_rate"], summary["train_time_s"]
    return (
        f"test error rate {100 * err['mean']:.2f}% (std {err['std']:.2e}) over {n} round{'s' * (n > 1)}; "
        f"training time {t['mean']:.2f} s (std {t['std']:.2e})"
    )
