"""Optional dependencies: imported when a feature is used, and a missing one names its extra.

``pip install tapegrad`` brings only torch and networkx; graphviz (``[viz]``), matplotlib
(``[plot]``), hypothesis (``[testing]``), safetensors (``[io]``) and tqdm (``[cli]``) come
with the extras named here (``[all]`` has every one).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

__all__ = ["EXTRAS", "MissingExtraError", "require", "tqdm"]

EXTRAS = {
    "graphviz": "viz",
    "matplotlib": "plot",
    "hypothesis": "testing",
    "safetensors": "io",
    "tqdm": "cli",
}
"""The extra that installs each optional package."""


class MissingExtraError(ImportError):
    """A feature needs an optional package that is not installed (the message names the extra)."""

    def __init__(self, package: str, feature: str) -> None:
        extra = EXTRAS[package]
        super().__init__(
            f"{feature} needs the optional package {package!r}, which is not installed: "
            f"pip install 'tapegrad[{extra}]' (or 'tapegrad[all]' for every optional feature)",
            name=package,
        )
        self.package, self.extra, self.feature = package, extra, feature


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (``"matplotlib.pyplot"``), or raise `MissingExtraError` naming its extra."""
    package = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.partition(".")[0] == package:
            raise MissingExtraError(package, feature) from None
        raise


class _NoBar:
    """What `tqdm` returns without tqdm: iterates like the iterable, every bar method does nothing."""

    def __init__(self, iterable: Iterable[Any] | None = None) -> None:
        self._iterable = iterable if iterable is not None else ()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


_warned = False


def tqdm(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    """A ``tqdm.auto`` progress bar; without tqdm, no bar and one warning naming the ``[cli]`` extra.

    A progress bar is never worth failing a run for, so this warns where other optional
    features raise `MissingExtraError`.
    """
    global _warned
    try:
        from tqdm.auto import tqdm as bar
    except ModuleNotFoundError:
        if not _warned:
            _warned = True
            warnings.warn(str(MissingExtraError("tqdm", "a progress bar")), stacklevel=2)
        return _NoBar(iterable)
    return bar(iterable, **kwargs) if iterable is not None else bar(**kwargs)
