"""The ``if __name__ == "__main__":`` guard that starting worker processes needs, checked up front.

Worker processes started with ``spawn`` (`nn.cross_validate` with ``jobs > 1``, `nn.parallel.spawn`)
begin by importing the user's script. A script whose top-level code calls them without the guard
runs that call again in every worker, which fails there, and the parent sees only
``BrokenProcessPool`` under a wall of tracebacks. So before starting workers, the call is traced
back to the script's top level and the script's source is read: a call outside the guard is one
clear error, before any process starts.
"""

from __future__ import annotations

import ast
import sys
from functools import lru_cache
from pathlib import Path

__all__ = ["MissingMainGuardError", "check_main_guard", "guarded_lines"]


class MissingMainGuardError(RuntimeError):
    """A script starts worker processes from top-level code that is not under the ``__main__`` guard."""


def check_main_guard(what: str) -> None:
    """Raise `MissingMainGuardError` if ``what`` was called from a script's unguarded top-level code.

    Code run from a notebook, a REPL, ``python -c`` or an imported module passes: workers do not
    re-run it.
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.rpartition(".")[2] == "__main__":
        return  # `python -m package`: spawn does not re-run a package's __main__
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals["__name__"] == "__main__"):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return
    path = frame.f_code.co_filename
    line = frame.f_lineno
    lines = guarded_lines(path)
    if lines is None or line in lines:
        return
    raise MissingMainGuardError(
        f"{what} starts worker processes, and each one first imports your script {Path(path).name}; its call at "
        f'line {line} is not under `if __name__ == "__main__":`, so every worker would run it again. Put the '
        f'script\'s top-level code (at least this call) under `if __name__ == "__main__":`'
    )


@lru_cache(maxsize=32)
def guarded_lines(path: str) -> frozenset[int] | None:
    """The line numbers under ``if __name__ == "__main__":`` in the Python file ``path`` (None if unreadable)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_test(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return frozenset(lines)


def _is_main_test(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = {ast.unparse(test.left), ast.unparse(test.comparators[0])}
    return sides == {"__name__", "'__main__'"}
