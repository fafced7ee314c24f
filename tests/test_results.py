"""docs/results.md is generated: its numbers are those of the JSON reports committed beside it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
sys.path.insert(0, str(RESULTS))

from seed_commands import NAMES, command  # noqa: E402
from seed_page import SEARCHES, full_grid, load_reports, render_text  # noqa: E402


def test_the_page_is_what_the_template_and_the_json_reports_give():
    page = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    expected = render_text(RESULTS, RESULTS / "results.md.tmpl")
    # a failure here: a number on the page differs from its JSON report; run `make results RENDER=1`
    assert page == expected


def test_every_command_has_its_report_made_by_the_command_shown():
    reports = load_reports(RESULTS)
    runs = reports["runs"]
    assert set(NAMES) <= set(reports) and set(NAMES) <= set(runs)
    for name in NAMES:
        argv = runs[name]["argv"]
        jobs = next((int(a) for a, b in zip(argv[1:], argv) if b == "--jobs"), 1)
        assert argv in (command(name), command(name, full=True, jobs=jobs)), name  # reduced, or the seeds' own
        assert reports[name]["command"] == command(name)[0]


def test_the_page_quotes_the_reports_numbers():
    """A spot check that does not go through the renderer: numbers of the reports appear on the page."""
    page = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    reports = load_reports(RESULTS)
    seed = reports["compare-seed"]["summary"]
    assert f"{100 * seed['tapegrad']['error_rate']['mean']:.2f}%" in page
    assert f"{100 * seed['torch']['error_rate']['mean']:.2f}%" in page
    for res in reports["cv-main"]["results"]:
        assert f"{res['test_accuracy']:.3f}" in page
        assert f"{res['best']['mean_accuracy']:.4f} +- {res['best']['std_accuracy']:.4f}" in page


def test_a_template_expression_that_fails_names_its_line(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"a": 1}))
    template = tmp_path / "t.tmpl"
    template.write_text("first {{ x['a'] + 1 }}\nsecond {{ x['b'] }}\n")
    with pytest.raises(ValueError, match=r"t.tmpl:2: .*x\['b'\]"):
        render_text(tmp_path, template)
    template.write_text("{{ pct(x['a'] / 4) }} and {{ f3(0.97) }}")
    assert render_text(tmp_path, template) == "25.00% and 0.970"


def test_the_cv_figure_is_drawn_from_a_saved_report(tmp_path):
    from tapegrad.cli.figures import plot_cv

    report = json.loads((RESULTS / "cv-loss.json").read_text(encoding="utf-8"))
    plot_cv(report, str(tmp_path / "fig.png"))
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_full_grid_is_whole_and_its_pieces_agree():
    # seed 000's grid put together from a 16-core run's log and this machine's runs: every
    # configuration once, each search's best with a test accuracy, the overlaps identical
    grid = full_grid()
    assert [(s["activation"], s["optimizer"]) for s in grid["searches"]] == SEARCHES
    assert [s["configs"] for s in grid["searches"]] == [10, 120] * 3
    assert all(s["test_accuracy"] is not None for s in grid["searches"])
    assert grid["both"] >= 80 and grid["same"] == grid["both"]
    assert all(s["rerun"] is None or round(s["rerun"], 4) == s["accuracy"] for s in grid["searches"])
