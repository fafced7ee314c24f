"""nn.parallel: data-parallel training over torch.distributed.

`DistributedDataParallel` wraps a model so that every rank's backward pass ends with the
gradients averaged over the ranks; `spawn` starts N local processes in a process group
(torchrun works as well); `nn.data.DistributedSampler` gives each rank its shard of the data.
"""

from .ddp import DistributedDataParallel
from .errors import DistributedError, ParameterMismatchError
from .launch import default_backend, free_port, is_main_process, spawn

__all__ = [
    "DistributedDataParallel", "DistributedError", "ParameterMismatchError", "spawn", "free_port",
    "default_backend", "is_main_process",
]  # fmt: skip
