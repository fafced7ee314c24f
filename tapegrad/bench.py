"""What `tapegrad bench` runs: the seed-network benchmark in ``benchmarks/seed_training.py``.

The benchmark compares tapegrad with PyTorch's autograd (its nn and optim packages), which the
library itself may not import, so it lives outside the package, in the source tree's
``benchmarks/`` folder; this module finds it next to the package and runs it.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

__all__ = ["main", "benchmark_path"]


def benchmark_path() -> Path:
    """Where the benchmark script is: ``benchmarks/seed_training.py`` beside the package folder."""
    return Path(__file__).resolve().parent.parent / "benchmarks" / "seed_training.py"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with ``argv`` (see ``tapegrad bench --help``); returns the exit status."""
    path = benchmark_path()
    if not path.is_file():
        print(
            f"tapegrad bench: error: {path} not found; the benchmark runs from a source checkout of tapegrad",
            file=sys.stderr,
        )
        return 2
    namespace = runpy.run_path(str(path), run_name="tapegrad_bench")
    return int(namespace["main"](argv) or 0)
