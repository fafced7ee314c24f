"""One way to reach the recording state: `state.current()` (and `per_thread`, its inlined form for the
per-op paths); one context for "no open tape records"; nothing outside state.py reads its private names."""

import ast
import pathlib
import threading

import pytest
import torch

import tapegrad as tg
from tapegrad.engine import state as state_module
from tapegrad.engine.state import current, per_thread, suspended_tapes

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_current_is_per_thread_and_per_thread_state_is_the_same_object():
    mine = current()
    assert current() is mine and per_thread.state is mine
    seen = []
    worker = threading.Thread(target=lambda: seen.append((current(), per_thread.state)))
    worker.start()
    worker.join()
    theirs, fast = seen[0]
    assert theirs is fast and theirs is not mine


def test_per_thread_has_no_state_in_a_new_thread_until_current_makes_it():
    seen = []

    def body():
        seen.append(hasattr(per_thread, "state"))
        current()
        seen.append(hasattr(per_thread, "state"))

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    assert seen == [False, True]


def test_suspended_tapes_sets_the_open_tapes_aside_and_restores_them_even_on_error():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as outer:
        with suspended_tapes() as state:
            assert state is current() and state.tapes == [] and not state.recording
            unrecorded = x * 2
            with tg.Tape() as inner:  # a tape opened inside records as usual
                y = (x * 3).sum()
        assert current().tapes == [outer]
        z = (unrecorded * x).sum()
        with pytest.raises(RuntimeError, match="boom"), suspended_tapes():
            raise RuntimeError("boom")
        assert current().tapes == [outer]
    assert len(inner) == 2 and len(outer) == 2  # the outer tape missed x * 2 (and the inner tape's ops)
    assert torch.equal(outer.gradient(z, x).data, 2 * x.data)  # unrecorded * x: x * 2 was a constant
    assert torch.equal(inner.gradient(y, x).data, torch.full((2,), 3.0))


def test_recording_is_grad_mode_and_an_open_tape():
    assert not current().recording
    with tg.Tape():
        assert current().recording
        with tg.no_grad():
            assert not current().recording


def _imported_private_state_names(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "state":
            found += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name.startswith("_")]
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and isinstance(node.value, ast.Name):
            if node.value.id in ("state", "state_module") and node.attr not in ("__name__", "__doc__"):
                found.append(f"{path.relative_to(ROOT)}: state.{node.attr}")
    return found


def test_nothing_outside_state_py_imports_a_private_name_from_it():
    files = [p for d in ("tapegrad", "nn", "viz") for p in (ROOT / d).rglob("*.py") if p.name != "state.py"]
    assert len(files) > 50
    assert [hit for p in files for hit in _imported_private_state_names(p)] == []
    assert not hasattr(state_module, "STATE") and not hasattr(state_module, "_LOCAL")  # one way, not three


def test_viz_reads_tapes_through_the_public_view():
    files = [p for d in ("viz", "nn") for p in (ROOT / d).rglob("*.py")]
    files += [
        p for p in (ROOT / "tapegrad").rglob("*.py") if p.name not in ("tape.py", "replay.py")
    ]  # the tape and its replay half
    assert [str(p.relative_to(ROOT)) for p in files if "._records" in p.read_text(encoding="utf-8")] == []
    with tg.Tape() as tape:
        (tg.tensor([1.0], requires_grad=True) * 2).sum()
    assert not tape.released and len(tape.records) == 2
    tape.records.clear()  # a copy: the tape keeps its records
    assert len(tape) == 2
