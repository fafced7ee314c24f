"""Render docs/results.md from ``results.md.tmpl`` and the JSON reports beside it.

Every ``{{ expression }}`` of the template is a Python expression evaluated with the reports
(``compare_seed``, ``cv_main``, ... : the parsed ``NAME.json`` files, names with ``_`` for
``-``), ``runs`` (the command each report came from) and the helpers below in scope. So every
number on the page is computed from a committed JSON file, and tests/test_results.py checks
that the page is what the template and the JSON files give.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from tapegrad.cli.compare import rounds_table
from tapegrad.cli.cv_grid import params_text

__all__ = ["load_reports", "render_text", "render_page"]

PLACEHOLDER_OPEN, PLACEHOLDER_CLOSE = "{{", "}}"
CV_FIGURES = {"cv-main": "cv-main.png", "cv-loss": "cv-loss.png", "cv-init": "cv-init.png"}
KEYS = ("lr", "eps", "beta1", "beta2")


def load_reports(folder: Path) -> dict[str, Any]:
    """Every ``NAME.json`` of ``folder`` by name, and ``runs.json`` (the commands) as ``runs``."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


# --- formatting -------------------------------------------------------------------------------


def pct(x: float, digits: int = 2) -> str:
    """A rate as a percentage: 0.0169 -> '1.69%'."""
    return f"{100 * x:.{digits}f}%"


def f4(x: float) -> str:
    """An accuracy to four decimals."""
    return f"{x:.4f}"


def f3(x: float) -> str:
    """An accuracy to three decimals."""
    return f"{x:.3f}"


def sci(x: float) -> str:
    """A standard deviation as the seed prints it: 5.33e-03."""
    return f"{x:.2e}"


def secs(x: float) -> str:
    """Seconds to two decimals: '4.56 s'."""
    return f"{x:.2f} s"


def minutes(x: float) -> str:
    """A wall time: '12.3 min', or '1.52 h' beyond two hours."""
    return f"{x / 3600:.2f} h" if x >= 7200 else f"{x / 60:.1f} min"


def g3(x: float) -> str:
    """A hyperparameter to three significant digits: 0.00464."""
    return f"{x:.3g}"


def cmd(runs: dict[str, Any], name: str) -> str:
    """The command line that produced report ``name``."""
    return "tapegrad " + " ".join(runs[name]["argv"])


# --- seed 002: compare and train ------------------------------------------------------------------


def compare_row(report: dict[str, Any], side: str, label: str) -> str:
    """One Markdown table row: error mean and std, time mean and std of ``side`` (tapegrad or torch)."""
    s = report["summary"][side]
    e, t = s["error_rate"], s["train_time_s"]
    c = s.get("train_cpu_s")  # reports made before compare measured CPU time have none
    cpu = f"{secs(c['mean'])} | {sci(c['std'])}" if c else "- | -"
    return f"| {label} | {pct(e['mean'])} | {sci(e['std'])} | {secs(t['mean'])} | {sci(t['std'])} | {cpu} |"


def compare_rounds(report: dict[str, Any]) -> str:
    """The per-round table of a compare report, as the command prints it."""
    return rounds_table(report["rounds"])


def cpu_ratio_text(report: dict[str, Any], what: str) -> str:
    """A sentence with the CPU-time ratio of a compare report ('' for reports without CPU times)."""
    s = report["summary"]
    if "cpu_ratio" not in s:
        return ""
    return (
        f" In CPU time (the process time while each side trains, which other jobs on the machine hardly "
        f"change) {what} tapegrad took {secs(s['tapegrad']['train_cpu_s']['mean'])} against PyTorch's "
        f"{secs(s['torch']['train_cpu_s']['mean'])}: a ratio of {s['cpu_ratio']:.2f}."
    )


def err(report: dict[str, Any], side: str) -> float:
    """Mean test error rate of ``side`` in a compare report."""
    return report["summary"][side]["error_rate"]["mean"]


def err_first(report: dict[str, Any], side: str, n: int) -> float:
    """Mean test error rate of ``side`` over the first ``n`` rounds (to compare runs of different lengths)."""
    rounds = report["rounds"][:n]
    return sum(r[f"{side}_error_rate"] for r in rounds) / len(rounds)


def z_score(report: dict[str, Any], side: str, value: float) -> float:
    """How many standard errors of the mean error rate of ``side`` separate it from ``value``."""
    e = report["summary"][side]["error_rate"]
    return abs(e["mean"] - value) / (e["std"] / math.sqrt(len(report["rounds"])) or float("inf"))


def paired_z(report: dict[str, Any]) -> float:
    """The mean per-round difference of the two error rates (PyTorch - tapegrad) in standard errors."""
    diffs = [r["torch_error_rate"] - r["tapegrad_error_rate"] for r in report["rounds"]]
    n = len(diffs)
    mean = sum(diffs) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    return mean / (std / math.sqrt(n)) if std else 0.0


def time_spread(report: dict[str, Any]) -> float:
    """How many times longer the slowest round's tapegrad training took than the fastest's."""
    times = [r["tapegrad_time_s"] for r in report["rounds"]]
    return max(times) / min(times)


def rounds_won(report: dict[str, Any]) -> int:
    """In how many rounds tapegrad's error rate was lower than PyTorch's."""
    return sum(n["tapegrad_error_rate"] < n["torch_error_rate"] for n in report["rounds"])


def max_gap(report: dict[str, Any]) -> float:
    """The largest per-round difference of the two error rates."""
    return max(abs(n["tapegrad_error_rate"] - n["torch_error_rate"]) for n in report["rounds"])


# --- seed 000: cv ---------------------------------------------------------------------------------


def result(report: dict[str, Any], activation: str, optimizer: str, **fixed: str) -> dict[str, Any]:
    """The search of ``report`` for ``activation`` and ``optimizer`` (and ``loss=``, ``init=``)."""
    for res in report["results"]:
        if res["activation"] == activation and res["optimizer"] == optimizer:
            if all(res[k] == v for k, v in fixed.items()):
                return res
    raise KeyError(f"no search {activation}/{optimizer} {fixed} in the report")


def best(report: dict[str, Any], activation: str, optimizer: str, key: str, **fixed: str) -> str:
    """A hyperparameter of the best configuration, formatted ('-' when the optimizer has none)."""
    params = result(report, activation, optimizer, **fixed)["best"]["params"]
    return g3(params[key]) if key in params else "-"


def test_acc(report: dict[str, Any], activation: str, optimizer: str, **fixed: str) -> str:
    """The test accuracy of the best configuration's final fit, three decimals."""
    return f3(result(report, activation, optimizer, **fixed)["test_accuracy"])


def grid_range(report: dict[str, Any], activation: str, optimizer: str, **fixed: str) -> str:
    """The lowest and highest mean validation accuracy over a search's grid: '0.483-0.976'."""
    means = [r["mean_accuracy"] for r in result(report, activation, optimizer, **fixed)["rows"]]
    return f"{f3(min(means))}-{f3(max(means))}"


def acc_at_lr(report: dict[str, Any], activation: str, optimizer: str, lr: float) -> str:
    """The best mean validation accuracy of a search at learning rate ``lr`` ('not searched' if absent)."""
    rows = [r for r in result(report, activation, optimizer)["rows"] if math.isclose(r["params"]["lr"], lr)]
    return f3(rows[0]["mean_accuracy"]) if rows else "not searched"


def cv_top(report: dict[str, Any], res: dict[str, Any], n: int = 5) -> str:
    """The best ``n`` rows of a search, as `tapegrad cv` prints them."""
    cfg = report["config"]
    head = (
        f"{res['activation']}/{res['optimizer']} ({res['loss']}, {res['init']} init): {len(res['rows'])} "
        f"configurations, {cfg['k']} folds, {cfg['epochs']} epochs (best {min(n, len(res['rows']))})"
    )
    lines = [head, f"  {'mean acc':>8} {'std':>7}  " + " ".join(f"{k:>7}" for k in KEYS)]
    for row in res["rows"][:n]:
        cells = " ".join(f"{g3(row['params'][k]) if k in row['params'] else '-':>7}" for k in KEYS)
        lines.append(f"  {row['mean_accuracy']:8.4f} {row['std_accuracy']:7.4f}  {cells}")
    return "\n".join(lines)


def cv_tops(report: dict[str, Any], n: int = 5) -> str:
    """`cv_top` of every search of a report, one after another."""
    return "\n\n".join(cv_top(report, res, n) for res in report["results"])


def cv_best_table(report: dict[str, Any]) -> str:
    """A Markdown table of every search's best configuration, its cv accuracy and its test accuracy."""
    lines = [
        "| activation | optimizer | loss | init | lr | eps | beta1 | beta2 | cv acc (mean +- std) | test acc |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in report["results"]:
        b = res["best"]
        cells = " | ".join(g3(b["params"][k]) if k in b["params"] else "-" for k in KEYS)
        lines.append(
            f"| {res['activation']} | {res['optimizer']} | {res['loss']} | {res['init']} | {cells} | "
            f"{f4(b['mean_accuracy'])} +- {f4(b['std_accuracy'])} | {f3(res['test_accuracy'])} |"
        )
    return "\n".join(lines)


def grid_of(report: dict[str, Any], optimizer: str, key: str) -> str:
    """The values of ``key`` searched for ``optimizer``: '0.0001, 0.000215, ..., 0.1'."""
    return ", ".join(g3(v) for v in report["config"]["grid"][optimizer][key])


def n_configs(report: dict[str, Any], optimizer: str) -> int:
    """How many configurations the grid of ``optimizer`` holds."""
    return math.prod(len(v) for v in report["config"]["grid"][optimizer].values())


def fits(report: dict[str, Any]) -> int:
    """How many fits a cv report's searches made (configurations x folds, plus one final fit each)."""
    k = report["config"]["k"]
    return sum(len(res["rows"]) * k + 1 for res in report["results"])


def is_full(report: dict[str, Any]) -> bool:
    """Whether a cv report ran seed 000's own settings (5 folds of 100 epochs, the whole Adam grid)."""
    cfg = report["config"]
    adam = cfg["grid"].get("adam")
    return cfg["k"] == 5 and cfg["epochs"] == 100 and (adam is None or len(adam["eps"]) == 3)


def settings(report: dict[str, Any]) -> str:
    """What a report's command ran, in words: rounds and epochs, or folds, epochs and fits."""
    cfg = report["config"]
    if report["command"] == "cv":
        size = "seed 000's settings" if is_full(report) else "reduced"
        return (
            f"{size}: {sum(len(r['rows']) for r in report['results'])} configurations x {cfg['k']} folds of "
            f"{cfg['epochs']} epochs, final fits of {cfg['final_epochs']} epochs"
        )
    rounds = cfg.get("rounds", 1)
    size = "seed 002's settings" if rounds == 20 or report["command"] == "train" else "reduced"
    return f"{size}: {rounds} round{'s' * (rounds > 1)} of {cfg['epochs']} epochs"


def runs_table(reports: dict[str, Any], runs: dict[str, Any]) -> str:
    """A Markdown table of every report: its settings, wall time, jobs and machine."""
    lines = ["| report | settings | wall time | machine |", "|---|---|---|---|"]
    for name, run in runs.items():
        report = reports[name]
        jobs = report["config"].get("jobs", 1)
        where = (machine(report) if "machine" in report else "as above") + (f", {jobs} processes" if jobs > 1 else "")
        lines.append(f"| `{name}` | {settings(report)} | {minutes(run['wall_time_s'])} | {where} |")
    return "\n".join(lines)


def machine(report: dict[str, Any]) -> str:
    """The machine a report ran on, in words."""
    m = report["machine"]
    return f"{m['processor']}, {m['cpus']} cores, Python {m['python']}, torch {m['torch']}"


_PROGRESS_LINE = re.compile(r"cv \[(\d+)/(\d+)\] (\w+)/(\w+) (.*?): ([\d.]+) \+- ([\d.]+) \((\S+) elapsed")


def partial_grid(log_name: str = "cv-main-full-partial.log") -> dict[str, Any]:
    """The best configuration of each search in a cv progress log that stopped early.

    Reads the lines `cv` streams per finished configuration (``cv [i/n] act/opt params: acc +- std``)
    from ``docs/results/LOG_NAME``: how many of how many configurations finished, the time, and per
    (activation, optimizer) the number finished and the best mean validation accuracy.
    """
    best: dict[tuple[str, str], dict[str, Any]] = {}
    done = total = 0
    elapsed = ""
    for line in (Path(__file__).resolve().parent / log_name).read_text(encoding="utf-8").splitlines():
        m = _PROGRESS_LINE.match(line)
        if not m:
            continue
        done, total, elapsed = int(m[1]), int(m[2]), m[8]
        entry = best.setdefault((m[3], m[4]), {"count": 0, "acc": -1.0})
        entry["count"] += 1
        if float(m[6]) > entry["acc"]:
            entry.update(acc=float(m[6]), std=float(m[7]), params=m[5])
    return {"done": done, "total": total, "elapsed": elapsed, "best": best}


SEARCHES = [(a, o) for a in ("relu", "tanh", "sigmoid") for o in ("sgd", "adam")]
_FULL = Path(__file__).resolve().parent / "full-grid"


def full_grid(folder: Path = _FULL) -> dict[str, Any]:
    """Seed 000's whole grid put together from the runs in ``folder``.

    The 16-core run's progress log (``cv-main-full-partial.log`` beside this file) gives the
    configurations it finished (a progress log in ``folder``, of a start of the whole grid here,
    is only compared with it); ``tanh-adam-tail.json`` and ``sigmoid.json`` (this 2-core machine)
    the rest; ``best-ACT-OPT.json`` reruns the best configuration of each search the log finished,
    with its final fit (the test accuracy). Returns per search the configurations and where they
    ran, the best, its test accuracy, and how the configurations run on both machines compare.
    """
    runs = full_grid_runs(folder)
    log: dict[tuple[str, str], dict[str, float]] = {}
    for line in (Path(__file__).resolve().parent / "cv-main-full-partial.log").read_text(encoding="utf-8").splitlines():
        m = _PROGRESS_LINE.match(line)
        if m:
            log.setdefault((m[3], m[4]), {})[m[5]] = float(m[6])
    here: dict[tuple[str, str], dict[str, Any]] = {}
    tests: dict[tuple[str, str], float] = {}
    for name, run in runs.items():
        for res in run["results"]:
            key = (res["activation"], res["optimizer"])
            for row in res["rows"]:
                here.setdefault(key, {})[params_text(row["params"])] = row
            if name.startswith("best-") or name == "sigmoid":
                tests[key] = res["test_accuracy"]
    out: dict[str, Any] = {"searches": [], "both": 0, "same": 0}
    for path in sorted(folder.glob("*.log")):  # an earlier start of the whole grid here, stopped
        for line in path.read_text(encoding="utf-8").splitlines():
            m = _PROGRESS_LINE.match(line)
            if m and m[5] in log.get((m[3], m[4]), {}):
                out["both"] += 1
                out["same"] += f"{log[(m[3], m[4])][m[5]]:.4f}" == m[6]
    for key in SEARCHES:
        from_log, from_here = log.get(key, {}), here.get(key, {})
        table = {p: acc for p, acc in from_log.items()}
        for p, row in from_here.items():
            if p in from_log:
                out["both"] += 1
                out["same"] += f"{row['mean_accuracy']:.4f}" == f"{from_log[p]:.4f}"
            table.setdefault(p, round(row["mean_accuracy"], 4))
        if not table:  # a search no run reached
            continue
        best = max(table, key=lambda p: table[p])
        where = "16 cores" if not set(table) - set(from_log) else "2 cores" if not from_log else "both"
        out["searches"].append(
            {
                "activation": key[0], "optimizer": key[1], "configs": len(table), "where": where,
                "best": best, "accuracy": table[best], "test_accuracy": tests.get(key),
                "rerun": from_here[best]["mean_accuracy"] if best in from_here and best in from_log else None,
            }
        )  # fmt: skip
    out["machines"] = {name: run["machine"] for name, run in runs.items()}
    out["wall_time_s"] = sum(run["wall_time_s"] for run in runs.values())
    return out


def full_grid_runs(folder: Path = _FULL) -> dict[str, Any]:
    """The JSON reports of the full grid's runs on this machine, by file name."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def grid_band(grid: dict[str, Any], low: float = 0.95) -> str:
    """The searches' test accuracies as words: the range of those at least ``low``, and the others."""
    good = [
        s["test_accuracy"] for s in grid["searches"] if s["test_accuracy"] is not None and s["test_accuracy"] >= low
    ]
    bad = [s for s in grid["searches"] if s["test_accuracy"] is not None and s["test_accuracy"] < low]
    text = f"between {min(good):.3f} and {max(good):.3f}"
    if bad:
        text += " except " + ", ".join(f"{s['activation']} / {s['optimizer']} ({s['test_accuracy']:.3f})" for s in bad)
    return text


def full_grid_table(grid: dict[str, Any]) -> str:
    """A Markdown table of `full_grid`: per search, the best configuration and its scores."""
    lines = [
        "| search | configurations | ran on | best configuration | 5-fold validation accuracy | "
        "the same, rerun on 2 cores | test accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in grid["searches"]:
        rerun = "-" if s["rerun"] is None else f"{s['rerun']:.4f}"
        test = "-" if s["test_accuracy"] is None else f"{s['test_accuracy']:.3f}"
        lines.append(
            f"| {s['activation']} / {s['optimizer']} | {s['configs']} | {s['where']} | {s['best']} | "
            f"{s['accuracy']:.4f} | {rerun} | **{test}** |"
        )
    return "\n".join(lines)


HELPERS = {
    name: obj
    for name, obj in dict(globals()).items()
    if callable(obj) and not name.startswith("_") and name not in ("load_reports", "render_text", "render_page")
}


def render_text(folder: Path, template: Path) -> str:
    """The page: ``template`` with every ``{{ expression }}`` evaluated against the reports of ``folder``."""
    reports = load_reports(folder)
    scope: dict[str, Any] = {**HELPERS, "math": math}
    scope.update({name.replace("-", "_"): report for name, report in reports.items()})
    scope["reports"] = reports
    text = template.read_text(encoding="utf-8")
    out, pos = [], 0
    while (start := text.find(PLACEHOLDER_OPEN, pos)) >= 0:
        end = text.index(PLACEHOLDER_CLOSE, start)
        expression = text[start + 2 : end].strip()
        out.append(text[pos:start])
        try:
            out.append(str(eval(expression, scope)))  # the template is ours, in the repository
        except Exception as error:
            line = text.count("\n", 0, start) + 1
            raise ValueError(f"{template.name}:{line}: {{{{ {expression} }}}} failed: {error}") from error
        pos = end + 2
    out.append(text[pos:])
    return "".join(out)


def render_page(folder: Path, page: Path, template: Path, figures: bool = True) -> None:
    """Write the rendered page, and (with ``figures``) redraw the cv figures from their JSON reports."""
    page.write_text(render_text(folder, template), encoding="utf-8")
    if figures:
        from tapegrad.cli.figures import plot_cv

        static = page.parent / "_static"
        for name, picture in CV_FIGURES.items():
            report = folder / f"{name}.json"
            if report.exists():
                plot_cv(json.loads(report.read_text(encoding="utf-8")), str(static / picture))
