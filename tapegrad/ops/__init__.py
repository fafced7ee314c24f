"""All tapegrad ops; importing this registers the built-in primitives.

Each ops module's ``__all__`` is the one list of its public ops: `tapegrad` re-exports them all,
and `tapegrad.torch_compat.methods` makes each one whose name `torch.Tensor` has a method of `tg.Tensor`. So
adding an op is one edit (define it and name it in its module's ``__all__``) plus its input spec
in tests/op_specs.py; a new ops module is imported here (and `python scripts/gen_tensor_stub.py`
declares the new ops for type checkers: tests/test_typing.py says when it is due). Beyond
the seeds' elementwise, linalg, reduce and shape: one module per family of the ops torch users
reach for.
"""

from . import (
    activations,
    assign,
    attention,
    batchnorm,
    binary_math,
    contraction,
    conv,
    elementwise,
    extrema,
    fused_linear,
    gathering,
    linalg,
    logical,
    lookup,
    losses,
    normalization,
    piecewise,
    pooling,
    recurrent,
    recurrent_elman,
    recurrent_lstm,
    recurrent_lstm_layer,
    reduce,
    sampling,
    scans,
    selection,
    shape,
    shape_extra,
    sorting,
    special,
    stats,
    structure,
    unary_math,
)
from .activations import *  # noqa: F403
from .attention import *  # noqa: F403
from .batchnorm import *  # noqa: F403
from .binary_math import *  # noqa: F403
from .contraction import *  # noqa: F403
from .conv import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .extrema import *  # noqa: F403
from .gathering import *  # noqa: F403
from .linalg import *  # noqa: F403
from .logical import *  # noqa: F403
from .lookup import *  # noqa: F403
from .losses import *  # noqa: F403
from .normalization import *  # noqa: F403
from .piecewise import *  # noqa: F403
from .pooling import *  # noqa: F403
from .recurrent import *  # noqa: F403
from .recurrent_elman import *  # noqa: F403
from .recurrent_lstm import *  # noqa: F403
from .recurrent_lstm_layer import *  # noqa: F403
from .reduce import *  # noqa: F403
from .sampling import *  # noqa: F403
from .scans import *  # noqa: F403
from .selection import *  # noqa: F403
from .shape import *  # noqa: F403
from .shape_extra import *  # noqa: F403
from .sorting import *  # noqa: F403
from .special import *  # noqa: F403
from .stats import *  # noqa: F403
from .structure import *  # noqa: F403
from .unary_math import *  # noqa: F403

# One line per module, not a loop: type checkers follow ``__all__ +=`` (users' see every op)
__all__: list[str] = []
__all__ += elementwise.__all__
__all__ += linalg.__all__
__all__ += reduce.__all__
__all__ += shape.__all__
__all__ += activations.__all__
__all__ += conv.__all__
__all__ += extrema.__all__
__all__ += gathering.__all__
__all__ += pooling.__all__
__all__ += shape_extra.__all__
__all__ += special.__all__
__all__ += stats.__all__
# the fused layer ops (issue 22)
__all__ += normalization.__all__
__all__ += losses.__all__
__all__ += lookup.__all__
__all__ += attention.__all__
# issue 23's ops (the ops helper's block)
__all__ += unary_math.__all__
__all__ += piecewise.__all__
__all__ += binary_math.__all__
__all__ += logical.__all__
__all__ += structure.__all__
__all__ += selection.__all__
__all__ += scans.__all__
__all__ += sorting.__all__
__all__ += contraction.__all__
__all__ += sampling.__all__
__all__ += batchnorm.__all__
__all__ += assign.__all__  # none: x[idx] = value is Tensor.__setitem__
# issue 22: a GRU layer's time loop as one record; linear + activation as one (no public names)
__all__ += recurrent.__all__
__all__ += recurrent_lstm.__all__  # the LSTM's and the Elman RNN's (issue 22, rnn helper)
__all__ += recurrent_elman.__all__
__all__ += recurrent_lstm_layer.__all__  # a whole LSTM layer on oneDNN's kernels (issue 22, lstm helper)
__all__ += fused_linear.__all__
