"""`tapegrad bench` runs on tiny settings and its numbers are consistent (no timing assertions)."""

from __future__ import annotations

import statistics

import pytest
import torch

from tapegrad.cli import bench
from tapegrad.cli.bench import seed_training as seed_training_module


@pytest.fixture(scope="module")
def seed_training():
    return vars(seed_training_module)


@pytest.mark.slow
def test_the_cli_entry_runs_the_quick_benchmark(capsys):
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--skip", "compute", "memory"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    for name in ("floor", "torch", "tapegrad", "traced", "tapegrad eager / torch autograd", "goals:"):
        assert name in out


@pytest.mark.slow
def test_seed_numbers_are_consistent(seed_training):
    result = seed_training["seed_benchmark"](rounds=3, n=100)
    times, median = result["times_s"], result["median_s"]
    assert set(times) == {"floor", "torch", "tapegrad", "traced"}
    for name, ts in times.items():
        assert len(ts) == 3 and all(t > 0 for t in ts)
        assert median[name] == statistics.median(ts)
    ratios = result["ratios"]
    assert ratios["tapegrad/torch"] == pytest.approx(median["tapegrad"] / median["torch"])
    assert ratios["traced/floor"] == pytest.approx(median["traced"] / median["floor"])
    # every contender trained the same weights from the same start on the same batches
    diffs = result["max_weight_diff"]
    assert diffs["traced"] <= 1e-6 and diffs["floor"] <= 1e-5 and diffs["torch"] <= 1e-5


@pytest.mark.slow
def test_compute_case_and_memory_check_run(seed_training):
    compute = seed_training["compute_benchmark"](rounds=1, n=50, width=16)
    assert compute["ratio"] == pytest.approx(compute["median_s"]["tapegrad"] / compute["median_s"]["torch"])
    assert compute["max_weight_diff"] <= 1e-5
    memory = seed_training["memory_benchmark"](steps=100, n=100)
    assert memory["steps"] == 100 and set(memory["growth_mb"]) == {"tapegrad", "traced"}
    assert memory["tape_records_after"] == 0 and memory["intermediate_alive_after"] is False


def test_report_marks_missed_goals(seed_training):
    lines = []
    seed = {
        "epochs": 2,
        "samples": 10,
        "median_s": {"floor": 1.0, "torch": 2.0, "tapegrad": 1.8, "traced": 1.1},
        "max_weight_diff": {},
        "ratios": {"tapegrad/torch": 0.9, "traced/floor": 1.1},
    }
    assert seed_training["report"](seed, None, None, out=lines.append) is False
    text = "\n".join(lines)
    assert "FAIL  tapegrad eager / torch autograd" in text and "PASS  tapegrad traced / hand-written floor" in text
