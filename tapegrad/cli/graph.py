"""`tapegrad graph`: the seed network's forward (and backward) pass as a graphviz picture."""

from __future__ import annotations

import argparse
import json
import sys

import torch

import viz

from .common import build_loss, build_model, load_data, sizes_of

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Record one batch of the seed network and its loss on a tape and save its picture to ``--out``."""
    data = load_data(max(args.batch_size, 2), 2, args.seed)
    torch.manual_seed(args.seed)
    model = build_model(args.hidden, args.activation, args.loss, args.init, args.gain)
    x, y = data.train[0][: args.batch_size], data.train[1][: args.batch_size]
    title = f"{'-'.join(map(str, sizes_of(args.hidden)))} {args.activation}, {args.loss} loss, batch {args.batch_size}"
    graph = viz.draw_model(
        model,
        x,
        y,
        build_loss(args.loss, args.reduction),
        backward=args.backward,
        title=title + (", gradient norms" if args.backward else ""),
    )
    try:
        viz.save(graph, args.out)
    except viz.GraphvizNotFoundError as err:
        print(f"tapegrad graph: error: {err}", file=sys.stderr)
        return 1
    if args.json:
        names = ("activation", "loss", "init", "gain", "batch_size", "seed", "backward")
        config = {"sizes": sizes_of(args.hidden), **{name: getattr(args, name) for name in names}}
        print(json.dumps({"command": "graph", "config": config, "outputs": [args.out]}, indent=2))
    elif not args.quiet:
        print(f"wrote {args.out}")
    return 0
