"""The picture of a `tapegrad cv` report: seed 000's Figure 1 and a heat map of every search.

`plot_cv` takes the ``--json`` document of `tapegrad cv` (a dict), so the same figure comes
from a live run (``cv --plot``) and from a saved report (the results page generator).
"""

from __future__ import annotations

from typing import Any

from .plots import _pyplot, _save

__all__ = ["plot_cv", "search_label", "lr_table"]

ADAM_KEYS = ("eps", "beta1", "beta2")


def search_label(res: dict[str, Any], report: dict[str, Any]) -> str:
    """``relu/sgd``, plus the loss and the init when the report searched several."""
    label = f"{res['activation']}/{res['optimizer']}"
    if len(report["config"].get("losses", [])) > 1:
        label += f" {res['loss']}"
    if len(report["config"].get("inits", [])) > 1:
        label += f" {res['init']}"
    return label


def lr_table(res: dict[str, Any]) -> dict[float, dict[str, Any]]:
    """For each learning rate of a search, its best row (the best Adam settings at that rate)."""
    best: dict[float, dict[str, Any]] = {}
    for row in res["rows"]:  # rows come best first, so the first row of a rate is its best
        best.setdefault(row["params"]["lr"], row)
    return dict(sorted(best.items()))


def _groups(report: dict[str, Any]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for res in report["results"]:
        seen[(res["loss"], res["init"])] = None
    return list(seen)


def plot_cv(report: dict[str, Any], path: str) -> None:
    """Draw ``report`` (a `tapegrad cv` JSON document) into ``path``.

    Top: for each (loss, init), grouped bars per activation x optimizer of the best
    configuration's mean validation accuracy with the fold spread (std) as error bars, and its
    test accuracy after the final fit as a black diamond (seed 000's Figure 1). Below: a heat
    map of mean validation accuracy over the learning rate for every search (for Adam the best
    eps/betas at each rate), and for each Adam search the whole grid, rate x (eps, beta1, beta2).
    """
    plt = _pyplot()
    results = report["results"]
    groups = _groups(report)
    adam = [r for r in results if r["optimizer"] == "adam" and len(r["rows"]) > len(lr_table(r))]
    n_cols = max(len(groups), len(adam), 1)
    n_rows = 2 + (1 if adam else 0)
    heights = [3.2, 0.45 * len(results) + 1.4] + ([3.2] if adam else [])
    fig = plt.figure(figsize=(max(5.0 * n_cols, 9.0), sum(heights) + 0.8))
    grid = fig.add_gridspec(n_rows, n_cols, height_ratios=heights)
    lows = [r["best"]["mean_accuracy"] - r["best"]["std_accuracy"] for r in results]
    bottom = max(0.0, min(0.9, min(lows + [r["test_accuracy"] for r in results]) - 0.05))  # one scale for all
    for i, group in enumerate(groups):
        ax = fig.add_subplot(grid[0, i])
        _bars(ax, [r for r in results if (r["loss"], r["init"]) == group], group, report)
        ax.set_ylim(bottom, 1.0)
    _lr_heat(fig, fig.add_subplot(grid[1, :]), results, report)
    for i, res in enumerate(adam):
        _adam_heat(fig, fig.add_subplot(grid[2, i]), res, report)
    cfg = report["config"]
    fig.suptitle(
        f"tapegrad cv: {'-'.join(map(str, cfg['sizes']))}, {cfg['k']} folds, {cfg['epochs']} epochs per fit, "
        f"final fit {cfg['final_epochs']} epochs"
    )
    _save(plt, fig, path)


def _bars(ax: Any, results: list[dict[str, Any]], group: tuple[str, str], report: dict[str, Any]) -> None:
    activations = list(dict.fromkeys(r["activation"] for r in results))
    optimizers = list(dict.fromkeys(r["optimizer"] for r in results))
    width = 0.8 / len(optimizers)
    for j, opt in enumerate(optimizers):
        xs, means, stds, tests = [], [], [], []
        for i, act in enumerate(activations):
            for res in results:
                if (res["activation"], res["optimizer"]) == (act, opt):
                    xs.append(i + (j - (len(optimizers) - 1) / 2) * width)
                    means.append(res["best"]["mean_accuracy"])
                    stds.append(res["best"]["std_accuracy"])
                    tests.append(res["test_accuracy"])
        ax.bar(xs, means, width * 0.9, yerr=stds, capsize=3, label=f"{opt} (cv mean +- std)")
        ax.scatter(xs, tests, marker="D", color="black", s=18, zorder=3, label="test" if j == 0 else None)
    ax.set_xticks(range(len(activations)), activations)
    gain = f" (gain {report['config']['gain']:g})" if group[1] in ("xavier", "he") else ""
    ax.set(ylabel="accuracy", title=f"best configuration: {group[0]} loss, {group[1]} init{gain}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)


def _heat(fig: Any, ax: Any, values: list[list[float]], rows: list[str], cols: list[str], title: str) -> None:
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=min(0.5, min(map(min, values))), vmax=1.0)
    ax.set_xticks(range(len(cols)), cols, fontsize=7, rotation=45 if len(cols) > 6 else 0)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i, line in enumerate(values):
        for j, v in enumerate(line):
            ax.text(j, i, f"{v:.3f}"[1:] if v < 1 else "1.00", ha="center", va="center", fontsize=6,
                    color="white" if v < 0.8 else "black")  # fmt: skip
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)


def _lr_heat(fig: Any, ax: Any, results: list[dict[str, Any]], report: dict[str, Any]) -> None:
    lrs = sorted({lr for res in results for lr in lr_table(res)})
    missing = {"mean_accuracy": float("nan")}
    values = [[lr_table(res).get(lr, missing)["mean_accuracy"] for lr in lrs] for res in results]
    labels = [search_label(r, report) for r in results]
    _heat(fig, ax, values, labels, [f"{lr:.3g}" for lr in lrs],
          "mean validation accuracy per learning rate (Adam: best eps, beta1, beta2 at each rate)")  # fmt: skip
    ax.set_xlabel("learning rate")


def _adam_heat(fig: Any, ax: Any, res: dict[str, Any], report: dict[str, Any]) -> None:
    lrs = sorted({r["params"]["lr"] for r in res["rows"]})
    settings = sorted({tuple(r["params"][k] for k in ADAM_KEYS) for r in res["rows"]})
    cell = {(r["params"]["lr"], tuple(r["params"][k] for k in ADAM_KEYS)): r["mean_accuracy"] for r in res["rows"]}
    values = [[cell.get((lr, s), float("nan")) for lr in lrs] for s in settings]
    rows = [f"{e:.0e} {b1:g} {b2:g}" for e, b1, b2 in settings]
    _heat(fig, ax, values, rows, [f"{lr:.2g}" for lr in lrs], f"{search_label(res, report)}: eps beta1 beta2 x lr")
