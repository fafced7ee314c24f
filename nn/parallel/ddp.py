"""`DistributedDataParallel`: average the gradients of a model replicated over torch.distributed ranks.

Every rank runs the same model on its own shard of each batch. At construction rank 0's
parameters are broadcast to the others. During the backward pass each parameter's
"gradient ready" hook (`Tensor.register_post_accumulate_grad_hook`, fired by the reverse
walk) marks it ready; once every parameter of a bucket is ready, the bucket's gradients are
flattened into one buffer and averaged with an asynchronous ``all_reduce``, so the traffic of
the last layers overlaps the backward pass of the first ones. When the last bucket is launched
the hook waits for all of them and writes the averages back into ``.grad``: the optimizer's
step then sees the same gradients on every rank.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from tapegrad.engine.hooks import register_post_accumulate_grad_hook
from tapegrad.engine.tensors import Tensor

from ..module import Module
from .errors import DistributedError, ParameterMismatchError

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """Parameters whose gradients travel in one all-reduce, in the order they become ready."""

    __slots__ = ("index", "params", "names", "numel", "ready", "work", "buffer")

    def __init__(self, index: int, params: list[Tensor], names: list[str]) -> None:
        self.index = index
        self.params = params
        self.names = names
        self.numel = sum(p.data.numel() for p in params)
        self.ready: set[int] = set()
        self.work: Any = None
        self.buffer: torch.Tensor | None = None

    def megabytes(self) -> float:
        """The size of the bucket's buffer in MB (2**20 bytes)."""
        return self.numel * self.params[0].data.element_size() / 2**20


def _buckets(named: Sequence[tuple[str, Tensor]], cap_bytes: float) -> list[_Bucket]:
    """Consecutive parameters, last layer first, in buckets of at most ``cap_bytes`` (one dtype and device each).

    A parameter larger than the cap gets a bucket of its own.
    """
    buckets: list[_Bucket] = []
    params: list[Tensor] = []
    names: list[str] = []
    size = 0
    for name, p in reversed(named):
        nbytes = p.data.numel() * p.data.element_size()
        same_kind = not params or (params[0].dtype == p.dtype and params[0].device == p.device)
        if params and (not same_kind or size + nbytes > cap_bytes):
            buckets.append(_Bucket(len(buckets), params, names))
            params, names, size = [], [], 0
        params.append(p)
        names.append(name)
        size += nbytes
    if params:
        buckets.append(_Bucket(len(buckets), params, names))
    return buckets


class DistributedDataParallel(Module):
    """Data-parallel training over the default (or a given) torch.distributed process group.

    ``DistributedDataParallel(module, bucket_cap_mb=25)`` checks that every rank's ``module``
    has the same parameter names, shapes and dtypes (else `ParameterMismatchError` on every
    rank), broadcasts rank 0's values (``init_sync=True``, torch's default; with
    ``init_sync=False`` values that differ are reported as `ParameterMismatchError` instead),
    and from then on averages each backward pass's gradients over the ranks, bucket by bucket
    of at most ``bucket_cap_mb`` MB, overlapping communication with the backward pass. Call it
    like ``module``; ``ddp.module`` is the wrapped model (save that one). Inside `no_sync`
    gradients only accumulate locally. A collective that fails or outlasts ``timeout`` seconds
    (default: the process group's timeout) raises `DistributedError`.
    """

    module: Module  # registered in __init__ (self._modules), declared for type checkers

    def __init__(
        self,
        module: Module,
        device_ids: list[Any] | None = None,
        *,
        process_group: Any = None,
        bucket_cap_mb: float = 25,
        init_sync: bool = True,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps an nn.Module, got {type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"DistributedDataParallel: timeout must be a positive number of seconds, got {timeout!r}")
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "DistributedDataParallel needs a torch.distributed process group: start the processes with "
                "torchrun or nn.parallel.spawn (or call torch.distributed.init_process_group first)"
            )
        self._modules["module"] = module  # its own scope name stays: records read "in 0 (Linear)" as before
        self.device_ids = device_ids
        self.process_group = process_group
        self.bucket_cap_mb = bucket_cap_mb
        self.timeout = None if timeout is None else datetime.timedelta(seconds=timeout)
        self.world_size = dist.get_world_size(process_group)
        self.rank = dist.get_rank(process_group)
        self.require_backward_grad_sync = True
        seen: set[int] = set()
        named = []
        for name, p in module.named_parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                named.append((name, p))
        self._check_structure(named)
        self._sync_values(named, init_sync)
        self._buckets = _buckets(named, bucket_cap_mb * 2**20)
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._next = 0  # buckets launch strictly in order, so every rank issues the same collectives
        for _, p in named:
            register_post_accumulate_grad_hook(p, self._grad_ready)  # Tensor's method of that name

    # --- construction checks -----------------------------------------------------------------
    def _source(self) -> int:
        return 0 if self.process_group is None else dist.get_global_rank(self.process_group, 0)

    def _check_structure(self, named: Sequence[tuple[str, Tensor]]) -> None:
        mine = [(name, tuple(p.shape), str(p.dtype).replace("torch.", "")) for name, p in named]
        everyone: list[Any] = [None] * self.world_size
        dist.all_gather_object(everyone, mine, group=self.process_group)
        reference = everyone[0]
        for rank, theirs in enumerate(everyone):
            if theirs == reference:
                continue
            detail = f"rank 0 has {len(reference)} parameters, rank {rank} has {len(theirs)}"
            for a, b in zip(reference, theirs):
                if a != b:
                    detail = f"rank 0 has {a[0]} {a[1]} {a[2]}, rank {rank} has {b[0]} {b[1]} {b[2]}"
                    break
            raise ParameterMismatchError(
                f"DistributedDataParallel: the ranks' models differ ({detail}); every rank must build the same model"
            )

    def _sync_values(self, named: Sequence[tuple[str, Tensor]], init_sync: bool) -> None:
        differing: list[str] = []
        for bucket in _buckets(named, 64 * 2**20):
            flat = torch.cat([p.data.reshape(-1) for p in bucket.params])
            dist.broadcast(flat, self._source(), group=self.process_group)
            offset = 0
            for name, p in zip(bucket.names, bucket.params):
                ref = flat[offset : offset + p.data.numel()].view_as(p.data)
                offset += p.data.numel()
                if not torch.equal(ref, p.data):
                    differing.append(name)
                    if init_sync:
                        p.data.copy_(ref)
        if init_sync:
            return
        everyone: list[Any] = [None] * self.world_size
        dist.all_gather_object(everyone, differing, group=self.process_group)
        report = [f"rank {r}: {', '.join(names)}" for r, names in enumerate(everyone) if names]
        if report:
            raise ParameterMismatchError(
                "DistributedDataParallel: parameter values differ from rank 0's at the start "
                f"({'; '.join(report)}); seed every rank alike, or pass init_sync=True to copy rank 0's"
            )

    # --- calling --------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped module; fails if the previous backward pass left its all-reduce unfinished."""
        if any(b.ready or b.work is not None for b in self._buckets):
            missing = [n for b in self._buckets for n, p in zip(b.names, b.params) if id(p) not in b.ready]
            raise DistributedError(
                "DistributedDataParallel: the previous backward pass did not finish averaging the gradients "
                f"(no gradient arrived for {', '.join(missing)}); call wait() after backward when some "
                "parameters get no gradient"
            )
        return self.module(*args, **kwargs)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """A context in which backward passes accumulate gradients locally, without all-reduce.

        The first backward pass after it averages the accumulated gradients (torch's pattern for
        gradient accumulation: several micro-batches under ``no_sync``, the last one outside).
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # --- the per-parameter hook and the buckets --------------------------------------------------
    def _grad_ready(self, param: Tensor) -> None:
        if not self.require_backward_grad_sync:
            return
        bucket = self._bucket_of[id(param)]
        if id(param) in bucket.ready:
            name = bucket.names[[id(p) for p in bucket.params].index(id(param))]
            raise DistributedError(
                f"DistributedDataParallel: parameter {name} got a second gradient before its all-reduce "
                "finished; run the extra backward passes under ddp.no_sync() to accumulate"
            )
        bucket.ready.add(id(param))
        self._launch_ready()
        if self._next == len(self._buckets):
            self._finish()

    def _launch_ready(self) -> None:
        buckets = self._buckets
        while self._next < len(buckets) and len(buckets[self._next].ready) == len(buckets[self._next].params):
            self._launch(buckets[self._next])
            self._next += 1

    def _launch(self, bucket: _Bucket) -> None:
        parts = []
        for p in bucket.params:
            g = p.grad
            data = g.data if isinstance(g, Tensor) else g
            parts.append(torch.zeros_like(p.data).reshape(-1) if data is None else data.reshape(-1))
        buffer = torch.cat(parts)
        if self.world_size > 1:
            buffer.div_(self.world_size)  # torch's order: divide, then sum
            try:
                bucket.work = dist.all_reduce(buffer, group=self.process_group, async_op=True)
            except RuntimeError as err:
                raise self._failure(bucket, err) from err
        bucket.buffer = buffer

    def _finish(self) -> None:
        try:
            for bucket in self._buckets:
                if bucket.work is not None:
                    try:
                        if self.timeout is None:
                            bucket.work.wait()
                        else:
                            bucket.work.wait(self.timeout)
                    except RuntimeError as err:
                        raise self._failure(bucket, err) from err
                buffer = bucket.buffer
                assert buffer is not None  # every bucket was launched before _finish
                offset = 0
                for p in bucket.params:
                    n = p.data.numel()
                    if id(p) in bucket.ready or p.grad is not None:
                        p.grad = Tensor(buffer[offset : offset + n].view_as(p.data))
                    offset += n
        finally:
            for bucket in self._buckets:
                bucket.ready, bucket.work, bucket.buffer = set(), None, None
            self._next = 0

    def _failure(self, bucket: _Bucket, err: Exception) -> DistributedError:
        return DistributedError(
            f"DistributedDataParallel: the all-reduce of gradient bucket {bucket.index} ({len(bucket.params)} "
            f"parameters, {bucket.megabytes():.2f} MB) failed on rank {self.rank} of {self.world_size}: another "
            f"rank stopped, raised or did not answer in time ({' '.join(str(err).split())[:300]})"
        )

    def wait(self) -> None:
        """Finish averaging the gradients of the last backward pass (a no-op if it finished by itself).

        Needed only when some parameters got no gradient in that pass (their hook never fired):
        their share of the all-reduce is zeros. Every rank must call it at the same point.
        """
        if not any(b.ready for b in self._buckets) and self._next == 0:
            return
        for bucket in self._buckets[self._next :]:
            self._launch(bucket)
        self._next = len(self._buckets)
        self._finish()

    def extra_repr(self) -> str:
        """World size, rank and the buckets."""
        sizes = ", ".join(f"{b.megabytes():.2f}" for b in self._buckets)
        return f"world_size={self.world_size}, rank={self.rank}, bucket_cap_mb={self.bucket_cap_mb}, MB=[{sizes}]"
