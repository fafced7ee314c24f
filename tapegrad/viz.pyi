"""The type of `tapegrad.viz`: at run time it is the viz package itself (see tapegrad/_siblings.py)."""

from viz import *  # noqa: F403
from viz import __all__ as __all__
