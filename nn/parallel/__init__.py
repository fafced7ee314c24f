"""nn.parallel: data-parallel training over torch.distributed.

`DistributedDataParallel` wraps a model so that every rank's backward pass ends with the
gradients averaged over the ranks; `spawn` starts N local processes in a process group
(torchrun works as well); `nn.data.DistributedSampler` gives each rank its shard of the data.
`RayExecutor` runs `nn.cross_validate`'s fits (any executor's calls) as Ray tasks. Starting
worker processes from a script needs its ``if __name__ == "__main__":`` guard; a call without
it is a `MissingMainGuardError` before any process starts.
"""

from .ddp import DistributedDataParallel
from .errors import DistributedError, ParameterMismatchError
from .launch import default_backend, free_port, is_main_process, spawn
from .main_guard import MissingMainGuardError
from .ray_executor import RayExecutor

__all__ = [
    "DistributedDataParallel", "DistributedError", "ParameterMismatchError", "spawn", "free_port",
    "default_backend", "is_main_process", "MissingMainGuardError", "RayExecutor",
]  # fmt: skip
