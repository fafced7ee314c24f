"""Argument types and checks of the `tapegrad` command: every bad value becomes one line and exit 2.

Each type raises `argparse.ArgumentTypeError`, which `Parser.error` prints as a single line
(``tapegrad train: error: argument --epochs: expected a positive integer, got '-1'``).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "Parser",
    "positive_int",
    "positive_float",
    "nonnegative_float",
    "unit_float",
    "natural_int",
    "at_least_two",
    "width_int",
    "sample_count",
    "seed_int",
    "thread_count",
    "comma_list",
    "one_of",
    "hidden_sizes",
    "beta_pair",
    "check_output",
    "scheduler_address",
]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``tapegrad train: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` on one line to stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _number(
    kind: Callable[[str], Any],
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):  # inf, nan, 1e999: training would run to NaN
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r} (not a finite number)")
        if (low is not None and (value < low or (low_open and value == low))) or (
            high is not None and (value > high or (high_open and value == high))
        ):
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


positive_int = _number(int, "a positive integer", low=1)
positive_float = _number(float, "a positive number", low=0, low_open=True)
nonnegative_float = _number(float, "a number >= 0", low=0)
unit_float = _number(float, "a number in [0, 1)", low=0, high=1, high_open=True)
natural_int = _number(int, "an integer >= 0", low=0)
at_least_two = _number(int, "an integer >= 2", low=2)
MAX_WIDTH = 16384  # a 16384 x 16384 float32 weight is 1 GiB; wider layers fail in torch.empty
MAX_SAMPLES = 100_000_000
MAX_SEED = 2**32 - 1
MAX_THREADS = 1024
width_int = _number(int, f"a width between 1 and {MAX_WIDTH}", low=1, high=MAX_WIDTH)
sample_count = _number(int, f"a number of points between 1 and {MAX_SAMPLES}", low=1, high=MAX_SAMPLES)
seed_int = _number(int, f"a seed between 0 and {MAX_SEED}", low=0, high=MAX_SEED)
thread_count = _number(int, f"a number of threads between 1 and {MAX_THREADS}", low=1, high=MAX_THREADS)


def comma_list(item: Callable[[str], Any], what: str) -> Callable[[str], list[Any]]:
    """An argument type for comma-separated values, each parsed by ``item``."""

    def parse(text: str) -> list[Any]:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"expected {what}, comma-separated (like 25,25,25), got {text!r}")
        return [item(p) for p in parts]

    parse.__name__ = what
    return parse


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """An argument type for one name out of ``choices``."""

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"unknown {text!r} (choose from {', '.join(choices)})")
        return text

    return parse


hidden_sizes = comma_list(width_int, "hidden layer widths")


def beta_pair(text: str) -> tuple[float, float]:
    """``0.9,0.999``: Adam's two betas, each in [0, 1)."""
    values = comma_list(unit_float, "two betas in [0, 1)")(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two betas like 0.9,0.999, got {text!r}")
    return values[0], values[1]


def check_output(parser: Parser, flag: str, path: str | None, suffixes: Sequence[str] | None) -> None:
    """Fail now, not after training, if ``path`` cannot be written (or has the wrong suffix)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        parser.error(f"{flag} {path}: is a directory, give a file name")
    if suffixes and p.suffix.lower() not in suffixes:
        parser.error(f"{flag} {path}: the file name must end in {', '.join(suffixes)}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        parser.error(f"{flag} {path}: the directory {folder} does not exist")
    if p.exists() and not os.access(p, os.W_OK):
        parser.error(f"{flag} {path}: the file is not writable")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        parser.error(f"{flag} {path}: cannot write in {folder} ({err.strerror or err})")


SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def scheduler_address(text: str) -> str:
    """Where ``cv --scheduler`` runs the fits: ``tcp://host:8786`` (Dask; a bare ``host:port`` means
    tcp), ``ray`` (a local Ray) or ``ray://host:10001`` (a Ray cluster through Ray Client)."""
    address = text.strip()
    if address == "ray":
        return address
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest, address = "tcp", address, f"tcp://{address}"
    host, colon, port = rest.rpartition(":")
    if (
        scheme not in (*SCHEDULER_SCHEMES, "ray")
        or not colon
        or not host
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise argparse.ArgumentTypeError(
            f"expected a Dask scheduler address like tcp://host:8786, ray, or ray://host:10001, got {text!r}"
        )
    return address
