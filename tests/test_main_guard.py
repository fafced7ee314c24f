"""A script that starts worker processes without ``if __name__ == "__main__":`` gets one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nn
from nn.parallel.main_guard import guarded_lines

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import functools
import nn
from tapegrad.cli.cv import build_candidate

build = functools.partial(build_candidate, hidden=[4], activation="tanh", loss="ce", init="xavier", gain=1.0,
                          optimizer="sgd", momentum=0.0)
data = nn.data.disk_dataset(20, seed=0)
{call}
"""
CALL = 'print(nn.cross_validate(build, {"lr": [0.1]}, data, k=2, epochs=1, jobs=2).best.mean_accuracy)'


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT.format(call=body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_an_unguarded_script_is_told_what_to_add_before_any_worker_starts(tmp_path):
    proc = run_script(tmp_path, CALL)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    error = "tapegrad.nn.parallel.main_guard.MissingMainGuardError"
    assert last.startswith(f"{error}: cross_validate(jobs=2) starts worker")
    assert 'train_script.py; its call at line 9 is not under `if __name__ == "__main__":`' in last
    assert "BrokenProcessPool" not in proc.stderr and "bootstrapping" not in proc.stderr


def test_the_same_call_under_the_guard_passes_the_check(tmp_path, monkeypatch):
    # the check alone (workers are not started here: other tests run cross_validate with jobs=2)
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent(
        """
        import nn

        def main():
            nn.cross_validate()

        if __name__ == "__main__":
            main()
            x = [
                1,
            ]
        main()
        """
    ))  # fmt: skip
    assert guarded_lines(str(script)) == frozenset({8, 9, 10, 11})  # not line 12, the unguarded call
    assert guarded_lines(str(tmp_path / "missing.py")) is None


def test_the_check_passes_outside_scripts():
    # pytest's own __main__ (or console script) is guarded; a notebook, a REPL or -c has no script
    nn.parallel.main_guard.check_main_guard("here")


@pytest.mark.parametrize("guard", ['if __name__ == "__main__":', "if '__main__' == __name__:"])
def test_both_spellings_of_the_guard_count(tmp_path, guard):
    script = tmp_path / "g.py"
    script.write_text(f"import os\n{guard}\n    os.getcwd()\n")
    assert guarded_lines(str(script)) == frozenset({3})
