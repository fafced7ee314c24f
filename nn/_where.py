"""How layer errors name the layer: its path in the model and class ('features.0 (Conv2d)')."""

from __future__ import annotations

from tapegrad.engine.errors import call_site
from tapegrad.engine.state import current


def layer_name(default: str) -> str:
    """The module scope being run ('1 (Conv2d)'), or ``default`` outside one."""
    scope = current().scope
    return repr(scope) if scope is not None else default


def called_at() -> str:
    """', called at file.py:12 in fn' for the user's line."""
    return f", called at {call_site()}"
