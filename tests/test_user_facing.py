"""What a new user meets first agrees with the behaviour: README's commands, the extras tables, --help."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import tomllib

from tapegrad.cli import main
from tapegrad.cli.dispatch import build_parser

ROOT = Path(__file__).resolve().parent.parent


def run_json(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def test_the_readmes_first_train_command_gives_a_trained_model():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(m for m in re.findall(r"^tapegrad train[^\n#]*", readme, re.M))
    argv = shlex.split(line)[1:]
    report = run_json([*argv, "--json", "--quiet"])
    error = report["summary"]["test_error_rate"]["mean"]
    assert error < 0.05, f"README's `{line.strip()}` ends at {error:.1%} test error (chance is 50%)"


def test_every_extra_is_in_the_readme_and_getting_started_tables():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for page in (ROOT / "README.md", ROOT / "docs" / "getting-started.md"):
        rows = set(re.findall(r"^\| `\[(\w+)\]` \|", page.read_text(encoding="utf-8"), re.M))
        missing = set(extras) - rows - ({"dev"} if page.name == "getting-started.md" else set())
        assert not missing, f"{page.name} lacks the extras {sorted(missing)}"
        assert rows <= set(extras), f"{page.name} names extras that pyproject.toml lacks: {sorted(rows - set(extras))}"


def test_help_texts_say_what_the_defaults_are_in_words():
    parser = build_parser()
    texts = [parser.format_help()]
    sub = next(a for a in parser._actions if a.dest == "command")
    texts += [p.format_help() for p in sub.choices.values()]  # type: ignore[union-attr]
    everything = " ".join(" ".join(texts).split())
    assert "seed 002 defaults" not in everything and "seed 000's Table I" not in everything
    assert "'seed 002' (a 2-25-25-25-2 network trained with SGD" in everything  # what the seeds are
    train = " ".join(sub.choices["train"].format_help().split())  # type: ignore[union-attr]
    assert "SGD with learning rate 0.001, batches of 10, 200 epochs" in train
    cv = " ".join(sub.choices["cv"].format_help().split())  # type: ignore[union-attr]
    assert "10 learning rates log-spaced from 1e-4 to 1e-1" in cv and "--quick" in cv


def test_cv_quick_is_a_small_grid_and_options_beside_it_win():
    report = run_json(["cv", "--quick", "--epochs", "1", "--optimizer", "sgd,adam", "--json", "--n-test", "50"])
    config = report["config"]
    assert (config["k"], config["n_train"], config["n_test"], config["epochs"]) == (3, 300, 50, 1)
    assert config["grid"] == {
        "sgd": {"lr": [0.01, 0.1]},
        "adam": {"lr": [0.01, 0.1], "eps": [1e-8], "beta1": [0.9], "beta2": [0.999]},
    }
    assert [len(r["rows"]) for r in report["results"]] == [2, 2]


def test_compare_reports_cpu_time_per_side_beside_wall_time():
    report = run_json(["compare", "--epochs", "2", "--rounds", "2", "--n-train", "60", "--n-test", "20", "--json"])
    for n in report["rounds"]:
        for side in ("tapegrad", "torch"):
            # one torch thread, training only: the process time is near the wall time, never far above it
            assert 0 < n[f"{side}_cpu_s"] <= 1.5 * n[f"{side}_time_s"] + 0.05
    summary = report["summary"]
    cpu = [summary[side]["train_cpu_s"]["mean"] for side in ("tapegrad", "torch")]
    assert summary["cpu_ratio"] == cpu[0] / cpu[1]
