"""The argument parser of the `tapegrad` command: every subcommand's options (a declarative table)."""

from __future__ import annotations

import argparse

from tapegrad._version import __version__

from .args import (
    Parser,
    at_least_two,
    beta_pair,
    comma_list,
    hidden_sizes,
    nonnegative_float,
    one_of,
    positive_float,
    positive_int,
    sample_count,
    scheduler_address,
    seed_int,
    thread_count,
    unit_float,
)

__all__ = ["build_parser", "add_debug", "TABLE_I_LRS", "QUICK_CV", "PLOT_SUFFIXES", "GRAPH_SUFFIXES"]

ACTIVATIONS = ("relu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam")
LOSSES = ("mse", "mae", "ce")
INITS = ("default", "xavier", "he")
REDUCTIONS = ("mean", "batchmean")
TORCH_INITS = ("same", "torch-default")
PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
GRAPH_SUFFIXES = (".svg", ".png", ".pdf", ".dot", ".gv")
# seed 000's Table I: 10 learning rates log-spaced over 1e-4..1e-1, 3 epsilons, 2 beta1, 2 beta2
TABLE_I_LRS = tuple(10 ** (-4 + 3 * i / 9) for i in range(10))
TABLE_I_EPS = (1e-8, 1e-7, 1e-6)
TABLE_I_BETA1 = (0.8, 0.9)
TABLE_I_BETA2 = (0.9, 0.999)
# cv --quick: 2 learning rates (Adam at its default eps and betas), 3 folds of 300 points, 20 epochs
QUICK_CV = dict(lrs=[0.01, 0.1], epss=[1e-8], beta1s=[0.9], beta2s=[0.999], k=3, epochs=20, n_train=300, n_test=300)


def _add_model(p: argparse.ArgumentParser, multi: bool = False, loss: str = "mse", init: str = "he") -> None:
    g = p.add_argument_group("network")
    g.add_argument("--hidden", type=hidden_sizes, default=[25, 25, 25], help="hidden widths (default 25,25,25)")
    if multi:
        g.add_argument(
            "--activation",
            type=comma_list(one_of(ACTIVATIONS), "activations"),
            metavar="LIST",
            default=["relu"],
            help="hidden activations to search, comma-separated from relu,tanh,sigmoid (default relu)",
        )
    else:
        g.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="hidden activation (default relu)")
    if multi:  # cv: each ablation (mse,ce; default,xavier) is one command
        g.add_argument(
            "--loss",
            type=comma_list(one_of(LOSSES), "losses"),
            metavar="LIST",
            default=[loss],
            help=f"losses to search, comma-separated from mse,mae,ce (default {loss})",
        )
        g.add_argument(
            "--init",
            type=comma_list(one_of(INITS), "initialisations"),
            metavar="LIST",
            default=[init],
            help=f"weight initialisations to search, comma-separated from default,xavier,he (default {init})",
        )
    else:
        g.add_argument(
            "--loss",
            choices=LOSSES,
            default=loss,
            help=f"mse/mae on +-1 targets with a tanh output, or ce on logits (default {loss})",
        )
        g.add_argument("--init", choices=INITS, default=init, help=f"weight initialisation (default {init})")
    g.add_argument(
        "--reduction",
        choices=REDUCTIONS,
        default="mean",
        help="how the loss reduces a batch: mean over every element (torch's default) or batchmean, "
        "the sum over the batch size, the 'seed 002' report's (1/N) sum ||y - yhat||^2 (default mean)",
    )
    g.add_argument("--gain", type=positive_float, default=1.0, help="gain of the xavier/he init (default 1)")


def _add_training(p: argparse.ArgumentParser, epochs: int = 200) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=epochs, help=f"passes over the data (default {epochs})")
    g.add_argument("--batch-size", type=positive_int, default=10, help="mini-batch size (default 10)")
    g.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    g.add_argument("--n-train", type=sample_count, default=1000, help="training points (default 1000)")
    g.add_argument("--n-test", type=sample_count, default=1000, help="test points (default 1000)")
    g.add_argument("--threads", type=thread_count, default=1, help="torch CPU threads (default 1)")


def _add_optimizer(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimizer")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="sgd or adam (default sgd)")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default 0.001)")
    g.add_argument("--momentum", type=nonnegative_float, default=0.0, help="SGD momentum (default 0)")
    g.add_argument("--betas", type=beta_pair, default=(0.9, 0.999), help="Adam betas (default 0.9,0.999)")
    g.add_argument("--eps", type=positive_float, default=1e-8, help="Adam epsilon (default 1e-8)")


def _add_output(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    g.add_argument("--quiet", action="store_true", help="no progress bars, only the summary")
    add_debug(g)


def add_debug(g: argparse._ActionsContainer) -> None:
    """``--debug``: show the traceback of an error instead of its one-line message."""
    g.add_argument("--debug", action="store_true", help="on an error, show the full traceback")


def build_parser() -> Parser:
    """The `tapegrad` argument parser with its subcommands."""
    parser = Parser(
        prog="tapegrad",
        description="Train, compare, cross-validate and draw a small network on the disk problem (points in "
        "the unit square, label 1 inside a disk), reproducing two course reports: 'seed 002' (a 2-25-25-25-2 "
        "network trained with SGD, against PyTorch) and 'seed 000' (a cross-validated grid search over "
        "learning rates and Adam's settings).",
    )
    parser.add_argument("--version", action="version", version=f"tapegrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    train = sub.add_parser(
        "train",
        help="train the 2-25-25-25-2 network on the disk data (SGD lr 0.001, 200 epochs by default)",
        description="Train the network on the disk data. The defaults are the 'seed 002' report's: "
        "2-25-25-25-2, ReLU hidden and Tanh output, MSE on +-1 targets, He init, SGD with learning rate "
        "0.001, batches of 10, 200 epochs, 1000 training and 1000 test points.",
    )
    _add_model(train)
    _add_optimizer(train)
    _add_training(train)
    train.add_argument("--rounds", type=positive_int, default=1, help="independent rounds (mean and std; default 1)")
    train.add_argument("--plot", metavar="PNG", help="write train/test loss and error curves (first round)")
    train.add_argument("--boundary", metavar="PNG", help="write the decision regions over [0,1]^2 (first round)")
    train.add_argument("--save", metavar="CKPT", help="write the first round's weights (safetensors)")
    train.add_argument(
        "--nproc",
        type=positive_int,
        default=1,
        help="data-parallel processes on this machine (torch.distributed; --batch-size is per process; default 1)",
    )
    _add_output(train)

    compare = sub.add_parser(
        "compare",
        help="train the same network with tapegrad and with PyTorch, 20 rounds: error rates and times",
        description="Train the same network from the same weights on the same batches with "
        "tapegrad and with PyTorch (its nn, autograd and optim); error rate and training time.",
    )
    _add_model(compare)
    _add_optimizer(compare)
    _add_training(compare)
    compare.add_argument("--rounds", type=positive_int, default=20, help="rounds (default 20)")
    compare.add_argument(
        "--torch-init",
        choices=TORCH_INITS,
        default="same",
        help="same: PyTorch starts from tapegrad's initial weights (measures the frameworks, the error "
        "rates agree); torch-default: PyTorch draws its own default init, as the 'seed 002' report did (measures "
        "the whole recipe) (default same)",
    )
    _add_output(compare)
    compare.add_argument("--csv", metavar="FILE", help="also write one row per round (every JSON column) as CSV")

    cv = sub.add_parser(
        "cv",
        help="k-fold grid search over learning rates (and Adam's eps and betas), then the best one's test accuracy",
        description="k-fold grid search, then the best configuration's test accuracy, for every activation "
        "and optimizer given. The default grid is the 'seed 000' report's: 10 learning rates log-spaced "
        "from 1e-4 to 1e-1, and for Adam also eps 1e-8,1e-7,1e-6, beta1 0.8,0.9 and beta2 0.9,0.999 "
        "(130 configurations x 5 folds x 100 epochs: about half an hour on one core); --quick searches a "
        "small grid in under a minute.",
    )
    _add_model(cv, multi=True, loss="ce", init="xavier")
    _add_training(cv, epochs=100)
    g = cv.add_argument_group("grid (by default the 'seed 000' report's: 130 configurations)")
    for flag, dest, parse, what, default, text in (
        ("--optimizer", "optimizer", one_of(OPTIMIZERS), "optimizers", ["sgd", "adam"],
         "optimizers to search (default sgd,adam)"),
        ("--lr", "lrs", positive_float, "learning rates", TABLE_I_LRS,
         "learning rates (default: 10 log-spaced in 1e-4..1e-1)"),
        ("--eps", "epss", positive_float, "epsilons", TABLE_I_EPS, "Adam epsilons (default 1e-8,1e-7,1e-6)"),
        ("--beta1", "beta1s", unit_float, "beta1 values", TABLE_I_BETA1, "Adam beta1 values (default 0.8,0.9)"),
        ("--beta2", "beta2s", unit_float, "beta2 values", TABLE_I_BETA2, "Adam beta2 values (default 0.9,0.999)"),
    ):  # fmt: skip
        g.add_argument(flag, dest=dest, metavar="LIST", type=comma_list(parse, what), default=list(default), help=text)
    g.add_argument("--momentum", type=nonnegative_float, default=0.0, help="SGD momentum (default 0)")
    cv.add_argument(
        "--quick",
        action="store_true",
        help="a small search in under a minute: learning rates 0.01,0.1 (Adam at eps 1e-8, betas 0.9,0.999), "
        "3 folds of 300 points, 20 epochs; options given beside it win",
    )
    cv.add_argument("--k", type=at_least_two, default=5, help="folds (default 5)")
    cv.add_argument(
        "--final-epochs",
        type=positive_int,
        help="epochs of the best configuration's final fit on the whole training set (default: --epochs)",
    )
    cv.add_argument("--jobs", type=positive_int, default=1, help="worker processes (default 1)")
    cv.add_argument(
        "--eager",
        action="store_true",
        help="train every fit eagerly; by default each fit's step runs as a tg.trace with the optimizer "
        "folded in (the same weights, two to three times faster)",
    )
    cv.add_argument(
        "--scheduler",
        type=scheduler_address,
        metavar="ADDRESS",
        help="run the fits on a Dask cluster: its scheduler's address, like tcp://host:8786 (needs dask)",
    )
    cv.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long to try reaching --scheduler (default 10)",
    )
    cv.add_argument("--top", type=positive_int, default=5, help="grid rows printed per search (default 5)")
    _add_output(cv)
    cv.add_argument(
        "--plot",
        metavar="FILE",
        help="draw test accuracy per activation x optimizer (the 'seed 000' report's Figure 1) and a heat map "
        "of each search",
    )
    cv.add_argument("--csv", metavar="FILE", help="also write one row per configuration (every JSON column) as CSV")

    graph = sub.add_parser(
        "graph",
        help="draw the seed network's tape",
        description="Record one batch of the seed network and its loss; draw the tape.",
    )
    _add_model(graph)
    graph.add_argument("--batch-size", type=positive_int, default=10, help="batch recorded (default 10)")
    graph.add_argument("--seed", type=seed_int, default=0, help="random seed")
    graph.add_argument(
        "--out",
        help="picture to write: .svg .png .pdf (need Graphviz) or .dot (the DOT text, needs nothing) "
        "(default graph.svg; with --explain, no picture unless --out is given)",
    )
    graph.add_argument("--backward", action="store_true", help="run the backward pass and show gradient norms")
    graph.add_argument(
        "--explain",
        action="store_true",
        help="print the reverse sweep step by step, each rule as its formula (viz.explain; needs no Graphviz)",
    )
    graph.add_argument("--quiet", action="store_true", help="print nothing")
    graph.add_argument("--json", action="store_true", help="print what was drawn as JSON")
    add_debug(graph)

    sub.add_parser("bench", help="the performance benchmark (arguments go to it)", add_help=False)
    return parser
