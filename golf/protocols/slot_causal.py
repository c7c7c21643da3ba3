"""`slot-causal` (context-only SLOT): fit on the window's context, score what follows.

The context `[0, c)` holds targets already scored by earlier windows, so each scored
prediction depends only on tokens before it. A window without context is scored
unadapted (its fit sees no position, so the parameters stay zero).
"""

from __future__ import annotations

from torch import Tensor

from golf.protocols.base import Batch
from golf.protocols.slot_core import SlotProtocol


class SlotCausal(SlotProtocol):
    name = "slot-causal"

    def adapt_mask(self, batch: Batch) -> Tensor:
        return batch.context
