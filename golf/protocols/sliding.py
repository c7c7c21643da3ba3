"""`sliding`: the frozen model over overlapping windows, each target scored once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from golf.models.attention import segment_ids
from golf.protocols.base import Batch, Protocol, Scorer
from golf.spec.documents import BOS_ID
from golf.spec.params import EvalParams


class Sliding(Protocol):
    """Frozen model; last layer, head and loss only at scored positions."""

    name = "sliding"
    doc_bounded = True
    doc_split = True

    def default_stride(self, seq_len: int) -> int:
        return min(64, seq_len)

    def nll(self, model: Scorer, batch: Batch, params: EvalParams) -> Tensor:
        """Hidden, head and loss only at the scored rows ([B, R], R from the host plan);
        spare row slots are scattered into a dropped column."""
        rows, dest = batch.row_index()
        with torch.inference_mode():
            if params.doc_bounded:  # attention masked per document (records from 04-10)
                segments = segment_ids(batch.inputs, BOS_ID, params.doc_max_len)
                hidden = model.forward_hidden(batch.inputs, rows, segments=segments)  # type: ignore[call-arg]
            else:
                hidden = model.forward_hidden(batch.inputs, rows)
            hidden = hidden.float()
            logits = model.logits(hidden).float()
            targets = batch.targets.gather(1, rows)
            row_nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
            n_windows, width = batch.inputs.shape
            nll = torch.zeros(n_windows, width + 1, dtype=torch.float32, device=logits.device)
            nll.scatter_(1, dest, row_nll.view(rows.shape))
        return nll[:, :width]
