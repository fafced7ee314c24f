"""nn: models, losses, initialisation, optimizers, data and training on tapegrad tapes.

Built on `tg.Tensor` and `tg.Tape` only; PyTorch's nn and optim are the reference the tests
compare against, never a dependency.
"""

from . import data, init, losses, parallel
from .checkpoint import CheckpointError, CheckpointInfo, inspect, load, save
from .layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from .losses import CrossEntropyLoss, L1Loss, MAELoss, MSELoss, signed_targets
from .module import Module, Parameter
from .optim import SGD, Adam, Optimizer
from .train import CVResult, CVRow, Evaluation, History, cross_validate, evaluate, fit, predict

__all__ = [
    "data", "init", "losses", "parallel", "CheckpointError", "CheckpointInfo", "inspect", "load", "save",
    "Linear", "ReLU", "Sequential",
    "Sigmoid", "Tanh", "CrossEntropyLoss", "L1Loss", "MAELoss", "MSELoss", "signed_targets", "Module",
    "Parameter", "SGD", "Adam", "Optimizer", "CVResult", "CVRow", "Evaluation", "History",
    "cross_validate", "evaluate", "fit", "predict",
]  # fmt: skip
