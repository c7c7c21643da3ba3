"""What a chain's ranks share: summed gradients and scored units, in a fixed order.

A sequential chain (`ttt`, the phases of `ttt-phased`) is data-parallel inside each step,
as the records are with `all_reduce`. Here the reduction order is fixed instead: every
rank all-gathers every rank's flattened gradient and adds them in rank order, so every
rank holds the bit-identical sum, takes the bit-identical step, and the weights never
drift apart. `Solo` (world 1) does nothing and is what `golf eval` runs; `Distributed`
runs over a torch.distributed process group someone else joined (workers/gang.py: Ray's
collective utility, gloo). On CUDA the gradients may go over a NCCL group made beside
the gloo one (`grads=`); the scored units always go over gloo, on the host.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from golf.protocols.scored import Scored


class Group(Protocol):
    """The ranks of one chain; rank 0 collects what the chain scored."""

    rank: int
    world: int

    def sum_grads(self, params: list[nn.Parameter]) -> None:
        """Replace each parameter's gradient by the sum over ranks, in rank order (a
        gradient no rank has stays None)."""

    def gather_units(self, units: list[Scored]) -> list[Scored]:
        """Rank 0: every rank's units, rank 0's first (each rank holds a contiguous piece
        of the step, so this is the step's unit order); other ranks: []."""

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag`, on every rank (a decision only rank 0 can make)."""

    def gather_rows(self, tensors: dict[str, Tensor], bounds: list[tuple[int, int]]) -> None:
        """Fill rows `bounds[r]` (first dimension) of every tensor on rank 0 with rank r's
        (each rank owns its rows: warm-start A's slots); others' rows elsewhere unchanged."""


class Solo:
    """World size 1: the chain as `golf eval` runs it."""

    rank = 0
    world = 1

    def sum_grads(self, params: list[nn.Parameter]) -> None:
        return None

    def gather_units(self, units: list[Scored]) -> list[Scored]:
        return units

    def agree(self, flag: bool) -> bool:
        return flag

    def gather_rows(self, tensors: dict[str, Tensor], bounds: list[tuple[int, int]]) -> None:
        return None


class Distributed:
    """The ranks of torch.distributed's default group (joined beforehand)."""

    def __init__(self, grads: dist.ProcessGroup | None = None):
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.grads = grads  # where gradients go (NCCL beside gloo on CUDA); default: gloo

    def sum_grads(self, params: list[nn.Parameter]) -> None:
        if not params:
            return
        device = params[0].device
        have = torch.tensor(
            [p.grad is not None for p in params], dtype=torch.float32, device=device
        )
        have_all = self._gather(have, self.grads)
        present = torch.stack(have_all).amax(0).bool().tolist()
        by_dtype: dict[torch.dtype, list[int]] = {}
        for i, p in enumerate(params):
            if present[i]:
                by_dtype.setdefault(p.dtype, []).append(i)
        for dtype, index in by_dtype.items():
            flat = torch.cat(
                [
                    (
                        params[i].grad
                        if params[i].grad is not None
                        else torch.zeros_like(params[i])
                    ).reshape(-1)
                    for i in index
                ]
            ).to(dtype)
            parts = self._gather(flat, self.grads)
            total = parts[0].clone()
            for part in parts[1:]:  # rank order: the same bits on every rank
                total += part
            offset = 0
            for i in index:
                p = params[i]
                p.grad = total[offset : offset + p.numel()].view_as(p).clone()
                offset += p.numel()

    def gather_units(self, units: list[Scored]) -> list[Scored]:
        ids = torch.tensor([u.unit for u in units], dtype=torch.int64)
        sizes = torch.tensor([len(u.targets) for u in units], dtype=torch.int64)
        targets = torch.from_numpy(
            np.concatenate([u.targets for u in units]) if units else np.zeros(0, np.int64)
        ).to(torch.int64)
        nll = torch.from_numpy(
            np.concatenate([u.nll for u in units]) if units else np.zeros(0, np.float64)
        ).to(torch.float64)
        all_ids, all_sizes = self._gather_ragged(ids), self._gather_ragged(sizes)
        all_targets, all_nll = self._gather_ragged(targets), self._gather_ragged(nll)
        if self.rank != 0:
            return []
        out: list[Scored] = []
        for r in range(self.world):
            bounds = np.concatenate([[0], np.cumsum(all_sizes[r].numpy())])
            t, v = all_targets[r].numpy(), all_nll[r].numpy()
            for k, unit in enumerate(all_ids[r].tolist()):
                lo, hi = int(bounds[k]), int(bounds[k + 1])
                out.append(Scored(int(unit), t[lo:hi].copy(), v[lo:hi].copy()))
        return out

    def agree(self, flag: bool) -> bool:
        return bool(self._gather(torch.tensor([int(flag)], dtype=torch.int64), None)[0].item())

    def gather_rows(self, tensors: dict[str, Tensor], bounds: list[tuple[int, int]]) -> None:
        lo, hi = bounds[self.rank]
        mine = [t[lo:hi].detach().float().cpu().reshape(-1) for t in tensors.values()]
        flat = torch.cat(mine) if mine else torch.zeros(0)
        parts = self._gather_ragged(flat)
        if self.rank != 0:
            return
        with torch.no_grad():
            for r, (lo, hi) in enumerate(bounds):
                if r == 0 or hi <= lo:
                    continue
                at = 0
                for t in tensors.values():
                    size = (hi - lo) * t[0].numel()
                    t[lo:hi] = parts[r][at : at + size].view_as(t[lo:hi]).to(t.device, t.dtype)
                    at += size

    def _gather(self, tensor: Tensor, group: dist.ProcessGroup | None) -> list[Tensor]:
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return parts

    def _gather_ragged(self, tensor: Tensor) -> list[Tensor]:
        """Every rank's 1-D host tensor, whatever its length (over the gloo group)."""
        n = torch.tensor([tensor.numel()], dtype=torch.int64)
        sizes = [int(s.item()) for s in self._gather(n, None)]
        padded = torch.zeros(max(1, *sizes), dtype=tensor.dtype)  # gloo: no empty buffers
        padded[: tensor.numel()] = tensor
        return [part[:size] for part, size in zip(self._gather(padded, None), sizes, strict=True)]
