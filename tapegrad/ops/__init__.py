"""All tapegrad ops; importing this registers the built-in primitives.

Each ops module's ``__all__`` is the one list of its public ops: `tapegrad` re-exports them all,
and `tapegrad.methods` makes each one whose name `torch.Tensor` has a method of `tg.Tensor`. So
adding an op is one edit (define it and name it in its module's ``__all__``) plus its input spec
in tests/op_specs.py; a new ops module is imported here.
"""

from . import elementwise, linalg, reduce, shape
from .elementwise import *  # noqa: F403
from .linalg import *  # noqa: F403
from .reduce import *  # noqa: F403
from .shape import *  # noqa: F403

__all__: list[str] = []
__all__ += elementwise.__all__
__all__ += linalg.__all__
__all__ += reduce.__all__
__all__ += shape.__all__
