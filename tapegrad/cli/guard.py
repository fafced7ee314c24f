"""How a command ends when something goes wrong: one line on stderr and exit status 1.

A reader that closes the pipe early (``tapegrad graph ... | head``, ``| grep -q``) ends the command quietly
with 141, the status of a Unix tool stopped by SIGPIPE.

The library's own errors (and the `ValueError`/`TypeError` of its argument checks) are shown by
their message; anything else by its type and message with a hint. ``--debug`` lets the
exception through, with its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import tapegrad.nn as nn
from tapegrad._optional import MissingExtraError
from tapegrad.engine.errors import AnomalyError, GradcheckError, ShapeError, TapeError

__all__ = ["LIBRARY_ERRORS", "guarded"]

LIBRARY_ERRORS = (
    TapeError,
    ShapeError,
    GradcheckError,
    AnomalyError,
    nn.SerializationError,
    MissingExtraError,
    ValueError,
    TypeError,
)


def guarded(command: str, debug: bool, run: Callable[[], int]) -> int:
    """``run()``'s exit status; an exception that escapes it becomes one line and status 1 (130 for ^C, 141
    without a word where the reader closed the pipe)."""
    try:
        return run()
    except KeyboardInterrupt:
        print(f"tapegrad {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader has what it wanted; what is still buffered goes nowhere, not to a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        if debug:
            raise
        text = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, (OSError, *LIBRARY_ERRORS)):  # a full disk, a bad value: the message says it
            print(f"tapegrad {command}: error: {text}", file=sys.stderr)
        else:
            print(
                f"tapegrad {command}: error: {type(err).__name__}: {text} (run with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1
