"""`tapegrad cv --scheduler`: the fits of the grid search on a Dask cluster.

Dask is optional: it is imported only here, only when ``--scheduler`` is given, with an
install hint when it is missing. Any ``concurrent.futures.Executor`` works with
`nn.cross_validate`; this module only connects to a scheduler and hands out its executor.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager

__all__ = ["ClusterError", "dask_executor", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "tapegrad[dask]" (or: pip install dask distributed)'


class ClusterError(RuntimeError):
    """Dask is missing, or its scheduler cannot be reached or has no workers."""


@contextmanager
def dask_executor(address: str, timeout: float = 10.0) -> Iterator[Executor]:
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
        yield client.get_executor()
    finally:
        client.close()
