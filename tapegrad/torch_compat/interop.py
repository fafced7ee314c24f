"""torch functions on tapegrad tensors: `tg.Tensor.__torch_function__` runs tapegrad's op of that name.

``torch.X(t)``, ``torch.Tensor.X(a, t)`` (``torch_tensor + t``) and torch's functional ``F.X(t)``
reach `dispatch` when a `tg.Tensor` is among the arguments. It looks the torch function up by
name, once per function (then a dict lookup), in the namespaces that implement it:

- ``torch.X`` and ``torch.special.X``: `RENAMES` (torch's aliases), then `tapegrad.ops`;
- ``torch.Tensor.X``: the methods of `tg.Tensor` (the receiver, a torch tensor, becomes a constant);
- torch's functional ``F.X``: the modules registered with `register_namespace` (``tapegrad.nn``
  registers its ``functional`` on import).

So an op that a module adds later is found without an edit here. A torch function tapegrad lacks
runs on the raw data when it returns no floating point tensor (``argmax``, ``isclose``,
``multinomial``, ``allclose``: nothing could flow back through it) or only builds new values
(`CONSTANTS`: ``zeros_like``, ``rand_like``, ...); its tensors come back as `tg.Tensor`s,
unrecorded. Any other raises `TypeError` naming the torch function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from .. import ops
from ..engine.errors import call_site
from ..engine.tensors import Tensor, wrap

__all__ = ["dispatch", "register_namespace", "RENAMES", "CONSTANTS"]

# torch's aliases of an op tapegrad has under another name (torch.X -> tapegrad.ops name)
RENAMES = {
    "absolute": "abs", "negative": "neg", "multiply": "mul", "subtract": "sub", "divide": "div",
    "true_divide": "div", "concat": "cat", "concatenate": "cat", "greater": "gt", "greater_equal": "ge",
    "less": "lt", "less_equal": "le", "not_equal": "ne", "swapaxes": "transpose", "swapdims": "transpose",
    "special_erf": "erf", "special_expm1": "expm1", "special_log1p": "log1p", "special_logsumexp": "logsumexp",
    "special_softmax": "softmax", "special_log_softmax": "log_softmax", "special_expit": "sigmoid",
    "clip": "clamp", "log_sigmoid": "logsigmoid", "_threshold": "threshold",
}  # fmt: skip

# torch functions whose float outputs are new values, not functions of the input's values
CONSTANTS = frozenset(
    {
        "zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like",
        "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "bernoulli", "normal", "poisson",
    }
)  # fmt: skip

# Names that mean something else in the other namespace, so never looked up there: torch.X whose
# arguments differ from F.X's (torch.conv1d is F.conv1d, these are not: the losses take an int
# reduction), and F.X that is not the tensor op of that name (F.unfold is im2col, Tensor.unfold windows)
_NOT_ACROSS = {
    "torch": frozenset(
        {
            "embedding", "dropout", "layer_norm", "pad", "group_norm", "batch_norm", "instance_norm", "kl_div",
            "binary_cross_entropy_with_logits", "cosine_embedding_loss", "hinge_embedding_loss",
            "margin_ranking_loss", "poisson_nll_loss", "triplet_margin_loss",
        }
    ),
    "functional": frozenset({"unfold", "fold"}),
    "method": frozenset(),
}  # fmt: skip

_NAMESPACES: dict[str, list[Any]] = {"torch": [ops], "method": [Tensor], "functional": []}
_CACHE: dict[Any, Callable[..., Any]] = {}


def register_namespace(kind: str, module: ModuleType | type) -> None:
    """Let ``module``'s functions implement torch's of the same name (``kind``: 'torch', 'method',
    'functional'); registered later wins over earlier, and over the built-in namespaces."""
    _NAMESPACES[kind].insert(0, module)
    _CACHE.clear()


def dispatch(cls: type, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
    """`tg.Tensor.__torch_function__` (a classmethod): run tapegrad's implementation of ``func``."""
    impl = _CACHE.get(func)
    if impl is None:
        impl = _CACHE[func] = _resolve(func)
    if not kwargs:
        return impl(*args)
    if "axis" in kwargs or "keepdims" in kwargs:  # torch's numpy-style aliases of dim / keepdim
        kwargs = {_ALIASES.get(k, k): v for k, v in kwargs.items()}
    return impl(*args, **kwargs)


_ALIASES = {"axis": "dim", "keepdims": "keepdim"}


def _kind(func: Any) -> tuple[str, str]:
    """('torch' | 'method' | 'functional', name) of a torch function."""
    name = getattr(func, "__name__", repr(func))
    module = getattr(func, "__module__", None) or ""
    if getattr(func, "__objclass__", None) is not None or module == "torch._tensor":
        return "method", name
    if module == "torch._C._nn" or module.split(".")[-2:] == ["nn", "functional"]:
        return "functional", name
    return "torch", name


def torch_name(func: Any) -> str:
    """The name a torch user writes for ``func``: 'torch.cummax', 'torch.Tensor.add', 'F.pad' (torch's functional)."""
    kind, name = _kind(func)
    prefix = {"torch": "torch", "method": "torch.Tensor", "functional": "F"}[kind]
    if name.startswith("special_"):
        return f"torch.special.{name[len('special_') :]}"
    return f"{prefix}.{name}"


def _torch_embedding(
    weight: Any, indices: Any, padding_idx: int = -1, scale_grad_by_freq: bool = False, sparse: bool = False
) -> Any:
    """torch.embedding(weight, indices, ...): F.embedding's arguments in aten's order."""
    impl = _lookup("functional", "embedding")
    if impl is None:
        raise TypeError(f"tapegrad has no op for torch.embedding; import tapegrad.nn first (called at {call_site()})")
    pad = None if padding_idx < 0 else padding_idx
    return impl(indices, weight, pad, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)


# torch functions whose arguments are not those of tapegrad's op of that name: an adapter each
_ADAPTERS: dict[tuple[str, str], Callable[..., Any]] = {("torch", "embedding"): _torch_embedding}


def _resolve(func: Any) -> Callable[..., Any]:
    kind, name = _kind(func)
    if (kind, name) in _ADAPTERS:
        return _ADAPTERS[kind, name]
    found = _lookup(kind, name)
    if found is not None:
        return _checked(func, _without_compat_args(found), found)
    if name in CONSTANTS or name.rstrip("_") in CONSTANTS:
        return lambda *args, **kwargs: _wrap_all(func(*_unwrap(args), **_unwrap(kwargs)))
    return lambda *args, **kwargs: _untracked(func, args, kwargs)


# arguments torch passes for compatibility only (F.relu(x, inplace=False)), dropped where tapegrad's op lacks them
_COMPAT_ARGS = ("inplace", "_stacklevel")


def _without_compat_args(impl: Callable[..., Any]) -> Callable[..., Any]:
    try:
        params: Any = inspect.signature(impl).parameters
    except (TypeError, ValueError):
        params = ()
    drop = [a for a in _COMPAT_ARGS if a not in params]  # a primitive's **params does not name them
    if not drop:
        return impl

    def call(*args: Any, **kwargs: Any) -> Any:
        for a in drop:
            kwargs.pop(a, None)
        return impl(*args, **kwargs)

    return call


def _lookup(kind: str, name: str) -> Callable[..., Any] | None:
    names = [name, RENAMES.get(name, name)]
    if name.startswith("special_"):
        names.append(name[len("special_") :])
    spaces = _NAMESPACES[kind]
    if name not in _NOT_ACROSS[kind]:
        spaces = spaces + _NAMESPACES["torch" if kind != "torch" else "functional"]
    for space in spaces:
        public = getattr(space, "__all__", None)
        for n in names:
            if n.startswith("_") and n not in _DUNDERS or public is not None and n not in public:
                continue
            fn = getattr(space, n, None)
            if fn is None or not callable(fn) or isinstance(fn, (type, ModuleType)):
                continue
            return _method(fn) if space is Tensor else fn
    return None


# torch.Tensor's operators that reach here when the left operand is a torch tensor (torch_t + t)
_DUNDERS = frozenset(n for n in vars(Tensor) if n.startswith("__") and n.endswith("__"))


def _method(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self, torch.Tensor):  # torch_t.add(t): the torch tensor is a constant
            self = wrap(self)
        return fn(self, *args, **kwargs)

    return call


def _checked(func: Any, impl: Callable[..., Any], declared: Callable[..., Any]) -> Callable[..., Any]:
    """``impl``, with a TypeError from arguments ``declared`` does not take naming the torch function."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return impl(*args, **kwargs)
        except TypeError as err:
            try:
                inspect.signature(declared).bind(*args, **{k: v for k, v in kwargs.items() if k not in _COMPAT_ARGS})
            except (TypeError, ValueError):
                raise TypeError(f"tapegrad's {torch_name(func)} does not take these arguments: {err}") from err
            raise

    return call


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.data
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap_all(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return wrap(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # torch.return_types: a named tuple
        return type(obj)([_wrap_all(o) for o in obj])
    if isinstance(obj, (list, tuple)):
        return type(obj)(_wrap_all(o) for o in obj)
    return obj


def _floats(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.is_floating_point() or obj.is_complex()
    if isinstance(obj, (list, tuple)):
        return any(_floats(o) for o in obj)
    return False


def _untracked(func: Any, args: tuple, kwargs: dict) -> Any:
    """Run a torch function tapegrad lacks on the raw data, if no gradient could flow through it."""
    out = func(*_unwrap(args), **_unwrap(kwargs))
    if _floats(out) and _floats(_unwrap(list(args) + list(kwargs.values()))):
        hint = ""
        if _kind(func)[0] == "functional" and not _NAMESPACES["functional"]:
            hint = "import tapegrad.nn first (its functional implements torch's F), or "
        raise TypeError(
            f"tapegrad has no op for {torch_name(func)}; {hint}write it with tapegrad ops, declare it with "
            f"tg.primitive(name, forward, vjp), or call it on `.data` (no gradient) (called at {call_site()})"
        )
    return _wrap_all(out)


Tensor.__torch_function__ = classmethod(dispatch)  # type: ignore[assignment]
