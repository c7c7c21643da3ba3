"""`plain`: non-overlapping seq_len chunks, the training-time validation loss."""

from __future__ import annotations

from golf.errors import ConfigError
from golf.plan import WindowPlan
from golf.protocols.params import EvalParams
from golf.protocols.sliding import Sliding


class Plain(Sliding):
    """The sliding computation on the canonical plan with stride = seq_len (no context)."""

    name = "plain"

    def default_stride(self, seq_len: int) -> int:
        return seq_len

    def plan(self, n_targets: int, params: EvalParams) -> WindowPlan:
        if params.stride not in (None, params.seq_len):
            raise ConfigError(
                f"plain scores non-overlapping chunks: stride must be seq_len "
                f"({params.seq_len}), got {params.stride}"
            )
        return super().plan(n_targets, params)
