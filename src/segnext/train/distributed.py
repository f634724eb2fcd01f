"""DistributedDataParallel set-up from the environment `torchrun` provides.

`torchrun --nproc_per_node N -m segnext.cli.main train CONFIG` starts N processes with RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set; a plain `segnext train` is one process
(world size 1) and never touches torch.distributed. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

from ..utils import resolve_device


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str = "auto") -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank, local_world_size, device)


def cleanup(env: Distributed) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, env: Distributed) -> torch.Tensor:
    """The sum over processes (in place; a no-op for one process)."""
    if env.enabled:
        original = tensor.device
        tensor = tensor.to(env.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor = tensor.to(original)
    return tensor


def all_reduce_mean(value, env: Distributed) -> float:
    """The mean over processes of a scalar (tensor or number)."""
    if not env.enabled:
        return float(value)
    tensor = torch.as_tensor(value, dtype=torch.float64, device=env.device).reshape(())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.item() / env.world_size


def first_reason(request: Optional[str], limit: Optional[str], env: Distributed) -> Optional[str]:
    """A reason to stop that every process agrees on: a stop request (signal) on any process wins
    over a limit reached on any process; None when no process has one."""
    if not env.enabled:
        return request or limit
    flags = torch.tensor([float(request is not None), float(limit is not None)], device=env.device)
    dist.all_reduce(flags, op=dist.ReduceOp.SUM)
    if flags[0] > 0:
        return request or "SIGTERM"  # another process was asked to stop
    return (limit or "time limit") if flags[1] > 0 else None


def broadcast_float(value: float, env: Distributed) -> float:
    """Rank 0's value on every process."""
    if not env.enabled:
        return value
    tensor = torch.tensor(value, dtype=torch.float64, device=env.device)
    dist.broadcast(tensor, src=0)
    return tensor.item()


def broadcast_object(value: Any, env: Distributed, source: int = 0) -> Any:
    if not env.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, env: Distributed) -> None:
    """Give every process rank 0's BatchNorm running statistics (each rank updates its own copy)."""
    if env.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier(env: Distributed) -> None:
    if env.enabled:
        dist.barrier()
