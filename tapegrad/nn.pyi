"""The type of `tapegrad.nn`: at run time it is the nn package itself (see tapegrad/_siblings.py)."""

from nn import *  # noqa: F403
from nn import __all__ as __all__
