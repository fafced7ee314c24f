"""nn: models, losses, initialisation, optimizers, data and training on tapegrad tapes.

Built on `tg.Tensor` and `tg.Tape` only; PyTorch's nn and optim are the reference the tests
compare against, never a dependency.
"""

from tapegrad._siblings import adopt as _adopt  # first: `import nn` becomes tapegrad.nn

_adopt(__name__)

from . import data, functional, init, losses, optim, parallel, schedules, utils
from .activations import GELU, Dropout, LeakyReLU, LogSoftmax, Softmax, Softplus
from .activations_more import (
    CELU,
    ELU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LogSigmoid,
    Mish,
    PReLU,
    ReLU6,
    SiLU,
    Softsign,
)  # fmt: skip
from .attention import MultiheadAttention
from .containers import Flatten, Identity, ModuleDict, ModuleList
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .conv_more import Conv1d, ConvTranspose2d, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from .cross_validation import CVResult, CVRow, cross_validate
from .layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from .losses import CrossEntropyLoss, L1Loss, MAELoss, MSELoss, signed_targets
from .losses_extra import BCELoss, BCEWithLogitsLoss, HuberLoss, NLLLoss, SmoothL1Loss
from .module import Module, Parameter
from .norm_layers import BatchNorm1d, BatchNorm2d, GroupNorm, RMSNorm
from .normalization import Embedding, LayerNorm
from .optim import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    ReduceLROnPlateau,
    StepLR,
)  # fmt: skip
from .param_containers import ParameterDict, ParameterList, Unflatten
from .recurrent import GRU, LSTM, RNN, RNNBase
from .recurrent_cells import GRUCell, LSTMCell, RNNCell
from .serialization import CheckpointInfo, SerializationError, inspect, load, save
from .train import Evaluation, History, evaluate, fit, predict
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "data", "init", "losses", "parallel", "SerializationError", "CheckpointInfo", "inspect", "load", "save",
    "Linear", "ReLU", "Sequential",
    "Sigmoid", "Tanh", "CrossEntropyLoss", "L1Loss", "MAELoss", "MSELoss", "signed_targets", "Module",
    "Parameter", "SGD", "Adam", "Optimizer", "CVResult", "CVRow", "Evaluation", "History",
    "cross_validate", "evaluate", "fit", "predict",
]  # fmt: skip
__all__ += [
    "schedules", "utils", "GELU", "Dropout", "LeakyReLU", "LogSoftmax", "Softmax", "Softplus", "Flatten",
    "Identity", "ModuleDict", "ModuleList", "AvgPool2d", "Conv2d", "MaxPool2d", "BCELoss", "BCEWithLogitsLoss",
    "HuberLoss", "NLLLoss", "SmoothL1Loss", "Embedding", "LayerNorm", "AdamW", "RMSprop", "CosineAnnealingLR",
    "ExponentialLR", "LambdaLR", "LinearLR", "LRScheduler", "ReduceLROnPlateau", "StepLR",
]  # fmt: skip
__all__ += ["functional"]
__all__ += ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "RMSNorm"]
__all__ += ["optim", "Adagrad", "Adadelta"]
__all__ += ["RNNBase", "RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell"]
__all__ += [
    "SiLU", "Mish", "Hardtanh", "ReLU6", "ELU", "CELU", "SELU", "PReLU", "Hardsigmoid", "Hardswish", "LogSigmoid",
    "Softsign", "ParameterList", "ParameterDict", "Unflatten",
]  # fmt: skip
__all__ += ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder"]
__all__ += ["Conv1d", "ConvTranspose2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]
