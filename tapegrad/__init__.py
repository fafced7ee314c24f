"""tapegrad: automatic differentiation with an explicit tape, on plain torch tensor ops."""

from typing import TYPE_CHECKING

from . import _siblings, _validate, ops
from . import interop as _interop  # noqa: F401  (Tensor.__torch_function__)
from . import methods as _methods  # noqa: F401  (attaches ops to Tensor)
from ._optional import MissingExtraError
from ._siblings import ShadowWarning
from ._version import __version__
from .checkpointing import checkpoint
from .custom_vjp import custom_vjp
from .errors import AnomalyError, CheckpointError, GradcheckError, InPlaceError, ShapeError, TapeError
from .forward import hvp, jacfwd, jvp
from .functional import grad, hessian, jacobian, value_and_grad, vjp
from .gradcheck import gradcheck
from .hooks import RemovableHandle
from .modes import inference_mode, manual_seed

# tapegrad.X for every op of tapegrad.ops (`globals().update` below): it returns tg.Tensors for
# torch inputs too and takes torch's axis= alias. Type checkers read the same names, typed
# (tg.relu(x) -> Tensor), from tapegrad/_ops.pyi, which scripts/gen_tensor_stub.py writes.
from .ops._public import public as _public

if TYPE_CHECKING:
    from ._ops import *  # noqa: F403
from .primitive import Primitive, Record, primitive, registered_primitives
from .state import Scope
from .tape import Tape, detect_anomaly, enable_grad, no_grad, scope
from .tensor import Tensor, tensor
from .trace import trace

globals().update({_name: _public(getattr(ops, _name)) for _name in ops.__all__})

_siblings.install()  # tapegrad.nn / tapegrad.viz, and the top-level nn / viz as their aliases

__all__ = [
    "AnomalyError", "GradcheckError", "InPlaceError", "ShapeError", "TapeError", "grad", "hessian",
    "jacobian", "value_and_grad", "vjp", "gradcheck", "Primitive", "Record", "primitive",
    "registered_primitives", "Scope", "Tape", "detect_anomaly", "enable_grad", "no_grad", "scope",
    "Tensor", "tensor", "trace", "RemovableHandle", "checkpoint", "custom_vjp", "hvp", "jacfwd", "jvp",
    "ShadowWarning", "MissingExtraError", "__version__", "CheckpointError",
]  # fmt: skip
__all__ += ["inference_mode", "manual_seed"]
__all__ += ops.__all__

_validate.name_errors(globals(), __all__)  # every exported function's argument errors name it
