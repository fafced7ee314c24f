"""The named errors of data-parallel training."""

from __future__ import annotations

__all__ = ["DistributedError", "ParameterMismatchError"]


class DistributedError(RuntimeError):
    """A collective of data-parallel training failed: another rank stopped, or did not answer in time."""


class ParameterMismatchError(DistributedError):
    """The ranks' models differ at the start: other parameter names, shapes or dtypes, or other values."""
