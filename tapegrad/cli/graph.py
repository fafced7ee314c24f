"""`tapegrad graph`: the seed network's forward (and backward) pass as a graphviz picture."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import torch

import tapegrad as tg
import tapegrad.viz as viz

from .common import build_loss, build_model, load_data, sizes_of

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Record one batch of the seed network and its loss on a tape; save its picture to ``--out`` (if any)."""
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
    outputs = [args.out] if args.out is not None else []
    try:
        for out in outputs:
            viz.save(graph, out)
    except viz.GraphvizNotFoundError as err:
        print(f"tapegrad graph: error: {err}", file=sys.stderr)
        return 1
    explained = explanation(model, x, y, build_loss(args.loss)) if args.explain else None
    if args.json:
        names = ("activation", "loss", "init", "gain", "batch_size", "seed", "backward")
        config = {"sizes": sizes_of(args.hidden), **{name: getattr(args, name) for name in names}}
        result: dict[str, Any] = {"command": "graph", "config": config, "outputs": outputs}
        if explained is not None:
            result["explanation"] = [dict(zip(viz.Explanation.HEADER, row)) for row in explained.rows()]
        print(json.dumps(result, indent=2))
        return 0
    if not args.quiet and outputs:
        print(f"wrote {args.out}")
    if explained is not None:
        print(explained)
    return 0


def explanation(model: Callable[[Any], Any], x: Any, y: Any, loss_fn: Callable[[Any, Any], Any]) -> viz.Explanation:
    """The reverse sweep of one batch through the model and its loss, step by step."""
    x = x if isinstance(x, tg.Tensor) else tg.Tensor(x)
    with tg.Tape() as tape:
        loss = loss_fn(model(x), y)
    names = {"input": x, "loss": loss, **({"target": y} if isinstance(y, tg.Tensor) else {})}
    return viz.explain(tape, loss, names=names, params=model, call_sites=False)
