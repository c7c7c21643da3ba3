"""Per-document LoRA for score-first TTT: one independent low-rank update per batch row.

Row b of every factor belongs to document b of the batch, so documents never share an
update (each one's loss only reaches its own row). `A` starts uniform in ±1/√in, `B` at
zero, so a fresh adapter changes nothing until its first step. Draw order (head, then q,
v, k, mlp and o over the layers) is the records' `BatchedTTTLoRA`, so a generator seeded
as the record's global RNG gives the same `A`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

SITES = ("q", "v", "k", "mlp", "o")
"""Layer sites in the records' draw order (the head comes first)."""


@dataclass(frozen=True)
class LoRAShape:
    """Where adapters go and their sizes: `layers` per-layer sites of (in, out) features."""

    layers: int
    model_dim: int
    kv_dim: int
    vocab_size: int
    rank: int
    head_dim: int
    """Width of the hidden the head reads (the embedding width when a family projects)."""
    sites: tuple[str, ...] = ("q", "k", "v", "o", "mlp")
    alpha: float | None = None
    """Output scale α/rank (later records); None: unscaled (2026-04-10 .. 04-16)."""

    def features(self, site: str) -> tuple[int, int]:
        d = self.model_dim
        return {"q": (d, d), "k": (d, self.kv_dim), "v": (d, self.kv_dim), "o": (d, d)}.get(
            site, (self.head_dim, self.vocab_size) if site == "head" else (d, d)
        )


class BatchedLoRA(nn.Module):
    """`bsz` independent adapters ([bsz, rank, in] A and [bsz, out, rank] B per site/layer)."""

    def __init__(self, shape: LoRAShape, bsz: int, device: torch.device | str = "cpu"):
        super().__init__()
        self.shape = shape
        self.bsz = bsz
        self.scale = 1.0 if shape.alpha is None else shape.alpha / shape.rank
        self.a = nn.ParameterDict()
        self.b = nn.ParameterDict()
        for key, (n_in, n_out) in self._keys():
            self.a[key] = nn.Parameter(torch.zeros(bsz, shape.rank, n_in, device=device))
            self.b[key] = nn.Parameter(torch.zeros(bsz, n_out, shape.rank, device=device))

    def _keys(self) -> list[tuple[str, tuple[int, int]]]:
        """(parameter key, (in, out)) in the records' draw order."""
        keys = [("head", self.shape.features("head"))]
        for site in SITES:
            if site in self.shape.sites:
                keys += [
                    (f"{site}{i}", self.shape.features(site)) for i in range(self.shape.layers)
                ]
        return keys

    def reset(self, generator: torch.Generator | None) -> None:
        """A uniform in ±1/√in (drawn from `generator` in the records' order), B zero."""
        with torch.no_grad():
            for key, (n_in, _) in self._keys():
                bound = 1.0 / math.sqrt(n_in)
                a = self.a[key]
                if generator is not None and generator.device != a.device:
                    a.copy_(torch.empty(a.shape).uniform_(-bound, bound, generator=generator))
                else:
                    a.uniform_(-bound, bound, generator=generator)
                self.b[key].zero_()

    def delta(self, site: str, layer: int, x: Tensor) -> Tensor | None:
        """[bsz, T, in] -> [bsz, T, out]: x·Aᵀ·Bᵀ (·α/r) for row b's adapter, or None."""
        key = "head" if site == "head" else f"{site}{layer}"
        if key not in self.a:
            return None
        a, b = self.a[key], self.b[key]
        out = (x @ a.transpose(1, 2).to(x.dtype)) @ b.transpose(1, 2).to(x.dtype)
        return out if self.scale == 1.0 else out * self.scale

    def rows(self, index: slice) -> dict[str, tuple[Tensor, Tensor]]:
        """The factors of rows `index` (for literal per-document references)."""
        return {k: (self.a[k][index], self.b[k][index]) for k in self.a}
