"""tapegrad: automatic differentiation with an explicit tape, on plain torch tensor ops."""

from . import _siblings, ops
from . import methods as _methods  # noqa: F401  (attaches ops to Tensor)
from ._optional import MissingExtraError
from ._siblings import ShadowWarning
from ._version import __version__
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

_siblings.install()  # tapegrad.nn / tapegrad.viz, and the top-level nn / viz as their aliases

__all__ = [
    "AnomalyError", "GradcheckError", "InPlaceError", "ShapeError", "TapeError", "grad", "hessian",
    "jacobian", "value_and_grad", "vjp", "gradcheck", "Primitive", "Record", "primitive",
    "registered_primitives", "Scope", "Tape", "detect_anomaly", "enable_grad", "no_grad", "scope",
    "Tensor", "tensor", "trace", "RemovableHandle", "checkpoint", "custom_vjp", "hvp", "jacfwd", "jvp",
    "ShadowWarning", "MissingExtraError", "__version__",
]  # fmt: skip
__all__ += ops.__all__
