"""The settings of a training run as the commands show them: `describe` (one line) and `config_of`
(the ``--json`` config); `tapegrad train` and `tapegrad compare` share them."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from .common import sizes_of

__all__ = ["config_of", "describe"]


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a run, as they go into ``--json`` output."""
    return {
        "sizes": sizes_of(args.hidden),
        "activation": args.activation,
        "loss": args.loss,
        "reduction": args.reduction,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "betas": list(args.betas),
        "eps": args.eps,
        "init": args.init,
        "gain": args.gain,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "rounds": args.rounds,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "nproc": _world_size(getattr(args, "nproc", 1)),
    }


def _world_size(nproc: int) -> int:
    """The processes training together: the process group's size when there is one (torchrun), else ``nproc``."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else nproc


def describe(args: argparse.Namespace) -> str:
    """One line naming the network and the training settings."""
    out = "tanh" if args.loss != "ce" else "logits"
    opt = f"sgd lr={args.lr:g}" + (f" momentum={args.momentum:g}" if args.momentum else "")
    if args.optimizer == "adam":
        opt = f"adam lr={args.lr:g} betas=({args.betas[0]:g}, {args.betas[1]:g}) eps={args.eps:g}"
    loss = args.loss if args.reduction == "mean" else f"{args.loss} ({args.reduction})"
    nproc = _world_size(getattr(args, "nproc", 1))
    batch = f"batch {args.batch_size}" + (f" per process x {nproc} processes" if nproc > 1 else "")
    return (
        f"{'-'.join(map(str, sizes_of(args.hidden)))} {args.activation}/{out}, {loss}, {opt}, "
        f"{batch}, {args.epochs} epochs, {args.init} init (gain {args.gain:g})"
    )
