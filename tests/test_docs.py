"""The docs never drift from the code: every ```python block runs, and the site builds with -W."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tapegrad.engine.primitives as REGISTRY_MODULE

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# A ```python fence runs; ```text, ```console and ```bash fences are shown, never run.
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.S | re.M)
PAGES = sorted(p for p in DOCS.glob("*.md")) + [ROOT / "README.md"]


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fences of a Markdown page, in order."""
    return FENCE.findall(text)


def test_fence_convention_finds_only_python_blocks():
    page = "a\n```python\nx = 1\n```\n```text\nnot run\n```\n```console\n$ ls\n```\n```python\ny = x + 1\n```\n"
    assert python_blocks(page) == ["x = 1\n", "y = x + 1\n"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(page, tmp_path, monkeypatch):
    """Each page's blocks run in order, in one namespace, in a fresh directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setattr(sys, "argv", ["docs"])
    # primitives a page declares must not join the registry that other tests iterate
    monkeypatch.setattr(REGISTRY_MODULE, "_REGISTRY", dict(REGISTRY_MODULE._REGISTRY))
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    with torch.random.fork_rng():  # pages seed torch; the other tests' random streams stay as they were
        for i, block in enumerate(python_blocks(page.read_text(encoding="utf-8"))):
            code = compile(block, f"{page.name}[block {i}]", "exec")
            exec(code, namespace)  # a failing example fails here, naming the page and block


def test_pages_do_not_leak_primitives_into_the_registry(monkeypatch, tmp_path):
    before = set(REGISTRY_MODULE._REGISTRY)
    test_examples_run(DOCS / "primitives.md", tmp_path, monkeypatch)
    assert "softplus" in REGISTRY_MODULE._REGISTRY  # the page registered it, on the copy
    monkeypatch.undo()
    assert set(REGISTRY_MODULE._REGISTRY) == before


def test_guide_pages_have_examples():
    for name in ("getting-started.md", "tape.md", "primitives.md", "errors.md"):
        assert len(python_blocks((DOCS / name).read_text(encoding="utf-8"))) >= 3, name


def test_site_builds_without_warnings(tmp_path):
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"), "docs", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    index = (out / "index.html").read_text(encoding="utf-8")
    for page in PAGES[:-1]:
        assert (out / f"{page.stem}.html").is_file(), page.name
    assert "getting-started.html" in index
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("tapegrad.Tape.gradient", "tapegrad.testing.tensors", "nn.Linear", "viz.draw"):
        assert f'id="{name}"' in api, name
    assert not undocumented_public_names(api)
    tape = (out / "tape.html").read_text(encoding="utf-8")
    assert "forward.svg" in tape and (out / "_images" / "forward.svg").is_file()


def undocumented_public_names(api_html: str) -> list[str]:
    """The public names (each documented module's ``__all__``) that the built API reference lacks."""
    import importlib
    import types

    source = (DOCS / "api.md").read_text(encoding="utf-8")
    modules = re.findall(r"^\.\. automodule:: (\S+)\n   :members:", source, re.M)
    assert {"tapegrad", "tapegrad.testing", "nn", "viz"} <= set(modules), modules
    ids = set(re.findall(r'id="([^"]+)"', api_html))
    missing = [] if "tapegrad.cli.main" in ids else ["tapegrad.cli.main"]
    for module in modules:
        for name in importlib.import_module(module).__all__:
            obj = getattr(importlib.import_module(module), name)
            key = f"module-{module}.{name}" if isinstance(obj, types.ModuleType) else f"{module}.{name}"
            if key not in ids:
                missing.append(key)
    assert not missing, (
        f"docs/api.md does not document {missing}: give each a docstring (data: a string right after "
        "it), add `.. automodule:: NAME` for a module, or `.. autodata::` / `.. data::` for a value"
    )
    return missing
