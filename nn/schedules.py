"""The learning-rate schedules under their older name: `nn.schedules` is `nn.optim.lr_scheduler`."""

from .optim.lr_scheduler import *  # noqa: F403
from .optim.lr_scheduler import __all__ as __all__
