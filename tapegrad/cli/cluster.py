"""`tapegrad cv --scheduler`: the fits of the grid search on a Dask or Ray cluster.

Dask and Ray are optional: each is imported only here, only when ``--scheduler`` names it, with
an install hint when it is missing. Any ``concurrent.futures.Executor`` works with
`nn.cross_validate`; this module only connects to a scheduler and hands out its executor with
the number of fits it runs at once (for the time estimate and the footer).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass

import tapegrad.nn as nn
from tapegrad._optional import MissingExtraError

__all__ = ["ClusterError", "Workers", "cluster_executor", "dask_executor", "ray_executor", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "tapegrad[dask]" (or: pip install dask distributed)'
RAY_HINT = 'pip install "tapegrad[ray]"'


class ClusterError(RuntimeError):
    """Dask or Ray is missing, or its scheduler cannot be reached or has no workers."""


@dataclass(frozen=True)
class Workers:
    """An executor, how many fits it runs at once, and where (``2 Dask worker threads``)."""

    executor: Executor
    count: int
    text: str


@contextmanager
def cluster_executor(address: str, timeout: float = 10.0) -> Iterator[Workers]:
    """The executor of the Dask or Ray scheduler at ``address`` (``ray``, ``ray://...`` or a Dask address)."""
    ray = address == "ray" or address.startswith("ray://")
    with ray_executor(address) if ray else dask_executor(address, timeout) as workers:
        yield workers


@contextmanager
def dask_executor(address: str, timeout: float = 10.0) -> Iterator[Workers]:
    """A Dask ``Client(address).get_executor()``, closed on exit; `ClusterError` within ``timeout`` s if unusable."""
    try:
        from distributed import Client
    except ImportError as err:
        raise ClusterError(f"--scheduler needs Dask's distributed package, not installed; {INSTALL_HINT}") from err
    try:
        client = Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({err})") from err
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise ClusterError(f"the Dask scheduler at {address} has no workers (waited {timeout:g} s)") from err
        threads = sum(client.nthreads().values())
        yield Workers(client.get_executor(), threads, f"{threads} Dask worker thread{'s' * (threads != 1)}")
    finally:
        client.close()


@contextmanager
def ray_executor(address: str) -> Iterator[Workers]:
    """An `nn.parallel.RayExecutor` on a local Ray (``ray``) or a Ray Client address, shut down on exit."""
    try:
        executor = nn.parallel.RayExecutor(address=None if address == "ray" else address)
    except MissingExtraError as err:
        raise ClusterError(f"--scheduler {address} needs Ray, not installed; {RAY_HINT}") from err
    except (ConnectionError, RuntimeError, TimeoutError) as err:
        raise ClusterError(f"cannot use the Ray cluster at {address} ({' '.join(str(err).split())})") from err
    with executor:
        cpus = executor.workers
        yield Workers(executor, cpus, f"{cpus} Ray CPU{'s' * (cpus != 1)}")
