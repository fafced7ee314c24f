"""`tapegrad bench` runs on tiny settings and its numbers are consistent (no timing assertions)."""

from __future__ import annotations

import statistics

import pytest
import torch

from tapegrad.cli import bench
from tapegrad.cli.bench import memory, seed_report, seed_training


@pytest.mark.slow
def test_the_cli_entry_runs_the_quick_benchmark(capsys):
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--skip", "compute", "memory", "grid", "jax"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    for name in ("floor", "torch", "tapegrad", "traced", "user", "traced+opt", "goals:"):
        assert name in out
    assert "tapegrad eager (user-style) / torch autograd" in out
    if not torch.cuda.is_available():
        assert "GPU: skipped (no CUDA device here" in out


@pytest.mark.slow
def test_seed_numbers_are_consistent():
    result = seed_training.seed_benchmark(rounds=3, n=100, jax=False)
    times, median = result["times_s"], result["median_s"]
    assert set(times) == {"floor", "torch", "tapegrad", "user", "traced", "traced+opt"}
    for name, ts in times.items():
        assert len(ts) == 3 and all(t > 0 for t in ts)
        assert median[name] == statistics.median(ts)
    ratios = result["ratios"]
    assert ratios["tapegrad/torch"] == pytest.approx(median["tapegrad"] / median["torch"])
    assert ratios["traced/floor"] == pytest.approx(median["traced"] / median["floor"])
    # every contender trained the same weights from the same start on the same batches
    diffs = result["max_weight_diff"]
    assert diffs["traced"] <= 1e-6 and diffs["floor"] <= 1e-5 and diffs["torch"] <= 1e-5
    assert diffs["user"] == 0 and diffs["traced+opt"] == 0  # the same kernels as the eager step
    assert ratios["user/torch"] == pytest.approx(median["user"] / median["torch"])
    assert ratios["traced+opt/torch"] == pytest.approx(median["traced+opt"] / median["torch"])


@pytest.mark.slow
def test_compute_case_and_memory_check_run():
    compute = seed_training.compute_benchmark(rounds=1, n=50, width=16)
    assert compute["ratio"] == pytest.approx(compute["median_s"]["tapegrad"] / compute["median_s"]["torch"])
    assert compute["max_weight_diff"] <= 1e-5
    checked = memory.memory_benchmark(steps=100, n=100)
    assert checked["steps"] == 100 and set(checked["growth_mb"]) == {"tapegrad", "traced"}
    assert checked["tape_records_after"] == 0 and checked["intermediate_alive_after"] is False


def test_report_marks_missed_goals():
    lines = []
    seed = {
        "epochs": 2,
        "samples": 10,
        "median_s": {"floor": 1.0, "torch": 2.0, "tapegrad": 1.8, "traced": 1.1},
        "max_weight_diff": {},
        "ratios": {"tapegrad/torch": 0.9, "user/torch": 0.9, "traced+opt/torch": 0.17, "traced/floor": 1.1},
    }
    ms, faults = {"torch": 20.0, "eager": 24.0, "traced": 18.0}, {"torch": 0, "eager": 8160, "traced": 0}
    cells = [{"width": 2048, "batch": 10, "ms": ms, "faults": faults, "ratio": {"eager": 1.2, "traced": 0.9}}]
    assert seed_report.report(seed, None, None, out=lines.append, cells=[]) is False
    text = "\n".join(lines)
    assert "FAIL  tapegrad eager / torch autograd" in text  # the fused step's goal is 0.55 (issue 22)
    assert "FAIL  tapegrad eager (user-style) / torch autograd" in text
    assert "PASS  traced step with optimizer / torch autograd" in text
    assert "PASS  tapegrad traced / hand-written floor" in text and "jax is not installed" in text
    lines.clear()
    seed["ratios"]["user/torch"] = seed["ratios"]["tapegrad/torch"] = 0.5
    assert seed_report.report(seed, None, None, out=lines.append) is True
    assert seed_report.report(seed, None, None, out=lines.append, cells=cells) is False
    text = "\n".join(lines)
    assert "FAIL  width 2048, batch 10: eager / torch" in text and "PASS  width 2048, batch 10: traced" in text
    assert " 24.000 (8160)" in text  # ms/step and page faults/step
    lines.clear()
    seed["ratios"]["traced+opt/torch"] = 0.19  # issue 26's goal: 0.18
    assert seed_report.report(seed, None, None, out=lines.append) is False
    assert "FAIL  traced step with optimizer / torch autograd    0.190  (goal <= 0.18)" in "\n".join(lines)


def test_grid_cell_times_and_counts_page_faults():
    from tapegrad.cli.bench import grid

    cell = grid.cell(16, 10, rounds=1)
    assert set(cell["ms"]) == {"torch", "eager", "traced"} and all(v > 0 for v in cell["ms"].values())
    assert all(v >= 0 for v in cell["faults"].values())
    assert cell["ratio"]["eager"] == pytest.approx(cell["ms"]["eager"] / cell["ms"]["torch"])
    assert grid.steps_for(2048, 1000) == 1 and grid.steps_for(25, 10) == 50


def test_gpu_section_says_why_it_is_skipped_without_cuda():
    from tapegrad.cli.bench import gpu

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the section runs (tests/test_cuda_graph.py covers it)")
    lines = []
    assert gpu.gpu_benchmark(1, out=lines.append) is None
    assert lines == ["\nGPU: skipped (no CUDA device here: torch.cuda.is_available() is False)"]


def test_a_missed_goal_exits_0_unless_check_asks_for_1(monkeypatch, capsys):
    measured = {"growth_mb": {"x": 1e9}, "tape_records_after": 0, "intermediate_alive_after": False}
    monkeypatch.setattr(memory, "memory_benchmark", lambda steps: {"steps": steps, **measured})
    args = ["--only", "memory", "--skip", "gpu"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "FAIL  RSS growth, x (MB)" in out and "--check` makes it exit status 1" in out
    assert bench.main([*args, "--check"]) == 1
