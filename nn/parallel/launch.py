"""`spawn`: run a function on N local processes joined in a torch.distributed process group.

A thin layer over torch's own launcher (`torch.multiprocessing.start_processes`): it picks a
free local port, starts the process group in every child (gloo on CPU, nccl when there is a
GPU per process) with a finite timeout, and when one rank fails it gives the others a grace
period to fail on their own (they see the broken collective and raise `DistributedError`)
before it stops them, then raises one `DistributedError` naming every failed rank.

Shutdown is bounded: a rank that raises leaves at once (it does not wait on the group); a rank
that hangs makes the others' next collective fail after ``timeout`` seconds; once any rank has
failed, those still running get ``grace`` seconds, then SIGTERM, then SIGKILL 5 seconds later.
So `spawn` returns (raising) at most ``timeout + grace + 5`` seconds after a rank failed or
stopped answering, with every child process gone.
"""

from __future__ import annotations

import datetime
import multiprocessing.connection
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .errors import DistributedError
from .main_guard import check_main_guard

__all__ = ["spawn", "free_port", "default_backend", "is_main_process"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def default_backend(nprocs: int) -> str:
    """``nccl`` when there is a CUDA device for each of ``nprocs`` processes, else ``gloo``."""
    return "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= nprocs else "gloo"


def is_main_process() -> bool:
    """True outside a process group and on its rank 0: the process that prints and saves."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _entry(rank: int, fn: Callable[..., Any], nprocs: int, backend: str, timeout: float, addr: str, port: int,
           failures: str, args: tuple) -> None:  # fmt: skip
    os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(nprocs), LOCAL_WORLD_SIZE=str(nprocs))  # fmt: skip
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=nprocs, timeout=datetime.timedelta(seconds=timeout))
    try:
        fn(rank, *args)
    except BaseException as err:
        # A failed rank leaves at once, without destroy_process_group: gloo's pending collectives
        # would hold it (and its exit) until the group's own timeout. The file says when and why,
        # for `spawn`; the other ranks see the broken group and fail the same way.
        code = err.code if isinstance(err, SystemExit) else 1
        if isinstance(err, SystemExit) and code in (None, 0):
            dist.destroy_process_group()
            raise
        text = "" if isinstance(err, SystemExit) else traceback.format_exc()
        with open(os.path.join(failures, str(rank)), "w") as fh:
            fh.write(f"{time.time()!r}\n{text}")
        sys.stdout.flush()
        sys.stderr.write(text)
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) and 0 < code < 256 else 1)
    dist.destroy_process_group()


def _error_of(text: str, exitcode: int | None) -> str:
    """The last line of a failed rank's traceback, or how it ended (an exit status, a signal)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:
        return lines[-1].strip()
    if exitcode is not None and exitcode < 0:
        return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def _failures(folder: str) -> dict[int, tuple[float, str]]:
    """{rank: (when it failed, its traceback or '')} from the files the failed ranks wrote."""
    found = {}
    for name in os.listdir(folder):
        when, _, text = Path(folder, name).read_text().partition("\n")
        found[int(name)] = (float(when or "inf"), text)
    return found


def spawn(
    fn: Callable[..., Any],
    nprocs: int,
    args: tuple = (),
    *,
    backend: str | None = None,
    timeout: float = 60.0,
    grace: float = 30.0,
    master_addr: str = "127.0.0.1",
) -> None:
    """Run ``fn(rank, *args)`` in ``nprocs`` new processes that form one torch.distributed group.

    ``fn`` and ``args`` must be picklable (``fn`` defined at module level). Each child starts
    the group with ``backend`` (default: `default_backend`) and a ``timeout`` in seconds for
    every collective, so a rank that stops answering fails the others instead of hanging
    them. Returns when all ranks returned; if any failed, waits up to ``grace`` seconds for the
    rest, stops those still running and raises `DistributedError` with each failed rank's error
    (its ``exitcodes`` maps the failed ranks to their exit status, its ``raised`` holds the ranks
    that raised an exception rather than calling ``sys.exit``).
    """
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"spawn: nprocs must be a positive integer, got {nprocs!r}")
    if not timeout > 0 or not grace >= 0:
        raise ValueError(f"spawn: timeout must be positive and grace non-negative, got {timeout!r} and {grace!r}")
    check_main_guard(f"nn.parallel.spawn(nprocs={nprocs})")
    backend = backend or default_backend(nprocs)
    port = free_port(master_addr)
    with tempfile.TemporaryDirectory(prefix="tapegrad-spawn-") as failures:
        context = mp.start_processes(_entry, args=(fn, nprocs, backend, timeout, master_addr, port, failures, args),
                                     nprocs=nprocs, join=False, start_method="spawn")  # fmt: skip
        _join(context.processes, grace)
        reports = _failures(failures)
    processes = context.processes
    failed = [r for r, p in enumerate(processes) if p.exitcode != 0]
    failed.sort(key=lambda r: reports.get(r, (float("inf"), ""))[0])  # the rank that failed first, first
    if failed:
        texts = {r: reports[r][1] if r in reports else "" for r in failed}
        raised = {r for r in failed if texts[r]}
        detail = "; ".join(f"rank {r}: {_error_of(texts[r], processes[r].exitcode)}" for r in failed)
        error = DistributedError(f"{len(failed)} of {nprocs} processes failed, first rank {failed[0]} ({detail})")
        error.exitcodes = {r: processes[r].exitcode for r in failed}  # type: ignore[attr-defined]
        error.raised = raised  # type: ignore[attr-defined]  # ranks that raised (else: exited or were killed)
        raise error


def _join(processes: list, grace: float) -> None:
    """Wait for every process; once one failed, give the others ``grace`` seconds, then stop them."""
    deadline = None
    try:
        while any(p.is_alive() for p in processes):
            if deadline is None and any(p.exitcode not in (None, 0) for p in processes):
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                break
            multiprocessing.connection.wait([p.sentinel for p in processes if p.is_alive()], timeout=0.2)
    finally:
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
