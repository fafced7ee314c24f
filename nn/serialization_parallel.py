"""Running a checkpoint load's reads and checksums on torch's intra-op threads.

`torch.Tensor.copy_` (and so a `load_state_dict` from safetensors' mapped tensors) spreads a large
copy over ``torch.get_num_threads()`` threads; `nn.load` does the same with its byte ranges. The
work is plain positional file reads (`os.preadv`, so threads share one descriptor) and CRC-32
computation, both of which release the GIL; pieces of a few MB keep the Python per piece
negligible. A checkpoint smaller than `MIN_PARALLEL` bytes, a platform without positional reads,
or a single-threaded torch runs everything on the calling thread. The same helper threads run
`later`'s jobs (`nn.save` deletes the file it replaced on one).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import torch

__all__ = ["SEGMENT", "MIN_PARALLEL", "MAX_THREADS", "POSITIONAL", "runs", "run_all", "later", "threads_for"]

SEGMENT = 4 << 20  # bytes per piece of work: large enough that a piece's Python costs nothing
MIN_PARALLEL = 2 << 20  # below this many bytes, handing work to a thread costs more than it saves
MAX_THREADS = 8  # memory bandwidth, not cores, bounds a copy beyond a few threads
POSITIONAL = hasattr(os, "preadv")  # not on Windows: no threads there

T = TypeVar("T")
K = TypeVar("K")


def threads_for(nbytes: int) -> int:
    """How many threads to spread ``nbytes`` of checkpoint work over: torch's intra-op threads
    (at most `MAX_THREADS`)."""
    if not POSITIONAL or nbytes < MIN_PARALLEL:
        return 1
    return max(1, min(MAX_THREADS, torch.get_num_threads()))


def runs(
    ranges: Iterable[tuple[int, int, K]], split: bool = True, limit: int = SEGMENT
) -> list[list[tuple[int, int, K]]]:
    """The byte ranges ``(begin, end, key)`` in file order, grouped into runs of adjacent ranges of
    about ``limit`` bytes: one read (one system call for many small tensors) and one piece of work
    for a thread each. With ``split`` a range is cut where its run reaches ``limit``, so a large
    tensor spreads over several runs; without it a range stays whole (a longer one is a run alone)."""
    work: list[list[tuple[int, int, K]]] = []
    run: list[tuple[int, int, K]] = []
    size = 0
    for begin, end, key in sorted(ranges, key=lambda r: r[0]):
        at = begin
        while True:
            if run and (run[-1][1] != at or size >= limit):
                work.append(run)
                run, size = [], 0
            cut = min(end, at + limit - size) if split else end
            run.append((at, cut, key))
            size += cut - at
            if cut == end:
                break
            at = cut
    if run:
        work.append(run)
    return work


class _Helpers:
    """Daemon threads kept for the process's life, each waiting for jobs: starting a thread per
    call would cost more than a small checkpoint's whole read (0.1 to 0.5 ms each)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.count = 0
        self.lock = threading.Lock()

    def post(self, job: Callable[[], None], helpers: int) -> None:
        """Give ``job`` to ``helpers`` threads (started the first time they are needed); a thread
        busy with an earlier job takes it when done."""
        with self.lock:
            while self.count < helpers:
                threading.Thread(target=self._serve, name="tapegrad-checkpoint-io", daemon=True).start()
                self.count += 1
        for _ in range(helpers):
            self.jobs.put(job)

    def _serve(self) -> None:
        while True:
            self.jobs.get()()


_helpers = _Helpers()


def _forget_helpers() -> None:  # a forked child has only the thread that forked
    global _helpers
    _helpers = _Helpers()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helpers)


def later(job: Callable[[], None]) -> None:
    """Run ``job`` on a helper thread; return at once (``job`` handles its own errors)."""
    _helpers.post(job, 1)


def run_all(tasks: Sequence[Callable[[], T]], threads: int) -> list[T]:
    """Each task's result, in order; run on up to ``threads`` threads, the calling thread one of them.

    Helpers take tasks while any are left; the call returns once every task ran and no helper is
    still inside one (a helper that wakes up late finds nothing to do). After a task raises, no new
    task starts, and the first error is raised once the running ones finished (so no thread still
    writes into memory or a file the caller then reuses)."""
    if threads <= 1 or len(tasks) <= 1:  # no helper: a plain loop (no lock per task)
        return [task() for task in tasks]
    results: list[T | None] = [None] * len(tasks)
    errors: list[BaseException] = []
    done = threading.Condition()
    state = {"next": 0, "running": 0}

    def work() -> None:
        while True:
            with done:
                i = state["next"]
                if errors or i >= len(tasks):
                    state["next"] = len(tasks)  # closed: a late helper returns at once
                    return
                state["next"] = i + 1
                state["running"] += 1
            try:
                results[i] = tasks[i]()
            except BaseException as err:  # KeyboardInterrupt too: stop the others, then re-raise
                errors.append(err)
            finally:
                with done:
                    state["running"] -= 1
                    done.notify_all()

    _helpers.post(work, min(threads, len(tasks)) - 1)
    try:
        work()
    except BaseException as err:  # raised between tasks (an interrupt): stop the helpers too
        errors.append(err)
    with done:
        state["next"] = len(tasks)
        while state["running"]:
            done.wait()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]  # every slot was filled: no task raised
