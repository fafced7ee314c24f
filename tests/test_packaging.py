"""Packaging a user can trust: one nn/viz under two names, shadowing detected, optional extras.

The wheel itself (built, installed into a clean venv, run from outside the checkout) is
checked by ``make test-wheel``, which ``make test`` runs.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import nn
import tapegrad
import tapegrad.nn
import tapegrad.viz
import viz
from tapegrad import _siblings
from tapegrad._optional import EXTRAS, MissingExtraError, require

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-train", "60", "--n-test", "40", "--hidden", "8,8"]

# Run in a subprocess: these optional packages cannot be imported (as if never installed).
BLOCK_EXTRAS = textwrap.dedent(
    """
    import importlib.abc, importlib.util, sys
    BLOCKED = {"graphviz", "matplotlib", "hypothesis", "safetensors", "tqdm"}
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Blocker())
    _find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda n, p=None: None if n.partition(".")[0] in BLOCKED else _find_spec(n, p)
    """
)


def python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -c code`` (or ``python -m ...`` via args) in ``cwd``, with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, *args] if args else [sys.executable, "-c", code]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_namespaced_names_are_the_same_modules_and_classes():
    import tapegrad.nn.layers
    import tapegrad.viz.render

    import nn.layers
    import viz.render

    assert tapegrad.nn is nn and tapegrad.viz is viz
    assert tapegrad.nn.Linear is nn.Linear and tapegrad.nn.layers is nn.layers
    assert tapegrad.viz.render is viz.render and tapegrad.viz.summary is viz.summary
    assert sys.modules["nn.layers"] is sys.modules["tapegrad.nn.layers"]
    assert nn.__name__ == "tapegrad.nn" and nn.Linear.__module__ == "tapegrad.nn.layers"
    assert Path(nn.__file__).resolve() == ROOT / "nn" / "__init__.py"
    from tapegrad import nn as again

    assert again is nn


def test_import_nn_first_gives_the_same_objects_in_a_fresh_process(tmp_path):
    code = (
        "import nn, viz.dot, sys; import tapegrad.nn, tapegrad.viz.dot; "
        "assert nn is tapegrad.nn and viz.dot is tapegrad.viz.dot and nn.Linear is tapegrad.nn.Linear; "
        "assert nn.__name__ == 'tapegrad.nn'; print('same')"
    )
    proc = python(code, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "same", proc.stderr
    assert "Warning" not in proc.stderr


@pytest.fixture
def shadowed(tmp_path) -> Path:
    """A project folder with its own ``nn`` and ``viz`` packages, which shadow ours on sys.path[0]."""
    for name in ("nn", "viz"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"WHO = 'the user\\'s {name}'\n")
    return tmp_path


def test_a_shadowing_folder_cannot_break_the_command(shadowed):
    proc = python("", shadowed, "-m", "tapegrad", "train", "--epochs", "1", *TINY, "--json")
    assert proc.returncode == 0, proc.stderr
    assert 0.0 <= json.loads(proc.stdout)["rounds"][0]["test_error_rate"] <= 1.0
    assert "ShadowWarning" not in proc.stderr  # the command never imports the top-level names


def test_importing_a_shadowing_nn_after_tapegrad_warns_and_names_its_file(shadowed):
    proc = python("import tapegrad, nn, viz; import tapegrad.nn as tnn; print(nn.WHO, viz.WHO, tnn.Linear)", shadowed)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "the",
        "user's",
        "nn",
        "the",
        "user's",
        "viz",
        "<class",
        "'tapegrad.nn.layers.Linear'>",
    ]
    for name in ("nn", "viz"):
        assert f"ShadowWarning: `import {name}` found {shadowed / name / '__init__.py'}" in proc.stderr
        assert f"import tapegrad.{name} as {name}" in proc.stderr


def test_a_shadowing_nn_imported_before_tapegrad_is_reported_when_tapegrad_loads(shadowed):
    proc = python("import nn; import tapegrad; print(nn.WHO)", shadowed)
    assert proc.returncode == 0 and proc.stdout.strip() == "the user's nn", proc.stderr
    assert f"ShadowWarning: `import nn` found {shadowed / 'nn' / '__init__.py'}" in proc.stderr


def test_a_foreign_package_installed_over_ours_is_named(tmp_path, monkeypatch):
    (tmp_path / "nn").mkdir()
    (tmp_path / "nn" / "__init__.py").write_text("import tensorflow\n")  # what `pip install nn` leaves
    monkeypatch.setattr(_siblings, "_ROOT", tmp_path)
    with pytest.raises(ImportError) as err:
        _siblings._Finder().find_spec("tapegrad.nn", None)
    message = str(err.value)
    assert str(tmp_path / "nn" / "__init__.py") in message and "is not tapegrad's nn package" in message
    assert "pip uninstall nn" in message and "--force-reinstall tapegrad" in message
    monkeypatch.setattr(_siblings, "_ROOT", tmp_path / "missing")
    with pytest.raises(ImportError, match="tapegrad's viz package is missing"):
        _siblings._Finder().find_spec("tapegrad.viz", None)


def test_without_the_extras_the_core_imports_and_each_feature_names_its_extra(tmp_path):
    code = BLOCK_EXTRAS + textwrap.dedent(
        """
        import tapegrad as tg, nn, viz
        loaded = sorted(m for m in BLOCKED if m in sys.modules)
        x = tg.tensor([1.0, 2.0])
        model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        with tg.Tape() as tape:
            loss = model(x).sum()
        print("summary", "linear" in viz.summary(tape), viz.graph_depth(viz.to_networkx(tape)) > 0)
        data = (x.data.reshape(1, 2), x.data[:1].reshape(1, 1))
        nn.fit(model, nn.MSELoss(), nn.SGD(model.parameters(), lr=0.1), data, epochs=1, batch_size=1)
        def tapegrad_testing():
            import tapegrad.testing
        def plots():
            from tapegrad.cli.plots import _pyplot
            _pyplot()
        print("dot", viz.save(tape, "g.dot").read_text().startswith("digraph tapegrad {"))  # DOT text: no extra
        for use in (lambda: viz.draw(tape).pipe(format="svg"), lambda: viz.save(tape, "g.svg"),
                    lambda: nn.save(model, "new.st"), tapegrad_testing, plots):
            try:
                use()
                print("no error")
            except tg.MissingExtraError as err:
                print(err.extra, "|", err)
        nn.load(model, "m.st")  # reading and writing a checkpoint need no safetensors
        print("loaded", loaded)
        """
    )
    torch.manual_seed(0)
    nn.save(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)), tmp_path / "m.st")  # made with the extras
    proc = python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["summary True True", "dot True"] and lines[-1] == "loaded []"
    extras = [line.split(" | ")[0] for line in lines[2:-1]]
    assert extras == ["viz", "viz", "no error", "testing", "plot"], proc.stdout  # nn.save writes the file itself
    assert "pip install 'tapegrad[viz]'" in lines[2] and "needs the optional package 'graphviz'" in lines[2]
    assert (tmp_path / "new.st").exists() and not (tmp_path / "g.svg").exists()


def test_the_command_checks_its_extras_before_it_runs(tmp_path):
    code = BLOCK_EXTRAS + "from tapegrad.cli import main; sys.exit(main(sys.argv[1:]))"
    for argv, extra in ((["train", "--plot", "c.png"], "plot"), (["graph", "--out", "g.svg"], "viz")):
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert f"pip install 'tapegrad[{extra}]'" in proc.stderr and "Traceback" not in proc.stderr


def test_require_names_the_extra_and_passes_other_import_errors_through():
    assert require("json", "reading JSON") is json
    with pytest.raises(MissingExtraError, match=r"tapegrad\[plot\]") as err:
        EXTRAS["no_such_package_xyz"] = "plot"
        try:
            require("no_such_package_xyz.sub", "a plot")
        finally:
            del EXTRAS["no_such_package_xyz"]
    assert isinstance(err.value, ImportError) and err.value.extra == "plot"


def test_version_has_one_source():
    assert tapegrad.__version__ == importlib.metadata.version("tapegrad")
    proc = python("", ROOT, "-m", "tapegrad", "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"tapegrad {tapegrad.__version__}"


def test_the_packages_ship_their_type_marker():
    for package in ("tapegrad", "nn", "viz"):
        assert (ROOT / package / "py.typed").is_file()


USER_CODE = """
import nn
import tapegrad as tg
from tapegrad import Tensor


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x).tanh()


def f(x: Tensor) -> Tensor:
    return (x.tanh() * x).sum()


x = tg.Tensor([1.0, 2.0], requires_grad=True)
model = Net()
seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
loss_fn = nn.MSELoss()
reveal_type(x.tanh())
reveal_type(x.sum(dim=0, keepdim=True))
reveal_type(x.reshape(2, 1).T)
reveal_type(x + 1)
reveal_type(model(x))
reveal_type(seq(x))
reveal_type(nn.ReLU()(x))
reveal_type(loss_fn(model(x), x))
reveal_type(tg.grad(f))
reveal_type(tg.value_and_grad(f)(x))
reveal_type(tg.hessian(f, x))
reveal_type(model.fc.weight)
reveal_type(tg.relu(x))
reveal_type(tg.matmul(x, x))
reveal_type(tg.sort(x).values)
reveal_type(tg.max(x))
reveal_type(tg.max(x, dim=0))
reveal_type(x.max(dim=0))
reveal_type(x.max())
reveal_type(x.sort().indices)
reveal_type(x.topk(1))
result = nn.evaluate(model, (x, x))
assert result.accuracy is not None and result.accuracy > 0.9
x.tahn()
model("not a tensor")
model.wieght
tg.rleu(x)
"""


def test_a_users_strict_type_checker_sees_precise_types_and_catches_typos(tmp_path):
    # py.typed is only worth shipping if strict user code type-checks: Tensor's methods come from
    # the generated stub (tests/test_typing.py keeps it current), model(x) has forward's types
    user = tmp_path / "user_code.py"
    user.write_text(USER_CODE)
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    args = ["--strict", "--follow-imports=silent", "--no-incremental", "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", *args, str(user)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    lines = [line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("user_code.py") or
             line.startswith(str(user))]  # fmt: skip
    tensor = 'note: Revealed type is "tapegrad.engine.tensors.Tensor"'
    assert lines[:8] == [tensor] * 8, proc.stdout
    t = "tapegrad.engine.tensors.Tensor"
    assert lines[8] == f'note: Revealed type is "def (x: {t}) -> {t}"'
    assert lines[9] == f'note: Revealed type is "tuple[{t}, {t}]"'
    assert lines[10] == tensor
    assert lines[11] == 'note: Revealed type is "nn.module.Parameter"'
    assert lines[12:16] == [tensor] * 4, proc.stdout  # top-level ops: tg.relu(x), ..., tg.max(x)
    pair = f"tuple[{t}, {t}, fallback=tapegrad._ops.ValuesIndices]"
    assert lines[16] == f'note: Revealed type is "{pair}"', proc.stdout  # tg.max(x, dim=0)
    assert lines[17] == f'note: Revealed type is "{pair}"', proc.stdout  # x.max(dim=0): the method too
    assert lines[18:20] == [tensor] * 2, proc.stdout  # x.max(), x.sort().indices
    assert lines[20] == f'note: Revealed type is "{pair}"', proc.stdout  # x.topk(1)
    errors = [line for line in lines if line.startswith("error")]
    assert errors[0].startswith('error: "Tensor" has no attribute "tahn"')  # (mypy may suggest "tanh")
    assert errors[1] == (
        'error: Argument 1 to "forward" of "Net" has incompatible type "str"; expected "Tensor"  [arg-type]'
    ), proc.stdout
    assert errors[2].startswith('error: "Net" has no attribute "wieght"'), proc.stdout
    assert errors[3].startswith('error: Module has no attribute "rleu"'), proc.stdout
    assert proc.returncode == 1 and "Found 4 errors in 1 file" in proc.stdout


def test_every_op_is_exported_at_the_top_level_and_declared_for_type_checkers():
    modules = [p.stem for p in (ROOT / "tapegrad" / "ops").glob("*.py") if not p.stem.startswith("_")]
    assert modules and all(hasattr(tapegrad.ops, m) for m in modules)  # each imported by tapegrad.ops
    stub = (ROOT / "tapegrad" / "_ops.pyi").read_text()
    for name in tapegrad.ops.__all__:
        assert hasattr(tapegrad, name) and name in tapegrad.__all__, name
        assert f"\ndef {name}(" in stub, name


def test_summary_is_text_that_notebooks_show_as_a_table():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    s = viz.summary(model, tapegrad.tensor([[1.0, 2.0]]))
    assert isinstance(s, str) and isinstance(s, viz.Summary)
    assert str(s).splitlines()[0].split() == ["module", "op", "output", "shape", "params"]
    html = s._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 1 + len(s.rows) == 1 + 3
    assert '<td style="text-align:left">0 (Linear)</td>' in html and "<th" in html
    assert '<td style="text-align:right">9</td>' in html and "parameters in model: 13" in html
    assert "&lt;" in viz.Summary("x", ("a",), [("<b>",)], [])._repr_html_()


def test_a_backward_trace_shows_its_picture_in_a_notebook():
    x = tapegrad.tensor([1.0, 2.0], requires_grad=True)
    with tapegrad.Tape() as tape:
        y = (x * x).sum()
    trace = viz.trace_backward(tape, y)
    bundle = trace._repr_mimebundle_()
    assert bundle["text/plain"] == repr(trace)
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml") and "</svg>" in bundle["image/svg+xml"]


def test_numpy_is_a_required_dependency_and_import_prints_nothing(tmp_path):
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("numpy") for d in deps), deps
    code = (
        "import numpy as np, tapegrad as tg; x = tg.tensor(np.array([1.0, 2.0])); "
        "assert (x.numpy() == np.array([1.0, 2.0])).all(); print(type(x.numpy()).__name__)"
    )
    proc = python(code, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ndarray", proc.stderr
    assert proc.stderr == ""  # no "Failed to initialize NumPy" (nor any other warning)


def test_summary_shows_as_a_table_in_a_plain_repl():
    s = viz.summary(nn.Sequential(nn.Linear(2, 3)), tapegrad.tensor([[1.0, 2.0]]))
    assert repr(s) == str(s) and "\\n" not in repr(s) and repr(s).count("\n") >= 2
