"""Call sites cost one stack walk per library module call, however tapegrad was started.

Under ``python -m tapegrad`` every frame is the library's (runpy's are frozen): the lookup finds
no user frame, and that answer is cached on the module's scope like a user's line would be, so
the ops inside do not each walk the whole stack again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tapegrad as tg
from tapegrad.engine.errors import NO_USER_FRAME, call_site_key, format_site

ROOT = Path(tg.__file__).resolve().parent.parent
# counts calls of errors.call_site_key (each one walks the stack) and prints them at exit
COUNTER = """
import atexit, sys
_real = sys._getframe
_n = [0]
def _counting(depth=0):
    if _real(1).f_code.co_name == "call_site_key":
        _n[0] += 1
    return _real(depth + 1)
sys._getframe = _counting
atexit.register(lambda: sys.stderr.write(f"STACK WALKS {_n[0]}\\n"))
"""


def stack_walks(tmp_path: Path, *how: str) -> int:
    (tmp_path / "sitecustomize.py").write_text(COUNTER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    args = [sys.executable, *how, "bench", "--only", "seed", "--quick"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=True)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("STACK WALKS"))
    assert "tapegrad" in proc.stdout
    return int(line.split()[-1])


# the file pip writes for the `tapegrad` console script (a __main__ outside the library, as a user's script is)
CONSOLE_SCRIPT = """import sys
from tapegrad.cli import main
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit(main())
"""


@pytest.mark.slow
def test_every_launch_walks_the_stack_as_often(tmp_path):
    """`python -m tapegrad bench`, the `tapegrad` console script and a script calling main() record alike."""
    (tmp_path / "tapegrad").write_text(CONSOLE_SCRIPT)
    as_module = stack_walks(tmp_path, "-m", "tapegrad")
    as_console = stack_walks(tmp_path, str(tmp_path / "tapegrad"))
    as_script = stack_walks(tmp_path, "-c", "import sys; from tapegrad.cli.dispatch import main; sys.exit(main())")
    assert as_module == as_console == as_script


class _AllLibrary(dict):
    def get(self, code, default=None):
        return True  # every frame counts as the library's, as under `python -m tapegrad`


def test_no_user_frame_is_an_answer_cached_on_the_scope_and_formatted_as_unknown(monkeypatch):
    import tapegrad.engine.errors as errors
    import tapegrad.nn as nn

    monkeypatch.setattr(errors, "_internal", _AllLibrary())
    assert call_site_key() is NO_USER_FRAME
    assert format_site(NO_USER_FRAME) == "unknown location"
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
    with tg.Tape() as tape:
        model(tg.tensor([[1.0, 2.0]]))
    assert [r.site for r in tape] == [NO_USER_FRAME, NO_USER_FRAME]


def _key_and_line() -> tuple:
    import sys

    x = [1, 2]  # a few lines before the call, so that the line table has entries to scan
    y = {"a": x}
    return (
        y,
        call_site_key(1),
        sys._getframe().f_lineno,
    )


def test_a_site_key_keeps_the_instruction_and_finds_the_frames_line_when_formatted():
    from tapegrad.engine.errors import site_line

    _, key, line = _key_and_line()
    assert key[0] is _key_and_line.__code__
    assert site_line(key) == line - 1  # the call sits on the line before the f_lineno read
    assert format_site(key) == f"{__file__}:{line - 1} in _key_and_line"
