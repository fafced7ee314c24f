"""The commands behind docs/results.md: each writes one JSON report (and its pictures) into docs/results/.

`command` gives a report's `tapegrad` arguments. By default they are reduced to fit a shared
2-core machine in about an hour (fewer rounds; 3 folds of 10 epochs; Adam's epsilon fixed; half
the learning rates in the ablations); ``full=True`` gives the seeds' own settings (20 rounds;
5 folds of 100 epochs over the whole Table I grid) and runs the searches on ``jobs`` processes.
"""

from __future__ import annotations

# The grid searches: reduced to 3 folds of 10 epochs (the winner retrained for 100) and Adam's
# epsilon to 1e-8 (40 of the 120 Adam configurations); full: seed 000's 5 folds of 100 epochs.
REDUCED_CV = ["--k", "3", "--epochs", "10", "--final-epochs", "100"]
REDUCED_ADAM = ["--eps", "1e-8"]
# the ablations, reduced: every other learning rate of Table I (5 of 10)
REDUCED_ABLATION = ["--lr", "0.0001,0.000464,0.00215,0.01,0.0464"]
FULL_CV = ["--k", "5", "--epochs", "100"]
ACTIVATIONS = ["--activation", "relu,tanh,sigmoid"]
STATIC = "docs/_static"
CV, NOT_CV = True, False

# name -> (arguments, whether it is a grid search, rounds when reduced); FULL=1 gives 20 rounds
_COMMANDS: dict[str, tuple[list[str], bool, int]] = {
    # seed 002, Table I as they ran it: their loss scaling, PyTorch with its own initialisation
    "compare-seed": (["compare", "--reduction", "batchmean", "--torch-init", "torch-default"], NOT_CV, 10),
    # the same, both frameworks from the same weights: only the frameworks differ
    "compare-same": (["compare", "--reduction", "batchmean", "--torch-init", "same"], NOT_CV, 3),
    # the command's defaults: torch's mean over every element (half the seed's step at lr 0.001)
    "compare-mean": (["compare"], NOT_CV, 2),
    # seed 002, Figures 3 and 4, and the decision boundary (one round, the seed's loss)
    "train-curves": (
        ["train", "--reduction", "batchmean", "--plot", f"{STATIC}/curves.png", "--boundary", f"{STATIC}/boundary.png"],
        NOT_CV,
        0,
    ),
    # seed 000, Tables I and II and Figure 1: every activation, both optimizers, cross-entropy, Xavier
    "cv-main": (["cv", *ACTIVATIONS, "--optimizer", "sgd,adam", "--plot", f"{STATIC}/cv-main.png"], CV, 0),
    # seed 000's loss ablation: MSE against cross-entropy over the SGD grid
    "cv-loss": (
        ["cv", *ACTIVATIONS, "--optimizer", "sgd", "--loss", "mse,ce", "--plot", f"{STATIC}/cv-loss.png"],
        CV,
        0,
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
        CV,
        0,
    ),  # fmt: skip
}

NAMES = list(_COMMANDS)


def command(name: str, full: bool = False, jobs: int = 1) -> list[str]:
    """The `tapegrad` arguments of report ``name`` (without ``--json``)."""
    argv, is_cv, rounds = _COMMANDS[name]
    if rounds and not full:
        return [*argv, "--rounds", str(rounds)]
    if not is_cv:
        return list(argv)
    ablation = name != "cv-main"
    reduced = [*REDUCED_CV, *(REDUCED_ABLATION if ablation else REDUCED_ADAM)]
    return [*argv, *(FULL_CV if full else reduced), *(["--jobs", str(jobs)] if jobs > 1 else [])]
