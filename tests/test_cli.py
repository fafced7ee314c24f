"""The `tapegrad` command end to end on tiny settings: train, compare, cv, graph, bench."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import nn
from tapegrad.cli import TABLE_I_LRS, build_parser, main
from tapegrad.cli.common import build_model

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-train", "60", "--n-test", "40", "--hidden", "8,8"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys, *argv: str) -> dict:
    """Run the command in-process with --json; its parsed output."""
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_through_the_entry_point_writes_json_plots_and_checkpoint(tmp_path):
    paths = {flag: tmp_path / name for flag, name in (("--plot", "c.png"), ("--boundary", "b.png"))}
    ckpt = tmp_path / "seed.safetensors"
    argv = ["train", "--epochs", "3", *TINY, "--save", str(ckpt), "--json"]
    for flag, path in paths.items():
        argv += [flag, str(path)]
    proc = subprocess.run([sys.executable, "-m", "tapegrad", *argv], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["command"] == "train"
    assert out["config"]["sizes"] == [2, 8, 8, 2]
    assert out["config"]["lr"] == 0.001 and out["config"]["optimizer"] == "sgd" and out["config"]["loss"] == "mse"
    (rnd,) = out["rounds"]
    assert 0 <= rnd["test_error_rate"] <= 1 and rnd["test_accuracy"] == pytest.approx(1 - rnd["test_error_rate"])
    assert rnd["train_time_s"] > 0
    for curve in ("loss", "error_rate", "val_loss", "val_error_rate", "epoch_time"):
        assert len(out["history"][curve]) == 3
    for path in paths.values():
        assert path.read_bytes()[:8] == PNG_MAGIC
    # the checkpoint holds the trained network: loading it reproduces the reported test error
    torch.manual_seed(123)
    model = build_model([8, 8], "relu", "mse")
    nn.load(model, ckpt)
    x, y = nn.data.disk_dataset(60, seed=0)
    xt, yt = nn.data.disk_dataset(40, seed=1)
    _, xt = nn.data.normalize(x, xt)
    assert nn.evaluate(model, (xt, yt)).error_rate == pytest.approx(rnd["test_error_rate"])


def test_train_rounds_report_mean_and_std_of_the_rounds(capsys):
    out = run_cli(capsys, "train", "--epochs", "1", "--rounds", "3", *TINY, "--seed", "5")
    errors = [r["test_error_rate"] for r in out["rounds"]]
    assert [r["seed"] for r in out["rounds"]] == [5, 6, 7]
    assert out["summary"]["test_error_rate"]["mean"] == pytest.approx(statistics.fmean(errors))
    assert out["summary"]["test_error_rate"]["std"] == pytest.approx(statistics.stdev(errors))


def test_train_learns_the_disk(capsys):
    out = run_cli(
        capsys,
        "train",
        "--epochs",
        "40",
        "--n-train",
        "300",
        "--n-test",
        "300",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--loss",
        "ce",
        "--init",
        "xavier",
    )
    history = out["history"]["loss"]
    assert history[-1] < 0.5 * history[0]
    assert out["rounds"][0]["test_error_rate"] < 0.1


def test_text_output_and_quiet(capsys):
    assert main(["train", "--epochs", "1", *TINY]) == 0
    text = capsys.readouterr().out
    assert "2-8-8-2 relu/tanh, mse, sgd lr=0.001" in text and "test error rate" in text
    assert main(["train", "--epochs", "1", *TINY, "--quiet"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


def test_compare_starts_both_sides_from_the_same_weights_and_batches(capsys):
    out = run_cli(capsys, "compare", "--rounds", "2", "--epochs", "2", "--n-train", "100", *TINY[2:])
    assert len(out["rounds"]) == 2
    for r in out["rounds"]:
        # same weights, same batches, same update rule: the two runs end at the same test error
        assert abs(r["tapegrad_error_rate"] - r["torch_error_rate"]) <= 0.025
        assert r["tapegrad_time_s"] > 0 and r["torch_time_s"] > 0
    s = out["summary"]
    ours = [r["tapegrad_time_s"] for r in out["rounds"]]
    assert s["tapegrad"]["train_time_s"]["mean"] == pytest.approx(statistics.fmean(ours))
    assert s["time_ratio"] == pytest.approx(s["tapegrad"]["train_time_s"]["mean"] / s["torch"]["train_time_s"]["mean"])
    assert set(s["torch"]) == {"error_rate", "train_time_s", "train_cpu_s"}
    ratios = [r["tapegrad_time_s"] / r["torch_time_s"] for r in out["rounds"]]
    assert s["time_ratio_median"] == pytest.approx(statistics.median(ratios))


def test_compare_text_table(capsys):
    assert main(["compare", "--rounds", "1", "--epochs", "1", *TINY]) == 0
    text = capsys.readouterr().out
    assert "PyTorch" in text and "tapegrad" in text and "time ratio tapegrad / PyTorch" in text


def test_cv_defaults_are_seed_000_table_i():
    args = build_parser().parse_args(["cv"])
    assert len(args.lrs) == 10 and args.lrs[0] == pytest.approx(1e-4) and args.lrs[-1] == pytest.approx(1e-1)
    ratios = [b / a for a, b in zip(TABLE_I_LRS, TABLE_I_LRS[1:])]
    assert all(r == pytest.approx(10 ** (1 / 3)) for r in ratios)  # log-spaced
    assert args.epss == [1e-8, 1e-7, 1e-6] and args.beta1s == [0.8, 0.9] and args.beta2s == [0.9, 0.999]
    assert args.optimizer == ["sgd", "adam"] and args.k == 5 and args.epochs == 100 and args.loss == ["ce"]
    from tapegrad.cli.cv_grid import grid_for

    assert math.prod(len(v) for v in grid_for("adam", args).values()) == 120
    assert list(grid_for("sgd", args)) == ["lr"]


def test_cv_table_is_sorted_and_equal_with_two_jobs(capsys):
    argv = [
        "cv",
        "--optimizer",
        "sgd,adam",
        "--lr",
        "0.01,0.3",
        "--eps",
        "1e-8",
        "--beta1",
        "0.9",
        "--beta2",
        "0.9,0.999",
        "--k",
        "2",
        "--epochs",
        "2",
        "--final-epochs",
        "3",
        *TINY,
    ]
    one = run_cli(capsys, *argv, "--jobs", "1")
    two = run_cli(capsys, *argv, "--jobs", "2")
    eager = run_cli(capsys, *argv, "--eager")
    untimed = lambda report: [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in report["results"]]  # noqa: E731
    assert untimed(one) == untimed(two)
    assert untimed(eager) == untimed(one)  # traced fits (the default) train the eager weights
    assert one["config"]["traced"] and not eager["config"]["traced"]
    assert one["config"]["final_epochs"] == 3 and one["config"]["k"] == 2
    sgd, adam = one["results"]
    assert (sgd["optimizer"], adam["optimizer"]) == ("sgd", "adam")
    assert len(sgd["rows"]) == 2 and len(adam["rows"]) == 4
    for res in one["results"]:
        means = [r["mean_accuracy"] for r in res["rows"]]
        assert means == sorted(means, reverse=True) and res["best"] == res["rows"][0]
        assert all(len(r["fold_accuracies"]) == 2 for r in res["rows"])
        assert 0 <= res["test_accuracy"] <= 1


def test_graph_writes_svg_and_dot(tmp_path, capsys):
    svg, dot = tmp_path / "g.svg", tmp_path / "g.dot"
    assert main(["graph", "--out", str(svg), "--backward", "--quiet"]) == 0
    assert main(["graph", "--out", str(dot), "--quiet"]) == 0
    assert "<svg" in svg.read_text()
    source = dot.read_text()
    assert source.startswith("digraph") and "Linear" in source


def test_bench_hands_its_arguments_to_tapegrad_bench(monkeypatch):
    seen = []
    fake = types.ModuleType("tapegrad.cli.bench")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "tapegrad.cli.bench", fake)
    import tapegrad.cli

    monkeypatch.setattr(tapegrad.cli, "bench", fake, raising=False)
    assert main(["bench", "--rounds", "3", "--help"]) == 0
    assert seen == [["--rounds", "3", "--help"]]


BAD = [
    (["train", "--epochs", "-1"], "--epochs"),
    (["train", "--epochs", "ten"], "--epochs"),
    (["train", "--activation", "swish"], "--activation"),
    (["train", "--hidden", "25,,25"], "--hidden"),
    (["train", "--hidden", "25,x"], "--hidden"),
    (["train", "--hidden", "0"], "--hidden"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--betas", "0.9"], "--betas"),
    (["train", "--plot", "{tmp}/missing/c.png"], "does not exist"),
    (["train", "--boundary", "{tmp}"], "is a directory"),
    (["train", "--plot", "{tmp}/c.txt"], ".png"),
    (["train", "--save", "{tmp}/missing/x.safetensors"], "does not exist"),
    (["graph", "--out", "{tmp}/g.txt"], ".svg"),
    (["cv", "--k", "1"], "--k"),
    (["cv", "--activation", "relu,swish"], "swish"),
    (["cv", "--k", "5", "--n-train", "4"], "--k"),
    (["compare", "--rounds", "0"], "--rounds"),
    (["train", "--no-such-flag"], "--no-such-flag"),
    (["fly"], "fly"),
    ([], "command"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_line(argv, needle, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tapegrad") and "error:" in lines[0]
    assert needle in lines[0]
    assert captured.out == "" and not list(tmp_path.iterdir())  # nothing ran, nothing was written


def test_bad_argument_through_the_entry_point_has_no_traceback(tmp_path):
    env = {**os.environ, "COLUMNS": "80"}
    cmd = [sys.executable, "-m", "tapegrad", "train", "--plot", str(tmp_path / "no" / "c.png")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "does not exist" in proc.stderr


def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly():
    # `tapegrad graph ... | grep -q` or `| head`: the reader's exit is no error of the command's
    script = (
        "import sys\n"
        "from tapegrad.cli.guard import guarded\n"
        "def run():\n"
        "    for i in range(100000):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "sys.exit(guarded('graph', False, run))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()  # the reader has what it wanted
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and err == b"", err
