"""The `tapegrad` command: ``train``, ``cv``, ``compare``, ``graph`` and ``bench`` (also ``python -m tapegrad``).

This module parses and checks the arguments; the work is in the sibling modules of
`tapegrad.cli` (the application layer: the only part of tapegrad that imports nn and viz; ``import
tapegrad`` never loads it). Every bad argument,
including an output path that cannot be written, ends with one line on stderr and exit
status 2 before any training starts; an error while a command runs is one line and exit
status 1 (`tapegrad.cli.guard`), with ``--debug`` for its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import cast

from .args import Parser, check_output
from .extras import check_extras
from .guard import guarded
from .parser import GRAPH_SUFFIXES, PLOT_SUFFIXES, QUICK_CV, build_parser

__all__ = ["main"]


def _subparser(parser: Parser, command: str) -> Parser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return cast(Parser, action._name_parser_map[command])  # made with parser_class=Parser


def _check(parser: Parser, args: argparse.Namespace) -> None:
    sub = _subparser(parser, args.command)  # the subcommand's parser, for its prog
    if args.command == "train":
        check_output(sub, "--plot", args.plot, PLOT_SUFFIXES)
        check_output(sub, "--boundary", args.boundary, PLOT_SUFFIXES)
        check_output(sub, "--save", args.save, None)
        if args.nproc > 1 and args.n_train % args.nproc:
            sub.error(
                f"--nproc {args.nproc} does not divide --n-train {args.n_train}: every process needs an equal share"
            )
    if args.command == "graph":
        if args.out is None and not args.explain:
            args.out = "graph.svg"
        if args.out is not None:
            check_output(sub, "--out", args.out, GRAPH_SUFFIXES)
    if args.command == "cv" and args.k > args.n_train:
        sub.error(f"--k {args.k}: more folds than training points (--n-train {args.n_train})")
    if args.command == "cv":
        check_output(sub, "--plot", args.plot, PLOT_SUFFIXES)
    if args.command in ("cv", "compare"):
        check_output(sub, "--csv", args.csv, (".csv",))
    if args.command == "cv" and args.scheduler and args.jobs > 1:
        sub.error("--jobs and --scheduler exclude each other (the cluster's workers run the fits)")


def _bench(argv: list[str]) -> int:
    from . import bench  # torch's nn and optim are loaded only for this command

    return guarded("bench", "--debug" in argv, lambda: int(bench.main(argv) or 0))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `tapegrad` command with ``argv`` (default: the process arguments); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "cv" and args.quick:  # the small grid as defaults: options given beside --quick win
        _subparser(parser, "cv").set_defaults(**QUICK_CV)
        args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose a command: train, cv, compare, graph or bench (see tapegrad --help)")
    _check(parser, args)
    check_extras(_subparser(parser, args.command), args)
    if hasattr(args, "threads"):
        import torch

        torch.set_num_threads(args.threads)
    from importlib import import_module

    command = import_module(f"tapegrad.cli.{args.command}")
    return guarded(args.command, args.debug, lambda: command.run(args))
