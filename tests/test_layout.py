"""The source layout keeps its rules: a module's name is never hidden by a name its package exports."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types

import pytest

import tapegrad  # noqa: F401  (tapegrad.nn and tapegrad.viz)

PACKAGES = [
    "tapegrad", "tapegrad.engine", "tapegrad.ops", "tapegrad.transforms", "tapegrad.tracing",
    "tapegrad.torch_compat", "tapegrad.cli", "tapegrad.cli.bench", "nn", "nn.optim", "nn.parallel", "viz",
]  # fmt: skip


@pytest.mark.parametrize("name", PACKAGES)
def test_no_exported_name_hides_a_module(name: str) -> None:
    # `import tapegrad.X as m` must give the module X, never a function the package exports as X
    package = importlib.import_module(name)
    hidden = []
    for info in pkgutil.iter_modules(package.__path__):
        attr = getattr(package, info.name, None)
        if attr is None:
            continue
        module = sys.modules.get(f"{package.__name__}.{info.name}")
        if not isinstance(attr, types.ModuleType) or (module is not None and attr is not module):
            hidden.append(f"{name}.{info.name} ({type(attr).__name__})")
    assert not hidden, f"exported names that hide a module of the same name: {hidden}"
