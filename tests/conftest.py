"""Shared test setup: one torch thread (tiny tensors), and no recording state leaking between tests."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from hypothesis import settings

from tapegrad.engine.state import current

# the helper modules (strategies.py, op_specs.py) import as top-level modules
sys.path.insert(0, os.path.dirname(__file__))

torch.set_num_threads(1)  # the tests use tiny tensors: threads only add overhead on a shared machine

# `make test` (and CI) draws the same hypothesis examples on every run, so a red run is a regression in the
# code, never a new draw; TAPEGRAD_HYPOTHESIS=explore draws fresh examples (and keeps failures in the
# local example database) to look for new counterexamples
settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("TAPEGRAD_HYPOTHESIS", "repeatable"))


@pytest.fixture(autouse=True)
def _clean_recording_state():
    """Fail a test that leaves a tape open, a scope set, or no_grad/anomaly mode on, then reset it."""
    yield
    leaked = []
    state = current()
    if state.tapes:
        leaked.append(f"{len(state.tapes)} open tape(s)")
    if state.scope is not None:
        leaked.append(f"scope {state.scope!r}")
    if not state.grad_enabled:
        leaked.append("grad disabled")
    if state.anomaly:
        leaked.append("anomaly mode on")
    state.tapes, state.scope, state.grad_enabled, state.anomaly = [], None, True, False
    assert not leaked, f"the test leaked recording state: {', '.join(leaked)}"


@pytest.fixture
def quick_inductor(monkeypatch):
    """tg.trace's inductor executor with inductor's compile replaced by the graph it is handed (the step
    captured by make_fx, its updates rewritten): the compiled step's machinery (folding, the first-replay
    check, the armed call) without a C++ build, which takes seconds to minutes a graph."""
    from tapegrad.tracing import replay_inductor

    monkeypatch.setattr(replay_inductor, "_compiled", lambda gm, inputs, cpp: gm)
