#!/usr/bin/env bash
# The wheel outside the checkout: build the sdist and wheel, install the wheel into a clean venv
# with its required dependencies only (torch first, from the CPU build, as the README says; then the
# wheel brings numpy and networkx; import prints nothing, each extra's feature names its extra), then with
# [all], and run the command from a folder that is not the checkout.
# Usage: scripts/wheel_smoke.sh PYTHON TORCH_VERSION (PYTHON is the dev venv's, which has `build`)
set -euo pipefail
PY=${1:-.venv/bin/python}
TORCH=${2:-2.13.0}
ROOT=$(pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== build the sdist and the wheel"
"$PY" -m build -q --outdir "$WORK/dist" . >/dev/null
WHEEL=$(ls "$WORK"/dist/tapegrad-*.whl)
SDIST=$(ls "$WORK"/dist/tapegrad-*.tar.gz)
"$PY" - "$WHEEL" "$SDIST" <<'EOF'
import sys, tarfile, zipfile
wheel = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {f"{p}/py.typed" for p in ("tapegrad", "nn", "viz")} | {"tapegrad/cli/bench/seed_training.py"}
assert need <= wheel, f"the wheel lacks {sorted(need - wheel)}"
assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in wheel), "the wheel ships non-package folders"
meta = next(zipfile.ZipFile(sys.argv[1]).read(n).decode() for n in wheel if n.endswith("METADATA"))
assert "License-Expression: MIT" in meta and "Requires-Dist: graphviz" in meta, meta[:2000]
assert "Requires-Dist: numpy" in meta and "Requires-Dist: torch<2.14,>=2.2" in meta, meta[:2000]
root = sys.argv[2].rsplit("/", 1)[1].removesuffix(".tar.gz")
sdist = {n.removeprefix(root + "/") for n in tarfile.open(sys.argv[2]).getnames()}
need = {"LICENSE", "Makefile", "tests/conftest.py", "tests/test_tape.py", "tests/golden", "docs/conf.py",
        "docs/getting-started.md", "benchmarks/seed_training.py", "README.md"}
assert need <= sdist, f"the sdist lacks {sorted(need - sdist)}"
print(f"wheel: {len(wheel)} files; sdist: {len(sdist)} files")
EOF

echo "== a clean venv with the required dependencies only"
python3 -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q "torch==$TORCH"
"$VPY" -m pip install -q "$WHEEL"  # its dependencies: numpy and networkx (torch is there)
cd "$WORK"  # outside the checkout from here on
"$VPY" -c "import tapegrad, nn, viz" 2>import.txt
if [ -s import.txt ]; then echo "import tapegrad printed:" && cat import.txt && exit 1; fi
"$VPY" - <<'EOF'
import sys
import numpy
import tapegrad, nn, viz
import tapegrad.nn
assert tapegrad.nn.Linear is nn.Linear and "site-packages" in nn.__file__, nn.__file__
optional = ("graphviz", "matplotlib", "hypothesis", "safetensors", "tqdm")
assert not [m for m in optional if m in sys.modules]
x = tapegrad.tensor(numpy.array([[1.0, 2.0]], dtype=numpy.float32))
assert (x.numpy() == numpy.array([[1.0, 2.0]])).all()
model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
with tapegrad.Tape() as tape:
    loss = model(x).sum()
print(viz.summary(tape).splitlines()[-1])
assert viz.save(tape, "g.dot").read_text().startswith("digraph")  # DOT text needs no extra
nn.save(model, "m.safetensors")  # writing a checkpoint needs no extra either
for name, use in (("viz", lambda: viz.save(tape, "g.svg")),
                  ("testing", lambda: __import__("tapegrad.testing"))):
    try:
        use()
    except tapegrad.MissingExtraError as err:
        assert f"pip install 'tapegrad[{name}]'" in str(err), err
    else:
        raise AssertionError(f"no error without the [{name}] extra")
print("no extras: imports work, each missing extra is named")
EOF
"$WORK/venv/bin/tapegrad" --version
if "$WORK/venv/bin/tapegrad" graph --out g.svg 2>err.txt; then echo "graph ran without graphviz" && exit 1; fi
grep -q "tapegrad\[viz\]" err.txt
"$WORK/venv/bin/tapegrad" graph --out g.dot --explain --quiet | grep "dL/d" >/dev/null  # DOT text and --explain: no extra (not grep -q: it closes the pipe early)

echo "== the same venv with [all]"
"$VPY" -m pip install -q "$WHEEL[all]"
T="$WORK/venv/bin/tapegrad"
"$T" --version
"$T" train --epochs 2 --plot curves.png --save seed.safetensors | tail -n 2
"$T" graph --out g.svg --backward
test -s g.svg && test -s curves.png && test -s seed.safetensors
"$T" bench --quick >bench.txt
tail -n 3 bench.txt
"$T" bench --help >/dev/null
"$VPY" -c "import tapegrad.testing, nn, viz; print('all extras: tapegrad.testing imports')"

echo "== the sdist's own tests run (against the installed wheel)"
mkdir sdist && tar -xzf "$SDIST" -C sdist --strip-components 1
cd sdist/tests && "$VPY" -m pip install -q pytest && "$VPY" -m pytest -q -p no:cacheprovider test_tape.py | tail -n 1
cd "$ROOT"
echo "wheel smoke test: ok"
