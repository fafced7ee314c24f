"""Exports of `tapegrad cv` and `tapegrad compare`: CSV tables of their ``--json`` reports, and the machine.

``--csv FILE`` writes one row per configuration (cv) or per round (compare), with every column
the JSON report has for it: nested objects become dotted column names (``params.lr``), lists
one column per item (``fold_accuracies.0``), and the run's settings (``config.*``) are repeated
on every row, so a spreadsheet or ``pandas.read_csv`` gets a self-contained table.
"""

from __future__ import annotations

import csv
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

__all__ = ["flatten", "cv_rows", "compare_rows", "write_csv", "machine"]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON value as flat columns: ``{"a": {"b": 1}, "c": [2, 3]}`` -> ``{"a.b": 1, "c.0": 2, "c.1": 3}``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: value}


def _settings(report: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in report["config"].items() if k != "grid"}  # the grid is the rows themselves
    for key, value in config.items():  # a list of settings (sizes, activations) is one cell: "2,25,25,2"
        if isinstance(value, (list, tuple)) and not any(isinstance(v, (list, tuple, dict)) for v in value):
            config[key] = ",".join(map(str, value))
    return flatten(config, "config")


def cv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per configuration of a `tapegrad cv` report, ranked within its search (1 = best)."""
    settings = _settings(report)
    rows = []
    for res in report["results"]:
        search = {k: v for k, v in res.items() if k not in ("rows", "best")}
        for rank, row in enumerate(res["rows"], 1):
            best = rank == 1
            flat = {**flatten(search), "rank": rank, "best": best, **flatten(row)}
            if not best:  # the test score belongs to the best configuration's final fit only
                for key in [k for k in flat if k.startswith(("test_", "final_"))]:
                    flat[key] = None
            rows.append({**flat, **settings})
    return rows


def compare_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per round of a `tapegrad compare` report."""
    settings = _settings(report)
    return [{**flatten(rnd), **settings} for rnd in report["rounds"]]


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``rows`` (flat dicts) as CSV with a header of every key, in first-seen order."""
    rows = list(rows)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def machine() -> dict[str, Any]:
    """What ran the command: processor, cores, Python and torch versions, torch threads."""
    return {
        "processor": _cpu_name(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
