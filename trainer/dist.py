"""The process group a run lives in: one process, or one per device under torchrun."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import Tensor


@dataclass
class Dist:
    """Rank, world size and device of this process; collectives are no-ops alone."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: str = "auto") -> Dist:
        """Join the torchrun group named by WORLD_SIZE/RANK/LOCAL_RANK (gloo on CPU, nccl on
        CUDA), or run alone. `device` is "auto" (CUDA when available), "cpu" or "cuda"."""
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device(device)
        if dev.type == "cuda":
            dev = torch.device(
                "cuda", local_rank if world_size > 1 else torch.cuda.current_device()
            )
            torch.cuda.set_device(dev)
        if world_size > 1 and not torch_dist.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            torch_dist.init_process_group(backend, rank=rank, world_size=world_size)
        return cls(rank, world_size, dev)

    def all_reduce_mean(self, t: Tensor) -> Tensor:
        """Average `t` over ranks in place (and return it)."""
        if self.distributed:
            torch_dist.all_reduce(t, op=torch_dist.ReduceOp.SUM)
            t.div_(self.world_size)
        return t

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        """Sum `t` over ranks in place (and return it)."""
        if self.distributed:
            torch_dist.all_reduce(t, op=torch_dist.ReduceOp.SUM)
        return t

    def barrier(self) -> None:
        if self.distributed:
            torch_dist.barrier()

    def close(self) -> None:
        if self.distributed and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
