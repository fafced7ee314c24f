"""`tapegrad compare`: seed 002's Table I, tapegrad against PyTorch on the same weights and data."""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import torch

import tapegrad.nn as nn

from . import baseline
from .common import (
    build_loss,
    build_model,
    build_optimizer,
    load_data,
    mean_std,
    output_activation,
    progress,
    progress_enabled,
    round_seed,
    sizes_of,
)
from .train import config_of, describe

__all__ = ["run", "compare_round"]


def compare_round(args: argparse.Namespace, r: int) -> dict[str, Any]:
    """One round: the same data, initial weights and batch order for both; error rate and training time.

    The side that trains first alternates between rounds, so a noisy neighbour on the machine
    does not always slow the same one.
    """

    seed = round_seed(args.seed, r)
    data = load_data(args.n_train, args.n_test, seed)
    torch.manual_seed(seed)
    model = build_model(args.hidden, args.activation, args.loss, args.init, args.gain)
    ref = baseline.build_model(sizes_of(args.hidden), args.activation, output_activation(args.loss))
    ref.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    betas = tuple(args.betas)

    def ours() -> tuple[float, float]:
        opt = build_optimizer(args.optimizer, model.parameters(), args.lr, args.momentum, betas, args.eps)
        history = nn.fit(
            model, build_loss(args.loss), opt, data.train, args.epochs, args.batch_size, progress=False, seed=seed
        )
        return nn.evaluate(model, data.test).error_rate, sum(history.epoch_time)

    def theirs() -> tuple[float, float]:
        opt = baseline.make_optimizer(args.optimizer, ref.parameters(), args.lr, args.momentum, betas, args.eps)
        raw = lambda d: (d[0].data, d[1].data)  # noqa: E731
        result = baseline.train(
            ref, args.loss, opt, raw(data.train), raw(data.test), args.epochs, args.batch_size, seed
        )
        return result.error_rate, result.train_time

    if r % 2 == 0:
        (err, t), (ref_err, ref_t) = ours(), theirs()
    else:
        (ref_err, ref_t), (err, t) = theirs(), ours()
    return {
        "round": r,
        "seed": seed,
        "tapegrad_error_rate": err,
        "tapegrad_time_s": t,
        "torch_error_rate": ref_err,
        "torch_time_s": ref_t,
    }


def run(args: argparse.Namespace) -> int:
    """Run the rounds and print the table (or JSON)."""
    show = progress_enabled(args)
    rounds = [compare_round(args, r) for r in progress(range(args.rounds), show, desc="rounds", unit="round")]
    summary: dict[str, Any] = {
        side: {
            "error_rate": mean_std([n[f"{side}_error_rate"] for n in rounds]),
            "train_time_s": mean_std([n[f"{side}_time_s"] for n in rounds]),
        }
        for side in ("tapegrad", "torch")
    }
    summary["time_ratio"] = summary["tapegrad"]["train_time_s"]["mean"] / summary["torch"]["train_time_s"]["mean"]
    # each round's two runs are minutes apart at most, so their ratio shrugs off a machine busy for a while
    summary["time_ratio_median"] = statistics.median(n["tapegrad_time_s"] / n["torch_time_s"] for n in rounds)
    if args.json:
        print(
            json.dumps(
                {"command": "compare", "config": config_of(args), "rounds": rounds, "summary": summary}, indent=2
            )
        )
        return 0
    if not args.quiet:
        print(
            f"tapegrad compare: {describe(args)}, {args.rounds} round{'s' * (args.rounds > 1)}, "
            f"{torch.get_num_threads()} thread{'s' * (torch.get_num_threads() > 1)}"
        )
        print(f"{'round':>5} {'tapegrad err':>13} {'torch err':>10} {'tapegrad s':>11} {'torch s':>8}")
        for n in rounds:
            print(
                f"{n['round']:5d} {100 * n['tapegrad_error_rate']:12.2f}% {100 * n['torch_error_rate']:9.2f}%"
                f" {n['tapegrad_time_s']:11.2f} {n['torch_time_s']:8.2f}"
            )
        print()
    print(f"{'':10} {'error rate':>20} {'training time':>22}")
    print(f"{'':10} {'mean':>10} {'std':>9} {'mean':>12} {'std':>9}")
    for side, name in (("tapegrad", "tapegrad"), ("torch", "PyTorch")):
        e, t = summary[side]["error_rate"], summary[side]["train_time_s"]
        print(f"{name:10} {100 * e['mean']:9.2f}% {e['std']:9.2e} {t['mean']:11.2f}s {t['std']:9.2e}")
    print(
        f"time ratio tapegrad / PyTorch: {summary['time_ratio']:.2f} (of the means), "
        f"{summary['time_ratio_median']:.2f} (median of the rounds' ratios)"
    )
    return 0
