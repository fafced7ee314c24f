"""cv and compare beyond their tables: ablation lists, the seed's loss scaling, PyTorch's own init,
CSV exports, the cv figure and progress where people look."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.cli import baseline, build_parser, main
from tapegrad.cli.common import build_loss, build_optimizer, load_data
from tapegrad.cli.compare import initial_models
from tapegrad.cli.export import flatten, write_csv
from tapegrad.progress import Progress, clock

TINY = ["--n-train", "60", "--n-test", "40", "--hidden", "8,8"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- the seed's loss scaling: reduction="batchmean" ------------------------------------------------


@pytest.mark.parametrize("loss", ["MSELoss", "L1Loss"])
def test_batchmean_is_the_sum_over_the_batch_size_with_torchs_gradient(loss):
    torch.manual_seed(0)
    x = torch.randn(7, 3, dtype=torch.float64)
    y = torch.randn(7, 3, dtype=torch.float64)
    xt = tg.tensor(x, requires_grad=True)
    with tg.Tape() as tape:
        out = getattr(nn, loss)(reduction="batchmean")(xt, y)
    (grad,) = tape.gradient(out, [xt])
    ref_x = x.clone().requires_grad_(True)
    ref = getattr(torch.nn, loss)(reduction="sum")(ref_x, y) / 7
    ref.backward()
    assert out.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(grad.data, ref_x.grad, rtol=1e-12, atol=1e-14)
    assert tg.gradcheck(lambda a: getattr(nn, loss)(reduction="batchmean")(a, y), [xt])


def test_batchmean_mse_on_two_outputs_is_twice_the_mean_and_the_seed_formula():
    x = torch.tensor([[0.5, -0.25], [0.1, 0.9], [-1.0, 0.3]])
    labels = torch.tensor([0, 1, 1])
    y = nn.losses.signed_targets(labels, 2).data
    seed = sum(float(((x[i] - y[i]) ** 2).sum()) for i in range(3)) / 3  # (1/N) sum ||y_i - yhat_i||^2
    assert nn.MSELoss(reduction="batchmean")(x, labels).item() == pytest.approx(seed, rel=1e-6)
    assert nn.MSELoss(reduction="batchmean")(x, labels).item() == pytest.approx(2 * nn.MSELoss()(x, labels).item())
    logits = torch.randn(5, 2)
    target = torch.tensor([0, 1, 1, 0, 1])
    assert nn.CrossEntropyLoss(reduction="batchmean")(logits, target).item() == pytest.approx(
        nn.CrossEntropyLoss()(logits, target).item()
    )


def test_the_pytorch_baseline_scales_its_loss_like_tapegrad():
    x, labels = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
    y = nn.losses.signed_targets(labels, 2).data
    for reduction in ("mean", "batchmean"):
        ours = nn.MSELoss(reduction=reduction)(x, labels).item()
        theirs = baseline.make_loss("mse", reduction)(x, y).item()
        assert ours == pytest.approx(theirs, rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="per_sample")


def test_the_pytorch_baseline_scores_its_training_set_after_every_epoch_as_fit_does():
    # the same untimed work between epochs on both sides of compare (what it leaves behind, e.g.
    # OpenMP threads spinning after the scoring's forward, then weighs on both timings alike)
    args = build_parser().parse_args(["compare", *TINY, "--epochs", "3"])
    model, ref = initial_models(args, seed=0)
    data = load_data(args.n_train, args.n_test, 0)
    opt = build_optimizer("sgd", model.parameters(), args.lr, 0.0, (0.9, 0.999), 1e-8)
    history = nn.fit(model, build_loss("mse"), opt, data.train, 3, args.batch_size, progress=False, seed=0)
    raw = (data.train[0].data, data.train[1].data)
    test = (data.test[0].data, data.test[1].data)
    torch_opt = baseline.make_optimizer("sgd", ref.parameters(), args.lr, 0.0, (0.9, 0.999), 1e-8)
    run = baseline.train(ref, "mse", torch_opt, raw, test, 3, args.batch_size, 0)
    assert len(run.train_error_rate) == 3 and run.train_error_rate != [0.0] * 3
    assert run.train_error_rate == pytest.approx(history.error_rate, abs=1.5 / args.n_train)  # one point at most


# --- compare --torch-init -----------------------------------------------------------------------------


def test_torch_init_same_copies_the_weights_and_torch_default_keeps_pytorchs_own():
    args = build_parser().parse_args(["compare", *TINY])
    model, ref = initial_models(args, seed=3)
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in model.state_dict().items())
    args = build_parser().parse_args(["compare", *TINY, "--torch-init", "torch-default"])
    model, ref = initial_models(args, seed=3)
    ours, theirs = model.state_dict(), ref.state_dict()
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        fan_in = ref.get_submodule(name.rsplit(".", 1)[0]).in_features
        assert value.abs().max() <= 1 / math.sqrt(fan_in)  # torch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert not torch.equal(value, ours[name])
    assert all(value.abs().sum() > 0 for name, value in theirs.items() if name.endswith("bias"))  # ours are zero


def test_compare_json_csv_and_one_line_per_round(tmp_path, capsys):
    path = tmp_path / "rounds.csv"
    argv = ["compare", "--rounds", "2", "--epochs", "2", *TINY, "--reduction", "batchmean"]
    assert main([*argv, "--torch-init", "torch-default", "--csv", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["config"]["torch_init"] == "torch-default" and report["config"]["reduction"] == "batchmean"
    lines = [line for line in captured.err.splitlines() if line.startswith("compare [")]
    assert [line.split("]")[0] for line in lines] == ["compare [1/2", "compare [2/2"]
    assert "round 0: tapegrad" in lines[0] and "PyTorch" in lines[0]
    rows = list(csv.DictReader(path.open()))
    assert [int(r["round"]) for r in rows] == [0, 1]
    for key, value in report["rounds"][1].items():
        assert float(rows[1][key]) == pytest.approx(value)
    assert rows[0]["config.torch_init"] == "torch-default" and rows[0]["config.sizes"] == "2,8,8,2"
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


# --- cv: ablation lists, CSV, figure, progress ---------------------------------------------------------


def test_cv_searches_every_loss_and_init_and_exports_them(tmp_path, capsys):
    csv_path, png = tmp_path / "grid.csv", tmp_path / "fig.png"
    argv = ["cv", "--optimizer", "sgd", "--lr", "0.01,0.1", "--k", "2", "--epochs", "1", *TINY]
    argv += ["--loss", "mse,ce", "--init", "default,xavier", "--csv", str(csv_path), "--plot", str(png), "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    combos = [(r["loss"], r["init"]) for r in report["results"]]
    assert combos == [("mse", "default"), ("mse", "xavier"), ("ce", "default"), ("ce", "xavier")]
    assert report["config"]["losses"] == ["mse", "ce"] and report["config"]["inits"] == ["default", "xavier"]
    assert report["wall_time_s"] > 0 and report["machine"]["cpus"] >= 1
    # one streamed line per configuration, after an estimate of the whole run
    err = captured.err.splitlines()
    assert err[0].startswith("cv: 8 configurations x 2 folds") and "in all" in err[0]
    assert [line.split("]")[0] for line in err[1:]] == [f"cv [{i}/8" for i in range(1, 9)]
    assert png.read_bytes()[:8] == PNG_MAGIC
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 8
    for res in report["results"]:
        mine = [r for r in rows if (r["loss"], r["init"]) == (res["loss"], res["init"])]
        assert [float(r["params.lr"]) for r in mine] == [row["params"]["lr"] for row in res["rows"]]
        assert float(mine[0]["test_accuracy"]) == pytest.approx(res["test_accuracy"]) and mine[1]["test_accuracy"] == ""
        assert float(mine[0]["fold_accuracies.1"]) == pytest.approx(res["best"]["fold_accuracies"][1])
        assert mine[0]["best"] == "True" and mine[0]["rank"] == "1"


def test_cv_rejects_an_unknown_loss_in_the_list(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["cv", "--loss", "mse,hinge"])
    assert exit_.value.code == 2 and "hinge" in capsys.readouterr().err


def test_cross_validate_reports_each_configuration_as_it_finishes():
    torch.manual_seed(0)
    x, y = nn.data.disk_dataset(40, seed=0)

    def build(lr):
        model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
        return model, nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=lr)

    seen = []
    table = nn.cross_validate(build, {"lr": [0.01, 0.1, 0.5]}, (x, y), k=2, epochs=1, callback=seen.append)
    assert [r.params["lr"] for r in seen] == [0.01, 0.1, 0.5]  # grid order, each once
    assert sorted(seen, key=lambda r: r.params["lr"]) == sorted(table.rows, key=lambda r: r.params["lr"])


# --- the pieces -------------------------------------------------------------------------------------


def test_flatten_and_write_csv(tmp_path):
    assert flatten({"a": {"b": 1}, "c": [2, 3], "d": None}) == {"a.b": 1, "c.0": 2, "c.1": 3, "d": None}
    path = tmp_path / "t.csv"
    write_csv(path, [{"x": 1, "y": None}, {"x": 2, "z": "q"}])
    assert path.read_text().splitlines() == ["x,y,z", "1,,", "2,,q"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_lines_elsewhere_and_nothing_when_quiet():
    term = _Terminal()
    bar = Progress(2, "cv", "config", stream=term, lines_on_bar=True)
    assert bar.mode == "bar"
    bar.note("estimate")
    bar.update("first done")
    bar.close()
    assert "estimate" in term.getvalue() and "cv [1/2] first done" in term.getvalue()
    log = io.StringIO()
    lines = Progress(2, "compare", "round", stream=log)
    assert lines.mode == "lines"
    lines.update("round 0")
    lines.update("round 1")
    assert log.getvalue().splitlines() == ["compare [1/2] round 0", "compare [2/2] round 1"]
    quiet = io.StringIO()
    off = Progress(2, "x", "y", enabled=False, stream=quiet)
    off.note("n")
    off.update("u")
    assert off.mode == "off" and quiet.getvalue() == ""
    assert clock(59.6) == "1:00" and clock(3725) == "1:02:05"
