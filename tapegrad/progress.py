"""Progress of long runs (`nn.fit`, `nn.cross_validate`, the `tapegrad` command) wherever people look.

On a terminal (stderr is a tty) or in a Jupyter notebook, `Progress` shows a tqdm bar when the
``[cli]`` extra (tqdm) is installed: a widget in a notebook that has ipywidgets, a text bar in
one that has not (never tqdm's "IProgress not found" warning). Anywhere else (output redirected
to a file, a pipe, a batch job's log), or without tqdm, each finished item is one line on
stderr, flushed at once: a bar there would be one line rewritten with carriage returns for the
whole run, or nothing. Lines go to stderr so that stdout keeps a command's table or JSON alone.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "in_notebook", "clock", "bar_class"]


def in_notebook() -> bool:
    """Whether we run inside a Jupyter kernel (where a bar can be a widget)."""
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


def bar_class(notebook: bool) -> Any:
    """tqdm's bar class: the notebook widget when ``notebook`` and ipywidgets is there, else the
    text bar; None without tqdm."""
    if importlib.util.find_spec("tqdm") is None:
        return None
    if notebook and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as widget

        return widget
    from tqdm.std import tqdm as text

    return text


class Progress:
    """Count finished items: a bar (``mode == "bar"``), flushed lines (``"lines"``) or nothing (``"off"``).

    ``update(line)`` counts one item; in line mode ``line`` is printed (with the count), in bar
    mode it is dropped unless ``lines_on_bar``. ``note(text)`` prints in either mode (above the
    bar); ``show(**values)`` puts values beside the bar (``loss=0.12``). The mode is chosen once:
    off when not ``enabled``, a bar on a terminal or in a notebook when tqdm is installed, lines
    otherwise.
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
        notebook = in_notebook()
        bar = bar_class(notebook) if enabled and (_isatty(self.stream) or notebook) else None
        if not enabled:
            self.mode = "off"
        elif bar is not None:
            self.mode = "bar"
            self.bar = bar(total=total, desc=desc, unit=unit, file=self.stream)
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

    def show(self, **values: str) -> None:
        """Values shown beside the bar (bar mode only: line mode says them in its lines)."""
        if self.mode == "bar":
            self.bar.set_postfix(values, refresh=False)

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
