"""`tapegrad compare`: seed 002's Table I, tapegrad against PyTorch on the same weights and data."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

import tapegrad.nn as nn
from tapegrad.progress import Progress, clock

from . import baseline
from .common import (
    build_loss,
    build_model,
    build_optimizer,
    load_data,
    mean_std,
    output_activation,
    round_seed,
    sizes_of,
)
from .export import compare_rows, machine, write_csv
from .train_settings import config_of, describe

__all__ = ["run", "compare_round", "initial_models", "rounds_table", "summary_of", "summary_table"]


def initial_models(args: argparse.Namespace, seed: int) -> tuple[Any, Any]:
    """The round's tapegrad network and its PyTorch twin, before training.

    ``--torch-init same`` loads tapegrad's initial weights into the PyTorch network;
    ``torch-default`` keeps PyTorch's own default initialisation, drawn from ``seed``.
    """
    torch.manual_seed(seed)
    model = build_model(args.hidden, args.activation, args.loss, args.init, args.gain)
    torch.manual_seed(seed)
    ref = baseline.build_model(sizes_of(args.hidden), args.activation, output_activation(args.loss))
    if args.torch_init == "same":
        ref.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    return model, ref


def compare_round(args: argparse.Namespace, r: int) -> dict[str, Any]:
    """One round: the same data and batch order for both; error rate and training time.

    Each side's training time is its wall time and its CPU time (the process time while that side
    trains: on a shared machine other jobs stretch the first, hardly the second).
    With ``--torch-init same`` PyTorch starts from tapegrad's initial weights, so the two error
    rates agree and only the frameworks differ; with ``torch-default`` it draws its own default
    initialisation (as seed 002's PyTorch run did), so the error rates compare the recipes. The
    side that trains first alternates between rounds, so a noisy neighbour on the machine does
    not always slow the same one.
    """

    seed = round_seed(args.seed, r)
    data = load_data(args.n_train, args.n_test, seed)
    model, ref = initial_models(args, seed)
    betas = tuple(args.betas)

    def ours() -> tuple[float, float, float]:
        opt = build_optimizer(args.optimizer, model.parameters(), args.lr, args.momentum, betas, args.eps)
        loss_fn = build_loss(args.loss, args.reduction)
        history = nn.fit(model, loss_fn, opt, data.train, args.epochs, args.batch_size, progress=False, seed=seed)
        error = nn.evaluate(model, data.test).error_rate
        assert error is not None  # the disk data has class labels
        return error, sum(history.epoch_time), sum(history.epoch_cpu_time)

    def theirs() -> tuple[float, float, float]:
        opt = baseline.make_optimizer(args.optimizer, ref.parameters(), args.lr, args.momentum, betas, args.eps)
        raw = lambda d: (d[0].data, d[1].data)  # noqa: E731
        result = baseline.train(
            ref, args.loss, opt, raw(data.train), raw(data.test), args.epochs, args.batch_size, seed, args.reduction
        )
        return result.error_rate, result.train_time, result.train_cpu_time

    if r % 2 == 0:
        (err, t, cpu), (ref_err, ref_t, ref_cpu) = ours(), theirs()
    else:
        (ref_err, ref_t, ref_cpu), (err, t, cpu) = theirs(), ours()
    return {
        "round": r,
        "seed": seed,
        "tapegrad_error_rate": err,
        "tapegrad_time_s": t,
        "tapegrad_cpu_s": cpu,
        "torch_error_rate": ref_err,
        "torch_time_s": ref_t,
        "torch_cpu_s": ref_cpu,
    }


def run(args: argparse.Namespace) -> int:
    """Run the rounds and print the table (or JSON)."""
    start = time.perf_counter()
    rounds = _run_rounds(args)
    summary = summary_of(rounds)
    config = {**config_of(args), "torch_init": args.torch_init}
    report = {
        "command": "compare",
        "config": config,
        "rounds": rounds,
        "summary": summary,
        "wall_time_s": time.perf_counter() - start,
        "machine": machine(),
    }
    if args.csv:
        write_csv(args.csv, compare_rows(report))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if not args.quiet:
        print(
            f"tapegrad compare: {describe(args)}, PyTorch init {args.torch_init}, "
            f"{args.rounds} round{'s' * (args.rounds > 1)}, "
            f"{torch.get_num_threads()} thread{'s' * (torch.get_num_threads() > 1)}"
        )
        print(rounds_table(rounds))
        print()
    print(summary_table(summary))
    return 0


def _run_rounds(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every round's `compare_round`, with a progress line each."""
    bar = Progress(args.rounds, "compare", "round", enabled=not args.quiet)
    rounds = []
    try:
        for r in range(args.rounds):
            n = compare_round(args, r)
            rounds.append(n)
            bar.update(
                f"round {r}: tapegrad {100 * n['tapegrad_error_rate']:.2f}% {n['tapegrad_time_s']:.2f} s "
                f"(CPU {n['tapegrad_cpu_s']:.2f} s), PyTorch {100 * n['torch_error_rate']:.2f}% "
                f"{n['torch_time_s']:.2f} s (CPU {n['torch_cpu_s']:.2f} s) ({clock(bar.elapsed)} elapsed)"
            )
    finally:
        bar.close()
    return rounds


def summary_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std of each side's error rate, wall and CPU time; tapegrad's time over PyTorch's."""
    summary: dict[str, Any] = {
        side: {
            "error_rate": mean_std([n[f"{side}_error_rate"] for n in rounds]),
            "train_time_s": mean_std([n[f"{side}_time_s"] for n in rounds]),
            "train_cpu_s": mean_std([n[f"{side}_cpu_s"] for n in rounds]),
        }
        for side in ("tapegrad", "torch")
    }
    summary["time_ratio"] = summary["tapegrad"]["train_time_s"]["mean"] / summary["torch"]["train_time_s"]["mean"]
    # each round's two runs are minutes apart at most, so their ratio shrugs off a machine busy for a while
    summary["time_ratio_median"] = statistics.median(n["tapegrad_time_s"] / n["torch_time_s"] for n in rounds)
    summary["cpu_ratio"] = summary["tapegrad"]["train_cpu_s"]["mean"] / max(
        summary["torch"]["train_cpu_s"]["mean"], 1e-9
    )
    return summary


def summary_table(summary: dict[str, Any]) -> str:
    """The summary as printed: each side's means and stds, then the time ratios."""
    lines = [
        f"{'':10} {'error rate':>20} {'training time (wall)':>22} {'CPU time':>22}",
        f"{'':10} {'mean':>10} {'std':>9} {'mean':>12} {'std':>9} {'mean':>12} {'std':>9}",
    ]
    for side, name in (("tapegrad", "tapegrad"), ("torch", "PyTorch")):
        e, t, c = summary[side]["error_rate"], summary[side]["train_time_s"], summary[side]["train_cpu_s"]
        lines.append(
            f"{name:10} {100 * e['mean']:9.2f}% {e['std']:9.2e} {t['mean']:11.2f}s {t['std']:9.2e}"
            f" {c['mean']:11.2f}s {c['std']:9.2e}"
        )
    lines.append(
        f"time ratio tapegrad / PyTorch: {summary['time_ratio']:.2f} wall (of the means), "
        f"{summary['time_ratio_median']:.2f} (median of the rounds' ratios), {summary['cpu_ratio']:.2f} CPU time"
    )
    return "\n".join(lines)


def rounds_table(rounds: list[dict[str, Any]]) -> str:
    """The per-round table: error rates, wall and CPU seconds of each side (CPU '-' in old reports)."""
    lines = [
        f"{'round':>5} {'tapegrad err':>13} {'torch err':>10} {'tapegrad s':>11} {'torch s':>8}"
        f" {'tapegrad cpu s':>15} {'torch cpu s':>12}"
    ]
    for n in rounds:
        cpu = [f"{n[k]:.2f}" if k in n else "-" for k in ("tapegrad_cpu_s", "torch_cpu_s")]
        lines.append(
            f"{n['round']:5d} {100 * n['tapegrad_error_rate']:12.2f}% {100 * n['torch_error_rate']:9.2f}%"
            f" {n['tapegrad_time_s']:11.2f} {n['torch_time_s']:8.2f} {cpu[0]:>15} {cpu[1]:>12}"
        )
    return "\n".join(lines)
