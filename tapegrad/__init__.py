"""tapegrad: automatic differentiation with an explicit tape, on plain torch tensor ops."""

from . import methods as _methods  # noqa: F401  (attaches ops to Tensor)
from . import ops
from .checkpointing import checkpoint
from .custom_vjp import custom_vjp
from .errors import AnomalyError, GradcheckError, InPlaceError, ShapeError, TapeError
from .forward import hvp, jacfwd, jvp
from .functional import grad, hessian, jacobian, value_and_grad, vjp
from .gradcheck import gradcheck
from .hooks import RemovableHandle
from .ops import *  # noqa: F403  (every op, as listed by its module)
from .primitive import Primitive, Record, primitive, registered_primitives
from .state import Scope
from .tape import Tape, detect_anomaly, enable_grad, no_grad, scope
from .tensor import Tensor, tensor
from .trace import trace

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "GradcheckError", "InPlaceError", "ShapeError", "TapeError", "grad", "hessian",
    "jacobian", "value_and_grad", "vjp", "gradcheck", "Primitive", "Record", "primitive",
    "registered_primitives", "Scope", "Tape", "detect_anomaly", "enable_grad", "no_grad", "scope",
    "Tensor", "tensor", "trace", "RemovableHandle", "checkpoint", "custom_vjp", "hvp", "jacfwd", "jvp",
]  # fmt: skip
__all__ += ops.__all__
