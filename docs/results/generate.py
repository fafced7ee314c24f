"""Regenerate docs/results.md: ``python docs/results/generate.py [--full] [--jobs N] [--only NAME ...] [--render]``.

Without ``--render`` it first runs the `tapegrad` commands of `seed_commands.py` with ``--json``,
each into ``docs/results/NAME.json`` (and its pictures into docs/_static), then renders the page:
``results.md.tmpl`` with every ``{{ expression }}`` replaced by its value, computed from those
JSON files, and the cv figures redrawn from them. ``make results`` calls it; ``make results
FULL=1 JOBS=16`` runs seed 000's full grid. ``--render`` only renders (for JSON files made
elsewhere, such as the full grid on a bigger machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from seed_commands import NAMES, command  # noqa: E402

PAGE = ROOT / "docs" / "results.md"
TEMPLATE = HERE / "results.md.tmpl"


def run_command(name: str, full: bool, jobs: int) -> None:
    """Run report ``name`` with ``--json`` into ``docs/results/NAME.json`` (written only on success)."""
    argv = [sys.executable, "-m", "tapegrad", *command(name, full, jobs), "--json"]
    print(f"$ tapegrad {' '.join(argv[3:])}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"generate: tapegrad {' '.join(argv[3:])} failed with status {proc.returncode}")
    json.loads(proc.stdout)  # a complete document, or fail before overwriting the last good one
    target = HERE / f"{name}.json"
    _write(target, proc.stdout)
    wall = time.perf_counter() - start
    record_run(name, command(name, full, jobs), wall)
    print(f"wrote {target.relative_to(ROOT)} ({wall:.0f} s)", file=sys.stderr, flush=True)


def record_run(name: str, argv: list[str], wall: float) -> None:
    """Note in ``runs.json`` the command line that made report ``name`` and how long it ran."""
    runs_file = HERE / "runs.json"
    runs = json.loads(runs_file.read_text(encoding="utf-8")) if runs_file.exists() else {}
    runs[name] = {"argv": argv, "wall_time_s": round(wall, 1)}
    _write(runs_file, json.dumps(dict(sorted(runs.items())), indent=2) + "\n")


def _write(target: Path, text: str) -> None:
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    """Run the commands (unless ``--render``) and render the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="seed 000's full grid (5 folds, 100 epochs)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes of the grid searches")
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run only these commands")
    parser.add_argument("--render", action="store_true", help="only render the page from the JSON files")
    args = parser.parse_args(argv)
    if not args.render:
        for name in args.only or NAMES:
            run_command(name, args.full, args.jobs)
        if not args.only:  # seed 002's Figure 1, the network: a picture of its tape, no numbers
            graph = ["graph", "--out", "docs/_static/graph.svg", "--backward", "--quiet"]
            subprocess.run([sys.executable, "-m", "tapegrad", *graph], cwd=ROOT, check=True)
    from seed_page import render_page

    render_page(HERE, PAGE, TEMPLATE, figures=True)
    print(f"wrote {PAGE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
