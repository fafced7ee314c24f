"""The commands behind docs/results.md: each writes one JSON report (and its pictures) into docs/results/.

`COMMANDS` maps a report's name to its `tapegrad` arguments. The grid searches of seed 000 run
with reduced settings by default (3 folds, 10 epochs per fit, the winner retrained for 100
epochs) so that they fit a 2-core machine; ``full=True`` gives seed 000's own settings (5 folds,
100 epochs per fit) and runs them on ``jobs`` worker processes.
"""

from __future__ import annotations

REDUCED_CV = ["--k", "3", "--epochs", "10", "--final-epochs", "100"]
FULL_CV = ["--k", "5", "--epochs", "100"]
ACTIVATIONS = ["--activation", "relu,tanh,sigmoid"]
STATIC = "docs/_static"

# name -> (arguments, whether it is a grid search that FULL=1 enlarges)
_COMMANDS: dict[str, tuple[list[str], bool]] = {
    # seed 002, Table I as they ran it: their loss scaling, PyTorch with its own initialisation
    "compare-seed": (["compare", "--reduction", "batchmean", "--torch-init", "torch-default"], False),
    # the same, both frameworks from the same weights: only the frameworks differ
    "compare-same": (["compare", "--reduction", "batchmean", "--torch-init", "same"], False),
    # the command's defaults: torch's mean over every element (half the seed's step at lr 0.001)
    "compare-mean": (["compare"], False),
    # seed 002, Figures 3 and 4, and the decision boundary (one round, the seed's loss)
    "train-curves": (
        ["train", "--reduction", "batchmean", "--plot", f"{STATIC}/curves.png", "--boundary", f"{STATIC}/boundary.png"],
        False,
    ),
    # seed 000, Tables I and II and Figure 1: every activation, both optimizers, cross-entropy, Xavier
    "cv-main": (["cv", *ACTIVATIONS, "--optimizer", "sgd,adam", "--plot", f"{STATIC}/cv-main.png"], True),
    # seed 000's loss ablation: MSE against cross-entropy over the SGD grid
    "cv-loss": (
        ["cv", *ACTIVATIONS, "--optimizer", "sgd", "--loss", "mse,ce", "--plot", f"{STATIC}/cv-loss.png"],
        True,
    ),
    # seed 000's init ablation: torch's default init against Xavier with their gain of 6
    "cv-init": (
        [
            "cv",
            *ACTIVATIONS,
            "--optimizer",
            "sgd",
            "--init",
            "default,xavier",
            "--gain",
            "6",
            "--plot",
            f"{STATIC}/cv-init.png",
        ],
        True,
    ),  # fmt: skip
}

NAMES = list(_COMMANDS)


def command(name: str, full: bool = False, jobs: int = 1) -> list[str]:
    """The `tapegrad` arguments of report ``name`` (without ``--json``)."""
    argv, is_cv = _COMMANDS[name]
    if not is_cv:
        return list(argv)
    return [*argv, *(FULL_CV if full else REDUCED_CV), *(["--jobs", str(jobs)] if jobs > 1 else [])]
