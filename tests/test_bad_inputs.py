"""Bad inputs to every public entry point, as tables: one row per entry point and bad value, with
the error type expected and a fragment of its message (which names the function or layer and the
argument). A new entry point gets its rows here. Checkpoint faults are in test_checkpoint_faults.py."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch

import nn
import tapegrad as tg
from tapegrad.cli import main

NAN, INF = float("nan"), float("inf")


def lin():
    torch.manual_seed(0)
    return nn.Linear(2, 2)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 2))


def data(n=6):
    return nn.data.disk_dataset(n, seed=0)


def sgd(m=None):
    return nn.SGD((m or model()).parameters(), lr=0.1)


def fit(**changes):
    m = model()
    args = dict(model=m, loss_fn=nn.CrossEntropyLoss(), optimizer=sgd(m), train_data=data(), epochs=1, batch_size=2)
    args.update(changes)
    return lambda: nn.fit(**args)


# (id, call, error type, fragment of the message)
OPTIMIZERS = [
    ("SGD bare tensor", lambda: nn.SGD(lin().weight, lr=0.5), TypeError, "SGD: params must be an iterable"),
    ("Adam bare tensor", lambda: nn.Adam(lin().weight), TypeError, "wrap it in a list"),
    ("SGD params None", lambda: nn.SGD(None, lr=0.1), TypeError, "got None"),
    ("SGD params a dict", lambda: nn.SGD(dict(lin().named_parameters()), lr=0.1), TypeError, "got dict"),
    ("SGD params empty", lambda: nn.SGD([], lr=0.1), ValueError, "empty parameter list"),
    ("SGD params of ints", lambda: nn.SGD([1, 2], lr=0.1), TypeError, "got int"),
    ("SGD lr negative", lambda: nn.SGD(lin().parameters(), lr=-1), ValueError, "invalid learning rate: lr=-1"),
    ("SGD lr str", lambda: nn.SGD(lin().parameters(), lr="abc"), TypeError, "SGD: lr must be a real number"),
    ("SGD lr None", lambda: nn.SGD(lin().parameters(), lr=None), TypeError, "lr must be a real number, got None"),
    ("SGD momentum negative", lambda: nn.SGD(lin().parameters(), lr=0.1, momentum=-0.5), ValueError,
     "invalid momentum value: momentum=-0.5"),
    ("SGD momentum NaN", lambda: nn.SGD(lin().parameters(), lr=0.1, momentum=NAN), ValueError, "momentum=nan"),
    ("SGD weight_decay NaN", lambda: nn.SGD(lin().parameters(), lr=0.1, weight_decay=NAN), ValueError,
     "invalid weight_decay value: weight_decay=nan"),
    ("SGD dampening NaN", lambda: nn.SGD(lin().parameters(), lr=0.1, dampening=NAN), ValueError, "dampening"),
    ("SGD nesterov without momentum", lambda: nn.SGD(lin().parameters(), lr=0.1, nesterov=True), ValueError,
     "Nesterov"),
    ("SGD nesterov a string", lambda: nn.SGD(lin().parameters(), lr=0.1, momentum=0.9, nesterov="yes"), TypeError,
     "nesterov must be True or False"),
    ("Adam lr NaN", lambda: nn.Adam(lin().parameters(), lr=NAN), ValueError, "Adam: invalid learning rate: lr=nan"),
    ("Adam weight_decay NaN", lambda: nn.Adam(lin().parameters(), weight_decay=NAN), ValueError, "weight_decay=nan"),
    ("Adam weight_decay negative", lambda: nn.Adam(lin().parameters(), weight_decay=-1), ValueError, "weight_decay"),
    ("Adam eps negative", lambda: nn.Adam(lin().parameters(), eps=-1e-8), ValueError, "invalid epsilon value"),
    ("Adam eps NaN", lambda: nn.Adam(lin().parameters(), eps=NAN), ValueError, "eps=nan"),
    ("Adam one beta", lambda: nn.Adam(lin().parameters(), betas=(0.9,)), ValueError, "betas must be a pair"),
    ("Adam three betas", lambda: nn.Adam(lin().parameters(), betas=(0.9, 0.9, 0.9)), ValueError, "pair"),
    ("Adam beta 1", lambda: nn.Adam(lin().parameters(), betas=(0.9, 1.0)), ValueError,
     "invalid beta parameter at index 1"),
    ("Adam beta NaN", lambda: nn.Adam(lin().parameters(), betas=(NAN, 0.9)), ValueError, "index 0"),
    ("Adam betas a number", lambda: nn.Adam(lin().parameters(), betas=0.9), TypeError, "betas must be a pair"),
    ("Adam amsgrad a string", lambda: nn.Adam(lin().parameters(), amsgrad="no"), TypeError, "amsgrad"),
    ("load_state_dict not a dict", lambda: sgd().load_state_dict([]), TypeError,
     "SGD.load_state_dict: expected a dict"),
    ("load_state_dict parameter 99", lambda: sgd().load_state_dict(
        {"state": {99: {}}, "param_groups": sgd().state_dict()["param_groups"]}), ValueError, "parameter 99"),
    ("add_param_group not a dict", lambda: sgd().add_param_group([lin().weight]), TypeError,
     "a parameter group must be a dict"),
    ("add_param_group lr NaN", lambda: sgd().add_param_group({"params": [lin().weight], "lr": NAN}), ValueError,
     "invalid learning rate"),
]  # fmt: skip

TRAINING = [
    ("fit empty data", fit(train_data=data(0)), ValueError, "fit: train_data is empty"),
    ("fit epochs -1", fit(epochs=-1), ValueError, "fit: epochs must be at least 1, got -1"),
    ("fit epochs 2.5", fit(epochs=2.5), TypeError, "fit: epochs must be an integer, got float 2.5"),
    ("fit batch_size 0", fit(batch_size=0), ValueError, "fit: batch_size must be at least 1"),
    ("fit batch_size None", fit(batch_size=None), TypeError, "fit: batch_size must be an integer"),
    ("fit optimizer None", fit(optimizer=None), TypeError, "fit: optimizer must be an optimizer"),
    ("fit model None", fit(model=None), TypeError, "fit: model must be an nn.Module"),
    ("fit loss None", fit(loss_fn=None), TypeError, "fit: loss_fn must be a loss"),
    ("fit data not a pair", fit(train_data=data()[0]), TypeError, "fit: train_data must be a pair"),
    ("fit data of lists", fit(train_data=([[0.1, 0.2]], [1])), TypeError, "the inputs of train_data must be a tensor"),
    ("fit lengths differ", fit(train_data=(data()[0], data()[1][:3])), ValueError, "differ in length: 6 and 3"),
    ("fit val_data lengths", fit(val_data=(data()[0], data()[1][:3])), ValueError, "val_data differ in length"),
    ("fit seed a string", fit(seed="1"), TypeError, "fit: seed must be an integer"),
    ("fit loss class", fit(loss_fn=nn.MSELoss), TypeError, "pass an instance, not the class MSELoss"),
    ("fit optimizer class", fit(optimizer=nn.SGD), TypeError, "not the class SGD"),
    ("normalize None", lambda: nn.data.normalize(None), TypeError, "normalize: train must be a tensor, got None"),
    ("normalize other a list", lambda: nn.data.normalize(data()[0], [1]), TypeError, "others[0] must be a tensor"),
    ("evaluate data None", lambda: nn.evaluate(model(), None), TypeError, "evaluate: data must be a pair"),
    ("batches batch_size 2.5", lambda: nn.data.batches(data(), batch_size=2.5), TypeError,
     "batches: batch_size must be an integer, got float 2.5"),
    ("batches batch_size 0", lambda: nn.data.batches(data(), 0), ValueError, "batch_size must be at least 1"),
    ("batches shuffle a string", lambda: nn.data.batches(data(), 2, shuffle="yes"), TypeError, "shuffle"),
    ("batches data None", lambda: nn.data.batches(None, 2), TypeError, "batches: data must be a pair"),
    ("disk_dataset 2.5", lambda: nn.data.disk_dataset(2.5), TypeError, "disk_dataset: n must be an integer"),
    ("disk_dataset -1", lambda: nn.data.disk_dataset(-1), ValueError, "disk_dataset: n must be at least 0"),
    ("disk_dataset n a string", lambda: nn.data.disk_dataset("10"), TypeError, "n must be an integer, got str"),
    ("disk_dataset seed 0.5", lambda: nn.data.disk_dataset(5, seed=0.5), TypeError, "seed must be an integer"),
    ("disk_dataset int dtype", lambda: nn.data.disk_dataset(5, dtype=torch.int64), TypeError, "dtype"),
    ("kfold_indices k 1", lambda: nn.data.kfold_indices(10, 1), ValueError, "2 <= k <= n"),
    ("kfold_indices k 2.0", lambda: nn.data.kfold_indices(10, 2.0), TypeError, "k must be an integer"),
    ("cross_validate build_fn None", lambda: nn.cross_validate(None, {"lr": [0.1]}, data(10)), TypeError,
     "build_fn must be callable"),
    ("cross_validate k 1", lambda: nn.cross_validate(print, {"lr": [0.1]}, data(10), k=1), ValueError,
     "cross_validate: k must be at least 2"),
    ("cross_validate jobs 0", lambda: nn.cross_validate(print, {"lr": [0.1]}, data(10), jobs=0), ValueError,
     "jobs must be at least 1"),
]  # fmt: skip


def test_fit_with_the_optimizer_and_data_swapped_names_the_order():
    m = model()
    with pytest.raises(TypeError, match=r"out of order.*fit\(model, loss_fn, optimizer, train_data"):
        nn.fit(m, nn.CrossEntropyLoss(), data(), sgd(m), 1, 2)


RAGGED = [[1.0, 2.0], [3.0]]
LAYERS = [
    ("Linear None", lambda: lin()(None), TypeError, "Linear: input must be a tensor, got None"),
    ("Linear str", lambda: lin()("abc"), TypeError, "Linear: input must be a tensor, got str 'abc'"),
    ("Linear ragged list", lambda: lin()(RAGGED), tg.ShapeError, "Linear: input is not rectangular"),
    ("Linear list of strings", lambda: lin()([["a", "b"]]), TypeError, "Linear: input must be a tensor or a list"),
    ("Linear scalar", lambda: lin()(tg.tensor(1.0)), tg.ShapeError, "expects inputs with 2 features"),
    ("Linear wrong width", lambda: lin()(torch.ones(3, 5)), tg.ShapeError, "input shape (3, 5)"),
    ("Linear in_features 2.5", lambda: nn.Linear(2.5, 3), TypeError, "Linear: in_features must be an integer"),
    ("Linear out_features -1", lambda: nn.Linear(2, -1), ValueError, "Linear: out_features must be at least 0"),
    ("ReLU None", lambda: nn.ReLU()(None), TypeError, "ReLU: input must be a tensor"),
    ("Tanh str", lambda: nn.Tanh()("x"), TypeError, "Tanh: input must be a tensor"),
    ("Sigmoid ragged", lambda: nn.Sigmoid()(RAGGED), tg.ShapeError, "Sigmoid: input is not rectangular"),
    ("Sequential None", lambda: model()(None), TypeError, "Linear: input must be a tensor"),
    ("MSELoss target None", lambda: nn.MSELoss()(torch.ones(3, 2), None), TypeError,
     "MSELoss: target must be a tensor, got None"),
    ("MSELoss input None", lambda: nn.MSELoss()(None, torch.ones(3, 2)), TypeError, "MSELoss: input must be a tensor"),
    ("MSELoss target str", lambda: nn.MSELoss()(torch.ones(3, 2), "abc"), TypeError, "MSELoss: target must be"),
    ("MSELoss target ragged", lambda: nn.MSELoss()(torch.ones(2, 2), RAGGED), tg.ShapeError,
     "MSELoss: target is not rectangular"),
    ("MSELoss target wrong rank", lambda: nn.MSELoss()(torch.ones(3, 2), torch.ones(3, 2, 1)), tg.ShapeError,
     "MSELoss: target shape (3, 2, 1) differs from input shape (3, 2)"),
    ("L1Loss target None", lambda: nn.L1Loss()(torch.ones(3, 2), None), TypeError, "L1Loss: target must be"),
    # one unbatched (classes,) input takes one 0-d class index, as torch's
    ("CrossEntropyLoss input 1-D", lambda: nn.CrossEntropyLoss()(torch.ones(3), torch.tensor([0, 1, 0])),
     tg.ShapeError, "CrossEntropyLoss: class indices must have shape (), got (3,)"),
    ("CrossEntropyLoss input None", lambda: nn.CrossEntropyLoss()(None, torch.tensor([0])), TypeError,
     "CrossEntropyLoss: input must be a tensor"),
    ("CrossEntropyLoss target str", lambda: nn.CrossEntropyLoss()(torch.ones(3, 2), "a"), TypeError,
     "CrossEntropyLoss: target must be a tensor"),
    ("CrossEntropyLoss target None", lambda: nn.CrossEntropyLoss()(torch.ones(3, 2), None), TypeError,
     "CrossEntropyLoss: target must be a tensor"),
    ("CrossEntropyLoss indices wrong rank", lambda: nn.CrossEntropyLoss()(torch.ones(3, 2), torch.zeros(3, 1).long()),
     tg.ShapeError, "class indices must have shape (3,)"),
    ("CrossEntropyLoss label out of range", lambda: nn.CrossEntropyLoss()(torch.ones(3, 2), torch.tensor([0, 1, 5])),
     ValueError, "CrossEntropyLoss: class indices must lie in [0, 1]"),
    ("MSELoss reduction", lambda: nn.MSELoss(reduction="avg"), ValueError, "MSELoss: reduction must be one of"),
]  # fmt: skip

CHECKPOINTS = [
    ("save module None", lambda p: nn.save(None, p), TypeError, "save: module must be an nn.Module"),
    ("save optimizer a dict", lambda p: nn.save(lin(), p, {}), TypeError, "save: optimizer must be"),
    ("load module None", lambda p: nn.load(None, p), TypeError, "load: module must be an nn.Module"),
    ("load strict a string", lambda p: nn.load(lin(), p, strict="no"), TypeError, "strict must be True or False"),
    ("load a missing file", lambda p: nn.load(lin(), p.parent / "none.safetensors"), FileNotFoundError, "none"),
    ("load a text file", lambda p: (p.write_text("hello"), nn.load(lin(), p)), nn.SerializationError, "truncated"),
    ("inspect a text file", lambda p: (p.write_text("hello world!"), nn.inspect(p)), nn.SerializationError, "header"),
]  # fmt: skip


def _xf(t):
    return (t * t).sum()


def _tape_gradient(sources, grad_output=None):
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as tape:
        y = x * 2
    return lambda: tape.gradient(y, x if sources == "x" else sources, grad_output=grad_output)


_X = tg.tensor([1.0, 2.0], requires_grad=True)
CORE = [
    ("cat None", lambda: tg.cat(None), TypeError, "cat: 'NoneType' object is not iterable"),
    (
        "gradient sources None",
        _tape_gradient(None),
        tg.TapeError,
        "gradient: sources must be a tg.Tensor or a sequence",
    ),
    ("gradient grad_output str", _tape_gradient("x", "a"), TypeError, "gradient: grad_output must be a tensor"),
    ("grad of a str", lambda: tg.grad(_xf)("a"), TypeError, "grad: argument 0 must be a tensor or a number, got str"),
    ("gradcheck inputs None", lambda: tg.gradcheck(_xf, None), TypeError, "gradcheck: "),
    (
        "primitive ints",
        lambda: tg.primitive("p_bad", 5, 5),
        TypeError,
        "primitive: forward of 'p_bad' must be callable",
    ),
    ("primitive bad vjp", lambda: tg.primitive("p_bad", abs, 5), TypeError, "primitive: vjp of 'p_bad' must be a"),
    (
        "jvp tangents None",
        lambda: tg.jvp(_xf, (_X,), None),
        TypeError,
        "jvp(_xf): tangents must be a tensor or a tuple",
    ),
    ("jvp tangent None", lambda: tg.jvp(_xf, (_X,), (None,)), TypeError, "jvp(_xf): tangents[0] must be a tensor"),
    (
        "jvp tangent str",
        lambda: tg.jvp(_xf, (_X,), ("a",)),
        TypeError,
        "jvp(_xf): tangents[0] must be a tensor, got str",
    ),
    (
        "jacfwd argnums",
        lambda: tg.jacfwd(_xf, argnums=1)(_X),
        IndexError,
        "jacfwd: argnums=1 but the function was called",
    ),
    ("Tensor of a str", lambda: tg.Tensor("a"), TypeError, "Tensor: data must be a tensor, a number"),
]


def _rows(table):
    return pytest.mark.parametrize("call, error, fragment", [r[1:] for r in table], ids=[r[0] for r in table])


@_rows(OPTIMIZERS + TRAINING + LAYERS + CORE)
def test_bad_input_raises_a_named_error(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_a_bad_optimizer_argument_changes_nothing():
    opt = nn.SGD(lin().parameters(), lr=0.1)
    groups = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError):
        opt.add_param_group({"params": [lin().weight], "lr": -1})
    assert opt.param_groups == groups


def test_a_bad_fit_argument_trains_nothing():
    m = model()
    before = [p.data.clone() for p in m.parameters()]
    with pytest.raises(ValueError):
        nn.fit(m, nn.CrossEntropyLoss(), sgd(m), data(), epochs=2, batch_size=2, val_data=(data()[0], data()[1][:2]))
    assert all(torch.equal(p.data, b) for p, b in zip(m.parameters(), before))


@_rows(CHECKPOINTS)
def test_bad_checkpoint_call_raises_a_named_error(call, error, fragment, tmp_path):
    path = tmp_path / "m.safetensors"
    nn.save(lin(), path)
    with pytest.raises(error) as info:
        call(path)
    assert fragment in str(info.value)


def test_trace_accepts_params_named_like_python_keywords():
    op = tg.primitive("scaled", lambda x, **p: x * p["lambda"], lambda g, out, x, **p: (g * p["lambda"],))
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    step = tg.trace(lambda w: op(w, **{"lambda": 3.0}).sum())
    for _ in range(2):  # the trace, then the replay of the generated code
        w.grad = None
        assert step(w).item() == 9.0
        assert torch.equal(w.grad.data, torch.tensor([3.0, 3.0]))
    assert "{'lambda': 3.0}" in step.source()


# --- the command line: (argv, fragment of the one-line error), exit status 2, nothing runs ---------
CLI = [
    (["train", "--lr", "inf"], "--lr: expected a positive number, got 'inf' (not a finite number)"),
    (["train", "--lr", "1e999"], "--lr: expected a positive number, got '1e999' (not a finite number)"),
    (["train", "--lr", "nan"], "--lr: expected a positive number, got 'nan'"),
    (["train", "--momentum", "inf"], "--momentum"),
    (["train", "--eps", "-inf"], "--eps"),
    (["train", "--gain", "nan"], "--gain"),
    (["compare", "--lr", "inf"], "--lr"),
    (["cv", "--lr", "0.1,inf"], "not a finite number"),
    (["cv", "--beta1", "nan"], "--beta1"),
    (["train", "--hidden", "99999999999999999999"], "--hidden: expected a width between 1 and 16384"),
    (["train", "--hidden", "25,16385"], "--hidden"),
    (["graph", "--hidden", "99999999999999999999"], "--hidden"),
    (["train", "--n-train", "99999999999999999999"], "--n-train: expected a number of points between 1 and"),
    (["train", "--seed", "99999999999999999999"], "--seed: expected a seed between 0 and 4294967295"),
    (["train", "--threads", "100000"], "--threads"),
    (["bench", "--rounds", "0"], "tapegrad bench: error: argument --rounds: expected a positive integer, got '0'"),
    (["bench", "--rounds", "-3"], "--rounds: expected a positive integer, got '-3'"),
    (["bench", "--rounds", "abc"], "--rounds: expected a positive integer, got 'abc'"),
    (["bench", "--compute-rounds", "0"], "--compute-rounds"),
    (["bench", "--memory-steps", "-1"], "--memory-steps"),
    (["bench", "--threads", "0"], "--threads"),
]


@pytest.mark.parametrize(("argv", "fragment"), CLI, ids=[" ".join(a) for a, _ in CLI])
def test_bad_command_line_values_exit_2_with_one_line(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tapegrad") and fragment in lines[0], captured.err
    assert captured.out == ""


TINY = ["--epochs", "2", "--n-train", "40", "--n-test", "20", "--hidden", "4", "--quiet"]


def test_train_on_one_point_warns_nothing(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's UserWarning (std of one sample) would fail here
        assert main(["train", "--n-train", "1", "--n-test", "5", "--epochs", "1", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_training_that_diverges_says_so_and_exits_1(capsys):
    assert main(["train", "--lr", "1e6", "--loss", "ce", *TINY]) == 1
    captured = capsys.readouterr()
    assert re.match(r"tapegrad train: error: training diverged: the loss became (nan|inf) in epoch \d", captured.err)
    assert captured.err.count("\n") == 1 and "--lr" in captured.err


@pytest.mark.parametrize(
    "error, shown",
    [
        (tg.ShapeError("linear: cannot apply to (3, 4)"), "tapegrad train: error: linear: cannot apply to (3, 4)\n"),
        (nn.SerializationError("m.safetensors: truncated"), "tapegrad train: error: m.safetensors: truncated\n"),
        (tg.TapeError("replayed twice"), "tapegrad train: error: replayed twice\n"),
        (KeyError("x"), "tapegrad train: error: KeyError: 'x' (run with --debug for the traceback)\n"),
    ],
    ids=["ShapeError", "SerializationError", "TapeError", "KeyError"],
)
def test_an_error_inside_a_command_is_one_line_and_exit_1(monkeypatch, capsys, error, shown):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("tapegrad.cli.train_rounds.train_round", fail)
    assert main(["train", *TINY]) == 1
    captured = capsys.readouterr()
    assert captured.err == shown and captured.out == ""
    with pytest.raises(type(error)):  # --debug: the exception itself, with its traceback
        main(["train", *TINY, "--debug"])


def test_graph_json(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["graph", "--out", str(out), "--hidden", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["command"] == "graph" and report["outputs"] == [str(out)] and out.exists()
    assert report["config"]["sizes"] == [2, 4, 2] and report["config"]["backward"] is False


def test_bench_json(capsys):
    argv = ["bench", "--quick", "--skip", "compute", "memory", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["command"] == "bench" and report["compute"] is None and report["memory"] is None
    assert set(report["seed"]["median_s"]) >= {"torch", "tapegrad"} and isinstance(report["goals_met"], bool)
