"""Every public name of tapegrad, tapegrad.testing, nn and viz says what it promises."""

from __future__ import annotations

import inspect

import pytest

import nn
import tapegrad
import tapegrad.testing
import viz

PACKAGES = [tapegrad, tapegrad.testing, nn, viz, nn.data, nn.init, nn.losses]
OURS = ("tapegrad", "nn", "viz")


def public_names(module) -> list[str]:
    """The module's ``__all__``, or its attributes without a leading underscore."""
    names = getattr(module, "__all__", None)
    return list(names) if names is not None else [n for n in vars(module) if not n.startswith("_")]


def doc_of(obj) -> str:
    """What the API reference shows: a primitive's ``doc``, else the object's own docstring."""
    if isinstance(obj, tapegrad.Primitive):
        return "" if obj.doc == f"The `{obj.name}` primitive." else obj.doc
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__") or ""
    # an override without a docstring shows its parent's, as in the API reference
    return inspect.getdoc(obj) or ""


def members(cls) -> list[tuple[str, object]]:
    """Public methods and properties defined by one of our classes (not inherited from others)."""
    out = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith(OURS):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in dict(out):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property) or callable(value):
                out.append((name, value))
    return out


def test_module_docstrings():
    for module in PACKAGES:
        assert (module.__doc__ or "").strip(), module.__name__


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_public_names_have_docstrings(module):
    missing = []
    for name in public_names(module):
        obj = getattr(module, name)
        if inspect.ismodule(obj) or not (callable(obj) or inspect.isclass(obj)):
            continue  # data (a dict of styles, a constant) is documented where it is defined
        if len(doc_of(obj).strip()) < 10:
            missing.append(name)
        if inspect.isclass(obj):
            missing += [f"{name}.{m}" for m, v in members(obj) if len(doc_of(v).strip()) < 10]
    assert not missing, f"{module.__name__}: no docstring on {sorted(missing)}"


def test_the_check_catches_a_missing_docstring():
    def undocumented():
        pass

    class Bare:
        def method(self):
            pass

    Bare.__module__ = "tapegrad.example"
    assert doc_of(undocumented) == ""
    assert [m for m, v in members(Bare) if not doc_of(v)] == ["method"]
    assert doc_of(tapegrad.Primitive("docless_example", lambda x: x, None)) == ""  # not registered
