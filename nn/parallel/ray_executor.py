"""`RayExecutor`: Ray tasks behind the `concurrent.futures.Executor` interface.

Ray has no ``concurrent.futures.Executor`` of its own (``ray.util.multiprocessing.Pool`` has
``apply_async``, not ``submit``), so `nn.cross_validate(executor=...)` and every other consumer of
the standard interface cannot use it directly. This adapter runs each ``submit(fn, *args)`` as
one Ray task and hands back the standard `concurrent.futures.Future` that Ray's object
references provide. Ray is the optional ``[ray]`` extra, imported only when an executor is made.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from tapegrad._optional import require

__all__ = ["RayExecutor"]


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What each Ray task runs: the submitted call."""
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    """A `concurrent.futures.Executor` whose calls run as Ray tasks (one CPU each).

    ``address`` is where Ray runs: ``None`` connects to the Ray session this process already
    has, or else starts a local one with ``num_cpus`` CPUs (default: all); ``"auto"`` joins the
    cluster on this machine (``ray start --head``); ``"ray://HOST:10001"`` connects through Ray
    Client to a remote cluster. Extra keyword arguments go to ``ray.init``. A session the
    executor started is shut down with it; one it found is left running.

    Example: ``with nn.parallel.RayExecutor(num_cpus=2) as ex: nn.cross_validate(..., executor=ex)``
    gives the same table as ``jobs=1``. The submitted function and its arguments must be
    picklable (``build_fn`` of `nn.cross_validate` defined at module level, or a
    ``functools.partial`` of one).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, **init_options: Any) -> None:
        self._ray = require("ray", "nn.parallel.RayExecutor")
        self._owns = not self._ray.is_initialized()
        if self._owns:
            options = {"include_dashboard": False, "log_to_driver": False, **init_options}
            self._ray.init(address=address, num_cpus=num_cpus, **options)
        elif address is not None or num_cpus is not None:
            raise RuntimeError(
                "RayExecutor: this process is already connected to a Ray session; call ray.shutdown() first "
                "to connect elsewhere (or make the executor with no address and num_cpus to use that session)"
            )
        self._task = self._ray.remote(num_cpus=1)(_call)
        self._pending: list[Any] = []
        self._closed = False

    @property
    def workers(self) -> int:
        """How many tasks can run at once: the CPUs of the Ray cluster."""
        return int(self._ray.cluster_resources().get("CPU", 1))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` as a Ray task; its result (or exception) arrives in the future."""
        if self._closed:
            raise RuntimeError("RayExecutor: cannot submit after shutdown")
        ref = self._task.remote(fn, args, kwargs)
        self._pending = [r for r in self._pending if not _done(self._ray, r)]
        self._pending.append(ref)
        future: Future[Any] = ref.future()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; cancel the tasks not yet finished if asked; end the Ray session it started."""
        if self._closed:
            return
        self._closed = True
        if cancel_futures:
            for ref in self._pending:
                self._ray.cancel(ref, force=True)
        elif wait and self._pending:
            self._ray.wait(self._pending, num_returns=len(self._pending))
        self._pending = []
        if self._owns:
            self._ray.shutdown()


def _done(ray: Any, ref: Any) -> bool:
    ready, _ = ray.wait([ref], timeout=0)
    return bool(ready)
