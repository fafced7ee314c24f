"""Optional dependencies: imported when a feature is used, and a missing one names its extra.

``pip install tapegrad`` brings only torch and networkx; graphviz (``[viz]``), matplotlib
(``[plot]``), hypothesis (``[testing]``), safetensors (``[io]``) and tqdm (``[cli]``) come
with the extras named here (``[all]`` has every one). A missing tqdm is no error: progress is
then printed as lines (`tapegrad.progress`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtraError", "require"]

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
