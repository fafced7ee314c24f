"""`tapegrad bench`: the performance benchmark, part of the installed package.

The benchmark compares tapegrad with PyTorch's own autograd (its nn and optim packages); the
library may not import those, so the comparison lives here, in the application layer, in
modules whose names say ``bench`` (the one exemption besides ``baseline``).
``benchmarks/seed_training.py`` in the source tree is a thin entry to the same code.
"""

from __future__ import annotations

from .command import main

__all__ = ["main"]
