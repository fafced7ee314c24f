"""tapegrad: automatic differentiation with an explicit tape, on plain torch tensor ops."""

from typing import TYPE_CHECKING

from . import _siblings, _validate, ops
from ._optional import MissingExtraError
from ._siblings import ShadowWarning
from ._version import __version__
from .engine.errors import AnomalyError, CheckpointError, GradcheckError, InPlaceError, ShapeError, TapeError
from .engine.hooks import RemovableHandle
from .engine.modes import inference_mode, manual_seed

# tapegrad.X for every op of tapegrad.ops (`globals().update` below): it returns tg.Tensors for
# torch inputs too and takes torch's axis= alias. Type checkers read the same names, typed
# (tg.relu(x) -> Tensor), from tapegrad/_ops.pyi, which scripts/gen_tensor_stub.py writes.
from .ops._public import public as _public
from .torch_compat import interop as _interop  # noqa: F401  (Tensor.__torch_function__)
from .torch_compat import methods as _methods  # noqa: F401  (attaches ops to Tensor)
from .transforms.checkpointing import checkpoint
from .transforms.custom_rules import custom_vjp
from .transforms.forward import hvp, jacfwd, jvp
from .transforms.functional import grad, hessian, jacobian, value_and_grad, vjp
from .transforms.gradchecking import gradcheck

if TYPE_CHECKING:
    from ._ops import *  # noqa: F403
from .engine.primitives import Primitive, Record, primitive, registered_primitives
from .engine.state import Scope
from .engine.tape import Tape, detect_anomaly, enable_grad, no_grad, scope
from .engine.tensors import Tensor, tensor
from .tracing.traced import trace

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
