"""`tapegrad.nn` and `tapegrad.viz`: the sibling packages nn and viz, found next to tapegrad.

The distribution ships three top-level packages: tapegrad, nn and viz. Other packages on PyPI
are also called ``nn`` and ``viz``, and a user's own ``nn/`` folder shadows ours on
``sys.path``, so the canonical names are ``tapegrad.nn`` and ``tapegrad.viz``: they are loaded
from the folders beside the tapegrad package (never found by a ``sys.path`` search), and the
top-level ``nn``/``viz`` are aliases of the same module objects (``nn.Linear is
tapegrad.nn.Linear``, ``nn.layers is tapegrad.nn.layers``) whenever they resolve to ours. A
foreign ``nn``/``viz`` is left alone, with a `ShadowWarning` naming its file.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["SIBLINGS", "ShadowWarning", "adopt", "install", "sibling_init"]

SIBLINGS = ("nn", "viz")
_ROOT = Path(__file__).resolve().parent.parent
_MARK = "tapegrad._siblings import adopt"  # every sibling's __init__ starts with this import
_warned: set[str] = set()


class ShadowWarning(UserWarning):
    """The top-level ``nn`` or ``viz`` that Python imported is not tapegrad's (the message names its file)."""


def sibling_init(name: str) -> Path:
    """The ``__init__.py`` of tapegrad's own sibling package ``name`` (beside the tapegrad package)."""
    return _ROOT / name / "__init__.py"


def _is_ours(origin: str | None, name: str) -> bool:
    if not origin:
        return False
    try:
        return Path(origin).resolve() == sibling_init(name).resolve()
    except OSError:
        return False


def _check_intact(name: str) -> Path:
    init = sibling_init(name)
    try:
        text = init.read_text(encoding="utf-8")
    except OSError:
        raise ImportError(
            f"tapegrad.{name}: tapegrad's {name} package is missing (expected {init}); "
            "reinstall it with `pip install --force-reinstall tapegrad`",
            name=f"tapegrad.{name}",
        ) from None
    if _MARK not in text:
        raise ImportError(
            f"tapegrad.{name}: {init} is not tapegrad's {name} package: another package named {name!r} "
            f"was installed over it (pip merges folders of the same name). Run `pip uninstall {name}` "
            "and then `pip install --force-reinstall tapegrad`",
            name=f"tapegrad.{name}",
        )
    return init


def _shadow_message(name: str, origin: str) -> str:
    return (
        f"`import {name}` found {origin}, which is not tapegrad's {name} (that one is {sibling_init(name)}); "
        f"your {name!r} shadows ours, so this import gives you yours. Use `import tapegrad.{name} as {name}` "
        f"(or `from tapegrad import {name}`) for tapegrad's, or rename your folder"
    )


def _warn_shadow(name: str, origin: str) -> None:
    if name in _warned:
        return
    _warned.add(name)
    warnings.warn(_shadow_message(name, origin), ShadowWarning, stacklevel=3)


class _Alias(importlib.abc.Loader):
    """Loads a top-level name (``nn``, ``nn.layers``) as the canonical ``tapegrad.`` module object."""

    def __init__(self, canonical: str) -> None:
        self.canonical = canonical

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a throwaway; exec_module puts the canonical module in its place

    def exec_module(self, module: ModuleType) -> None:
        # the import system returns whatever sys.modules holds under the name after exec_module
        sys.modules[module.__name__] = importlib.import_module(self.canonical)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``tapegrad.nn``/``tapegrad.viz`` beside tapegrad, and aliases the top-level names to them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        top, _, rest = fullname.partition(".")
        if top == "tapegrad" and rest in SIBLINGS:
            init = _check_intact(rest)
            return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(init.parent)])
        if top not in SIBLINGS:
            return None
        if rest:  # a submodule of a top-level name that is already our alias
            parent = sys.modules.get(top)
            if parent is not None and parent.__name__ == f"tapegrad.{top}":
                return importlib.machinery.ModuleSpec(fullname, _Alias(f"tapegrad.{fullname}"))
            return None
        origin = self._origin(fullname, path, target)
        if origin is not None and not _is_ours(origin, top):
            _warn_shadow(top, origin)
            return None
        if origin is not None and _MARK not in sibling_init(top).read_text(encoding="utf-8"):
            return None  # ours was overwritten; let the import system load what is there
        return importlib.machinery.ModuleSpec(fullname, _Alias(f"tapegrad.{fullname}"))

    def _origin(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None) -> str | None:
        """Where the other finders would load ``fullname`` from (None if nowhere)."""
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.origin in (None, "namespace") and spec.submodule_search_locations:
                    return str(list(spec.submodule_search_locations)[0])
                return spec.origin
        return None


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once), and warn about a foreign nn/viz already imported."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    for name in SIBLINGS:
        module = sys.modules.get(name)
        if module is not None and not module.__name__.startswith("tapegrad."):
            origin = getattr(module, "__file__", None)
            if origin and not _is_ours(origin, name):
                _warn_shadow(name, origin)


def adopt(name: str) -> None:
    """Called first by nn's and viz's ``__init__``: a top-level import becomes the canonical module.

    When Python found our folder by a ``sys.path`` search (``import nn`` before tapegrad put
    its finder in place), this loads ``tapegrad.nn`` and puts it under ``nn`` in
    ``sys.modules``; the rest of that first execution only binds aliases and is discarded.
    """
    if name.startswith("tapegrad."):
        return
    sys.modules[name] = importlib.import_module(f"tapegrad.{name}")
