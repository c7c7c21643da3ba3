"""`sliding`: the frozen model over overlapping windows, each target scored once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from golf.params import EvalParams
from golf.protocols.base import Batch, Protocol, Scorer


class Sliding(Protocol):
    """Frozen model; logits only at scored positions (the head is the only per-row cost)."""

    name = "sliding"

    def default_stride(self, seq_len: int) -> int:
        return min(64, seq_len)

    def nll(self, model: Scorer, batch: Batch, params: EvalParams) -> Tensor:
        with torch.inference_mode():
            hidden = model.forward_hidden(batch.inputs)
            scored = batch.scored
            logits = model.logits(hidden[scored]).float()
            nll = torch.zeros(scored.shape, dtype=torch.float32, device=logits.device)
            nll[scored] = F.cross_entropy(logits, batch.targets[scored], reduction="none")
        return nll
