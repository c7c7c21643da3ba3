"""Engine settings checked against what the worker pool can run, at submission.

`attention: flash` on CPU workers, or `slot_kernel: triton` where Triton is missing, is
a setting no worker of this pool can run: it used to be accepted and fail at run time
(after holding a slot and the owner's budget). Each actor reports its device, whether
flash-attn imports and whether the Triton SLOT kernel can run (workers/actor.py `info`);
a job is accepted only if every worker could run every protocol of it, so the answer
does not depend on which worker a shard lands on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from golf.spec.params import EvalParams


def unrunnable(params: EvalParams, workers: Sequence[dict[str, Any]]) -> str | None:
    """Why some worker of the pool cannot run these settings (one line), or None.

    With no worker ready yet the pool's abilities are unknown and nothing is refused."""
    for info in workers:
        device = str(info.get("device", "cpu"))
        cuda = device == "cuda"
        where = f"this service's workers ({device})"
        if params.attention == "flash":
            if not cuda or not info.get("flash_attention"):
                return (
                    f"attention 'flash' needs flash-attn on a CUDA device, which {where} lack; "
                    "use attention 'auto' or 'sdpa'"
                )
            if params.precision == "fp32":
                return "attention 'flash' runs in bf16 only; use precision 'bf16' or 'auto'"
        if params.slot_kernel == "triton" and not (cuda and info.get("triton")):
            return (
                f"slot_kernel 'triton' needs Triton on a CUDA device, which {where} lack; "
                "use slot_kernel 'auto' or 'torch'"
            )
    return None
