"""`nn.optim`: every optimizer, under torch's module layout (`nn.optim.lr_scheduler` holds the schedules).

The optimizers are also reachable from `nn` itself (``nn.SGD``), as before this package existed.
"""

from . import lr_scheduler
from .adagrad import Adadelta, Adagrad
from .optimizer import SGD, Adam, Optimizer
from .optimizers import AdamW, RMSprop

__all__ = ["lr_scheduler", "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"]
