"""The PASS/FAIL lines that `tapegrad bench` prints for its goals."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Verdicts"]


class Verdicts:
    """Writes one PASS or FAIL line a goal to ``out``; ``met`` stays True while every goal is met."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.met = True

    def at_most(self, value: float, limit: float, text: str, width: int = 44) -> None:
        """The goal ``value <= limit``, shown with both figures."""
        self.holds(value <= limit, f"{text:<{width}} {value:7.3f}  (goal <= {limit})")

    def holds(self, met: bool, text: str) -> None:
        """A goal met or not, described by ``text``."""
        self.met = self.met and met
        self.out(f"  {'PASS' if met else 'FAIL'}  {text}")
