"""DistributedDataParallel set-up from the environment `torchrun` provides.

`torchrun --nproc_per_node N -m segnext.cli.main train CONFIG` starts N processes with RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set; a plain `segnext train` is one process
(world size 1) and never touches torch.distributed. Backend: NCCL on CUDA, gloo on CPU.

When one process dies or raises, the others must not wait for it forever: a collective fails at
once when the dead process's connections close (gloo), and after `train.distributed_timeout_minutes`
at the latest (a hung process, a machine gone). `PeerWatch` then tells which process failed:
every process beats a counter in the rendezvous store, and one that raises writes its error there,
so the survivors stop with an error naming the failed rank (`PeerFailed`), and the run resumes from
its last checkpoint when started again.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist

from ..compat import dist_error, store_has_key
from ..utils import resolve_device

HEARTBEAT_SECONDS = 1.0
SILENCE_SECONDS = 5.0  # a process whose counter did not move for this long is taken for dead
STORE_TIMEOUT = timedelta(seconds=10)  # a store request that gets no answer: its host is gone


class PeerFailed(RuntimeError):
    """Another process of the run failed or stopped responding; the message names its rank."""


class PeerWatch:
    """Heartbeats and error records of the processes of one run, in the rendezvous store (under
    torchrun the agent's, which outlives the workers). Each process keeps its own client connections:
    one for a background thread that adds 1 to its counter every HEARTBEAT_SECONDS, one for the rest."""

    def __init__(self, rank: int, world_size: int, host: str, port: int):
        self.rank, self.world_size, self.host, self.port = rank, world_size, host, port
        attempt = f"{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        self.prefix = f"segnext/{attempt}"
        self.store = self._connect()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="segnext-heartbeat", daemon=True)
        self._thread.start()

    def _connect(self) -> dist.TCPStore:
        return dist.TCPStore(self.host, self.port, is_master=False, timeout=STORE_TIMEOUT)

    def _beat(self) -> None:
        try:
            store = self._connect()
            while not self._stop.is_set():
                store.add(f"{self.prefix}/beat/{self.rank}", 1)
                self._stop.wait(HEARTBEAT_SECONDS)
        except Exception:  # the store is gone (its host died): nothing left to tell
            return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * HEARTBEAT_SECONDS)

    def record_error(self, error: BaseException) -> None:
        """Tell the others that this process failed, and how."""
        with contextlib.suppress(Exception):  # the store is gone too: the others will find this process silent
            self.store.set(f"{self.prefix}/error/{self.rank}", f"{type(error).__name__}: {first_line(error)}")

    def failed_peers(self) -> Dict[int, str]:
        """{rank: what happened} for the other processes that recorded an error or stopped beating
        (watched for SILENCE_SECONDS). Call it after losing contact; it marks this process as a
        survivor first, so that the others do not blame it when it stops."""
        self.store.set(f"{self.prefix}/survivor/{self.rank}", "1")
        others = [rank for rank in range(self.world_size) if rank != self.rank]
        before = {rank: self.store.add(f"{self.prefix}/beat/{rank}", 0) for rank in others}
        deadline = time.monotonic() + SILENCE_SECONDS
        while True:
            errors = {rank: self.store.get(f"{self.prefix}/error/{rank}").decode() for rank in others
                      if store_has_key(self.store, f"{self.prefix}/error/{rank}")}
            if errors or time.monotonic() >= deadline:
                break
            time.sleep(HEARTBEAT_SECONDS / 2)
        if errors:
            return {rank: f"failed with {message}" for rank, message in errors.items()}
        return {rank: f"stopped responding (no heartbeat for {SILENCE_SECONDS:.0f} s): it was killed, froze, or its "
                      f"machine went down" for rank in others
                if self.store.add(f"{self.prefix}/beat/{rank}", 0) == before[rank]
                and not store_has_key(self.store, f"{self.prefix}/survivor/{rank}")}


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")
    watch: Optional[PeerWatch] = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _lost_contact(error: BaseException) -> bool:
    """Whether `error` is a collective that failed (gloo and NCCL raise plain RuntimeErrors or
    DistErrors), rather than an error of this process's own (data, disk, a diverged loss)."""
    return isinstance(error, dist_error()) or type(error) is RuntimeError


def explain_failure(error: BaseException, env: Distributed, resume_hint: str = "") -> BaseException:
    """The error to raise for `error` in a run of several processes. This process's own error is
    recorded for the others and returned as it is; a failed collective becomes a PeerFailed that
    names the process that failed, or says that none did."""
    if not env.enabled or env.watch is None:
        return error
    if not _lost_contact(error):
        env.watch.record_error(error)
        return error
    try:
        failed = env.watch.failed_peers()
    except Exception:  # the rendezvous store does not answer: its host is gone
        hosted_by_rank_0 = "TORCHELASTIC_RUN_ID" not in os.environ  # torchrun's agent hosts it otherwise
        failed = {0: "stopped responding, and the rendezvous store it hosted with it"} if hosted_by_rank_0 else {}
    if failed:
        what = "; ".join(f"rank {rank} {message}" for rank, message in sorted(failed.items()))
    else:
        what = (f"a collective operation failed ({first_line(error) or type(error).__name__}) but no other process "
                f"reported an error or went silent: one may be hung")
    return PeerFailed(f"{what}. This process (rank {env.rank} of {env.world_size}) stops too. {resume_hint}".strip())


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def setup(device_name: str = "auto", timeout_minutes: float = 10.0) -> Distributed:
    """The process's place in the run. timeout_minutes: how long a collective waits for the other
    processes before it fails (torch's default is 30 minutes for gloo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                timeout=timedelta(minutes=timeout_minutes))
    watch = None
    if world_size > 1 and "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        # Only for naming a failed process: a run whose store cannot be reached trains without it.
        with contextlib.suppress(Exception):
            watch = PeerWatch(rank, world_size, os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))
    return Distributed(rank, world_size, local_rank, local_world_size, device, watch)


def cleanup(env: Distributed, failed: bool = False) -> None:
    """Stop the heartbeat and leave the process group. After a failure the group is left as it is:
    the process is about to exit, and tearing down connections to a dead peer can block."""
    if env.watch is not None:
        env.watch.stop()
    if env.enabled and dist.is_initialized() and not failed:
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


def gather_lists(items: list, env: Distributed) -> list:
    """Every process's `items`, joined in rank order (the list itself for one process)."""
    if not env.enabled:
        return list(items)
    gathered: list = [None] * env.world_size
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in part]


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
