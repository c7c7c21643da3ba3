"""`slot` (standard SLOT-N): fit each window's delta and bias to the positions it scores.

Scoring after fitting on the scored targets themselves lets later targets inform earlier
predictions; `golf.audit.causality` measures that. Kept to reproduce records that used it.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from golf.protocols.base import Batch
from golf.protocols.slot_core import SlotProtocol


class Slot(SlotProtocol):
    name = "slot"
    causal = False

    def adapt_mask(self, batch: Batch) -> Tensor:
        return batch.scored

    def fit_from(self, batch: Batch) -> np.ndarray | None:
        if batch.host_score_from is not None:
            return batch.host_score_from
        return batch.score_from.cpu().numpy()
