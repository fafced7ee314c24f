"""tapegrad: automatic differentiation with an explicit tape, on plain torch tensor ops."""

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

# tapegrad.X: each op returns tg.Tensors for torch inputs too and takes torch's axis= alias
from .ops._public import public as _public  # noqa: E402

# Every op, as listed by its module; one star import per module, not `from .ops import *`: type
# checkers do not carry names through two star imports in an import cycle (users' `tg.relu`)
from .ops.activations import *  # noqa: F403
from .ops.assign import *  # noqa: F403
from .ops.attention import *  # noqa: F403
from .ops.batchnorm import *  # noqa: F403
from .ops.binary_math import *  # noqa: F403
from .ops.contraction import *  # noqa: F403
from .ops.conv import *  # noqa: F403
from .ops.elementwise import *  # noqa: F403
from .ops.extrema import *  # noqa: F403
from .ops.gathering import *  # noqa: F403
from .ops.linalg import *  # noqa: F403
from .ops.logical import *  # noqa: F403
from .ops.lookup import *  # noqa: F403
from .ops.losses import *  # noqa: F403
from .ops.normalization import *  # noqa: F403
from .ops.piecewise import *  # noqa: F403
from .ops.pooling import *  # noqa: F403
from .ops.recurrent import *  # noqa: F403
from .ops.reduce import *  # noqa: F403
from .ops.sampling import *  # noqa: F403
from .ops.scans import *  # noqa: F403
from .ops.selection import *  # noqa: F403
from .ops.shape import *  # noqa: F403
from .ops.shape_extra import *  # noqa: F403
from .ops.sorting import *  # noqa: F403
from .ops.special import *  # noqa: F403
from .ops.stats import *  # noqa: F403
from .ops.structure import *  # noqa: F403
from .ops.unary_math import *  # noqa: F403
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
