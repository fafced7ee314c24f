"""Progress of the long commands where people look: a bar on a terminal or in a notebook, lines in logs.

On a terminal (stderr is a tty) or in a Jupyter notebook, `Progress` shows a ``tqdm.auto`` bar
(a widget in notebooks). Anywhere else (stdout or stderr redirected to a file, a pipe, a batch
job's log) a bar would be one line rewritten with carriage returns, or nothing at all, for the
whole run: there each finished item is one line on stderr, flushed at once. ``--quiet`` shows
neither. Lines go to stderr so that stdout keeps the table or the ``--json`` document alone.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "in_notebook", "clock"]


def in_notebook() -> bool:
    """Whether we run inside a Jupyter kernel (where tqdm.auto draws a widget)."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        return type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except Exception:  # an IPython without a running shell
        return False


def clock(seconds: float) -> str:
    """``seconds`` as ``h:mm:ss`` (or ``m:ss`` under an hour)."""
    s = max(int(round(seconds)), 0)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Count finished items of a command: a bar (``mode == "bar"``), lines (``"lines"``) or nothing.

    ``update(line)`` counts one item; in line mode ``line`` is printed (with the count) and
    flushed, in bar mode it is dropped unless ``lines_on_bar``. ``note(text)`` prints in either
    mode (above the bar). The mode is chosen once: nothing when not ``enabled``, a bar when
    stderr is a terminal or in a notebook, lines otherwise.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        enabled: bool = True,
        lines_on_bar: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.done, self.desc = total, 0, desc
        self.stream = stream if stream is not None else sys.stderr
        self.lines_on_bar = lines_on_bar
        self.start = time.perf_counter()
        self.bar: Any = None
        if not enabled:
            self.mode = "off"
        elif _isatty(self.stream) or in_notebook():
            from tqdm.auto import tqdm

            self.mode = "bar"
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream)
        else:
            self.mode = "lines"

    @property
    def elapsed(self) -> float:
        """Seconds since the progress started."""
        return time.perf_counter() - self.start

    def note(self, text: str) -> None:
        """Print ``text`` as a line of its own (above the bar in bar mode; nothing when off)."""
        if self.mode == "bar":
            self.bar.write(text, file=self.stream)
        elif self.mode == "lines":
            print(text, file=self.stream, flush=True)

    def update(self, line: str | None = None) -> None:
        """One more item finished; ``line`` says what it was (printed in line mode)."""
        self.done += 1
        if self.mode == "bar":
            if line and self.lines_on_bar:
                self.bar.write(f"{self.desc} [{self.done}/{self.total}] {line}", file=self.stream)
            self.bar.update()
        elif self.mode == "lines" and line:
            print(f"{self.desc} [{self.done}/{self.total}] {line}", file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar (if any)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or exotic stream
        return False
