"""What `tapegrad cv` searches: the grid of each optimizer, the (loss, init, activation, optimizer)
searches asked for, and how the outputs name them."""

from __future__ import annotations

import argparse
import itertools

__all__ = ["KEYS", "grid_for", "searches_of", "search_name", "params_text"]

KEYS = ("lr", "eps", "beta1", "beta2")


def grid_for(optimizer: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """The grid searched for ``optimizer``: the learning rates, plus eps and betas for Adam."""
    if optimizer == "sgd":
        return {"lr": list(args.lrs)}
    return {"lr": list(args.lrs), "eps": list(args.epss), "beta1": list(args.beta1s), "beta2": list(args.beta2s)}


def searches_of(args: argparse.Namespace) -> list[dict[str, str]]:
    """Every (loss, init, activation, optimizer) search asked for, in the order they run."""
    combos = itertools.product(args.loss, args.init, args.activation, args.optimizer)
    return [dict(loss=lo, init=i, activation=a, optimizer=o) for lo, i, a, o in combos]


def search_name(search: dict[str, str], args: argparse.Namespace) -> str:
    """``relu/sgd``, with the loss and init when several are searched."""
    parts = [f"{search['activation']}/{search['optimizer']}"]
    if len(args.loss) > 1:
        parts.append(search["loss"])
    if len(args.init) > 1:
        parts.append(f"{search['init']} init")
    return " ".join(parts)


def params_text(params: dict[str, float]) -> str:
    """A configuration as the progress lines print it: ``lr=0.001 eps=1e-07 beta1=0.9 beta2=0.999``."""
    return " ".join(f"{k}={params[k]:.3g}" for k in KEYS if k in params)
