"""`plain`: non-overlapping seq_len chunks, the training-time validation loss."""

from __future__ import annotations

from golf.protocols.sliding import Sliding
from golf.spec.params import EvalParams


class Plain(Sliding):
    """The sliding computation on the canonical plan with stride = seq_len (no context)."""

    name = "plain"

    def resolve(self, params: EvalParams) -> EvalParams:
        """Always stride = seq_len, whatever stride the run gives the overlapping protocols.

        One command can then score `plain` beside `sliding --stride 64`; the report's
        params state the stride that was used.
        """
        return params.model_copy(update={"stride": params.seq_len})
