"""The forward-mode and checkpoint benchmarks run (tiny sizes: their numbers are not checked here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_jacfwd_benchmark_prints_both_shapes(capsys):
    load("jacfwd_vs_jacobian").main(["--few", "2", "--many", "30", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "f: R^2 -> R^30" in out and "f: R^30 -> R^2" in out
    timed = [line.split()[0] for line in out.splitlines() if line.endswith(" ms")]
    assert timed == ["tg.jacfwd", "tg.jacobian", "torch.func.jacfwd", "torch.func.jacrev"] * 2
    assert "goal (jacfwd faster than jacobian for few inputs, many outputs):" in out


def test_checkpoint_memory_benchmark_runs_both_cases_in_subprocesses(capsys):
    load("checkpoint_memory").main(["--layers", "4", "--width", "8", "--batch", "16", "--every", "2"])
    out = capsys.readouterr().out
    assert "no checkpoints" in out and "checkpoint every 2 layers" in out
    assert "     4 records" in out and "    10 records" in out  # 2 checkpoints + mul + mean; 4 x 2 + 2
    assert "same gradients: True" in out
