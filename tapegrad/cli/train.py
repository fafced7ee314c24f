"""`tapegrad train`: train the seed network for one or more rounds; curves, boundary, checkpoint.

The rounds, their table and their files are in `train_rounds`; ``--nproc N`` (or torchrun) runs
the same rounds data-parallel (`train_parallel`).
"""

from __future__ import annotations

import argparse

from .train_parallel import launched_by_torchrun, run_parallel
from .train_rounds import run_rounds

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Train, print a table (or JSON), write the requested plots and checkpoint.

    With ``--nproc N`` (or under torchrun) the rounds run data-parallel in N processes.
    """
    if getattr(args, "nproc", 1) > 1 or launched_by_torchrun():
        return run_parallel(args)
    return run_rounds(args)
