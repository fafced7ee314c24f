"""Before a run starts: the optional packages its options need, so a missing one fails in a second.

Without this check, ``tapegrad train --plot curves.png`` without matplotlib would train for
minutes and only then fail to draw; the error names the extra to install.
"""

from __future__ import annotations

import argparse
import importlib.util

from tapegrad._optional import EXTRAS, MissingExtraError

__all__ = ["needed_packages", "check_extras"]


def needed_packages(args: argparse.Namespace) -> dict[str, str]:
    """The optional packages that the parsed ``args`` need, each with the option that needs it."""
    need: dict[str, str] = {}
    if args.command == "graph":
        need["graphviz"] = "tapegrad graph"
    for option in ("plot", "boundary"):
        if getattr(args, option, None):
            need["matplotlib"] = f"tapegrad {args.command} --{option}"
    return need


def check_extras(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error naming the extra when an option needs a package that is missing."""
    for package, feature in needed_packages(args).items():
        if package in EXTRAS and importlib.util.find_spec(package) is None:
            parser.error(str(MissingExtraError(package, feature)))
