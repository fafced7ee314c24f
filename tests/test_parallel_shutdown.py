"""A hanging, failing or killed rank ends the whole run within timeout + grace + 5 s, no process left."""

from __future__ import annotations

import os
import time

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
