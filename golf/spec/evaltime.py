"""Eval time against Parameter Golf's 10-minute limit: a run's measured seconds projected
to the 8×H100 box the rules name, where the hardware it ran on makes that possible.

Torch-free. The projection is plain arithmetic on measured GPU seconds: compute seconds
on one H100-class GPU divided by 8 (perfect data parallelism over windows, which the
canonical plan allows: batches are independent). It is None on a CPU or an unknown GPU,
where no honest factor is known; never a guess.
"""

from __future__ import annotations

from typing import Any

EVAL_LIMIT_S = 600.0
"""The rules: no submission may take more than 10 minutes on 8×H100 to evaluate."""

GPUS = 8
H100_EQUIVALENT = {"H100": 1.0, "H200": 1.0}
"""Device-name fragment → throughput relative to one H100 SXM. The H200 has the H100's
compute (more, faster memory): counted as one, which under-projects memory-bound runs."""


def projected_8xh100_s(compute_s: float, device_name: str | None) -> float | None:
    """Seconds the same evaluation would take on 8 H100s, from `compute_s` measured on
    one GPU of `device_name`; None when that device has no known H100 equivalent."""
    name = (device_name or "").upper()
    for fragment, speed in H100_EQUIVALENT.items():
        if fragment in name:
            return compute_s / speed / GPUS
    return None


def time_words(r: dict[str, Any]) -> str:
    """`12.3 s wall on NVIDIA H100 (8×H100 ≈ 1.5 s)`, as much as the report knows."""
    wall = r.get("wall_s") if r.get("wall_s") is not None else r.get("elapsed_s")
    device = (r.get("engine") or {}).get("device_name") or "unknown hardware"
    words = f"{wall:.1f} s wall on {device}" if wall is not None else f"on {device}"
    projected = r.get("projected_8xh100_s")
    if projected is not None:
        over = " OVER the 600 s limit" if projected > EVAL_LIMIT_S else ""
        words += f" (8×H100 ≈ {projected:.1f} s{over})"
    return words
