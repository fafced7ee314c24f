"""A hanging, failing or killed rank ends the whole run within timeout + grace + 5 s, no process left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import parallel_workers as pw
import pytest

from nn.parallel import DistributedError, spawn

TIMEOUT, GRACE = 5.0, 2.0


def _spawned_children() -> list[int]:
    """Pids of this process's children that are multiprocessing spawn workers (Linux /proc)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rpartition(")")[2].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if ppid == os.getpid() and b"spawn_main" in cmdline:
            found.append(int(pid))
    return found


@pytest.mark.parametrize(
    ("worker", "rank1"),
    [(pw.hanging, "killed by signal 15"), (pw.killed, "killed by signal 9"), (pw.failing, "ValueError: rank 1")],
    ids=["hanging", "killed", "raising"],
)
def test_every_rank_ends_in_bounded_time_and_no_process_is_left(worker, rank1, tmp_path):
    assert _spawned_children() == []
    start = time.monotonic()
    with pytest.raises(DistributedError) as err:
        spawn(worker, 2, (str(tmp_path),), timeout=TIMEOUT, grace=GRACE)
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert "2 of 2 processes failed" in message and f"rank 1: {rank1}" in message
    # the bound spawn documents, plus the time two processes take to start on a busy machine
    assert elapsed < TIMEOUT + GRACE + 5 + 60, f"the run took {elapsed:.0f} s to end"
    assert _spawned_children() == []


def test_a_rank_that_gave_up_on_a_hanging_peer_does_not_wait_for_the_group_timeout(tmp_path):
    # the process group's timeout is 300 s; DDP's is 3 s: rank 0 raises after 3 s and must then
    # leave, not wait in destroy_process_group on the pending all-reduce until the 300 s are up
    start = time.monotonic()
    with pytest.raises(DistributedError) as err:
        spawn(pw.hanging_ddp, 2, (str(tmp_path),), timeout=300.0, grace=GRACE)
    elapsed = time.monotonic() - start
    assert "DistributedError: DistributedDataParallel: the all-reduce" in str(err.value)
    assert elapsed < 3 + GRACE + 5 + 60, f"the run took {elapsed:.0f} s to end"
    assert _spawned_children() == []


_FAILING_RANK_SCRIPT = '''\
"""`tapegrad train` with rank 1 failing in its first `nn.fit` (spawned ranks re-run this top level)."""
import os
import sys

import tapegrad.nn as nn
from tapegrad.cli import main

_fit = nn.fit


def _fit_failing_on_rank_1(*args, **kwargs):
    if os.environ.get("RANK") == "1":
        raise RuntimeError("injected failure on rank 1")
    return _fit(*args, **kwargs)


nn.fit = _fit_failing_on_rank_1

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def _processes_with(marker: str) -> list[int]:
    """Pids of the live processes whose environment holds ``marker`` (Linux /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_train_nproc_2_with_a_failing_rank_exits_non_zero_promptly_leaving_no_process(tmp_path):
    script = tmp_path / "train_failing_rank.py"
    script.write_text(_FAILING_RANK_SCRIPT)
    marker = f"TAPEGRAD_TEST_RUN={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), marker.split("=")[0]: marker.split("=")[1]}
    argv = [sys.executable, str(script), "train", "--nproc", "2", "--epochs", "2", "--n-train", "100",
            "--n-test", "100", "--quiet"]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "tapegrad train: error:" in proc.stderr and "rank 1: RuntimeError: injected failure on rank 1" in proc.stderr
    rank0 = "rank 0: tapegrad.nn.parallel.errors.DistributedError: DistributedDataParallel: the all-reduce"
    assert rank0 in proc.stderr  # rank 0 failed on its own, it was not stopped after the grace period
    # rank 0 sees the broken group at its first all-reduce and leaves: no grace period, no timeout
    # (train's collective timeout is 120 s, spawn's grace 30 s); start-up of 3 processes aside
    assert elapsed < 60, f"the run took {elapsed:.0f} s to end"
    assert _processes_with(marker) == []
