"""The source layout keeps its rules: imports go down the layers, and a module's name is never hidden
by a name its package exports (docs/architecture.md)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
import types
from pathlib import Path

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


ROOT = Path(__file__).resolve().parent.parent
# what each layer may import (besides itself, the standard library, torch and the like); imports go down only
MAY_IMPORT = {
    "tapegrad.engine": set(),
    "tapegrad.ops": {"tapegrad.engine"},
    "tapegrad.transforms": {"tapegrad.engine", "tapegrad.ops"},
    "tapegrad.tracing": {"tapegrad.engine", "tapegrad.ops"},
    "tapegrad.torch_compat": {"tapegrad.engine", "tapegrad.ops"},
    "nn": {"tapegrad"},
    "viz": {"tapegrad", "nn"},
}
OURS = ("tapegrad", "nn", "viz")


def _layer(module: str) -> str:
    for layer in sorted(MAY_IMPORT, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return module.split(".")[0]


def _imports(path: Path, module: str) -> set[str]:
    """The modules of tapegrad, nn and viz that ``path`` imports, anywhere in it (absolute names)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{a.name}" for a in node.names} if base in OURS else {base}
    return {m for m in found if m.split(".")[0] in OURS}


def _sources() -> list[tuple[Path, str]]:
    out = []
    for top in OURS:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out.append((path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    return out


def test_imports_go_down_the_layers_only() -> None:
    wrong = []
    for path, module in _sources():
        own = _layer(module)
        if own not in MAY_IMPORT:
            continue  # tapegrad's facade and cli sit on top: they may import every layer
        for target in _imports(path, module):
            layer = _layer(target)
            below = any(layer == a or layer.startswith(a + ".") for a in MAY_IMPORT[own])
            helper = target.startswith("tapegrad._") or target == "tapegrad.progress"  # root helpers, no layer
            if target.startswith("tapegrad.cli") or not (layer == own or below or helper):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports that go up or across the layers (docs/architecture.md):\n" + "\n".join(sorted(wrong))


MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60
# declarative tables, allowed to be long: (file, function or None for the whole file)
TABLES = {
    ("tapegrad/cli/parser.py", "build_parser"),  # the argparse table of every subcommand
}


def test_files_and_functions_stay_small() -> None:
    # one job per file (<= 300 lines), one step per function (<= 60 lines); docs/architecture.md
    long = []
    for path, _ in _sources():
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_FILE_LINES and (name, None) not in TABLES:
            long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (name, node.name) not in TABLES:
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{name}:{node.lineno} {node.name}: {size} lines")
    assert not long, f"over {MAX_FILE_LINES} lines a file or {MAX_FUNCTION_LINES} a function:\n" + "\n".join(long)
