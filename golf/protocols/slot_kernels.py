"""Which SLOT step runs: the torch fast path or the fused Triton kernel.

The SLOT protocols own their kernels, so the choice lives here; the engine resolves
`slot_kernel` through `resolve_slot_kernel` and the protocol loads what was resolved.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Literal

import torch

from golf.spec.errors import ConfigError

TRITON_MODULE = "golf.protocols.slot_triton"


def resolve_slot_kernel(kind: str, device: torch.device) -> Literal["torch", "triton"]:
    """auto: triton on CUDA when triton and the Triton SLOT module import."""
    if kind == "auto":
        return "triton" if device.type == "cuda" and _triton_importable() else "torch"
    return "triton" if kind == "triton" else "torch"


def _triton_importable() -> bool:
    try:
        return (
            importlib.util.find_spec("triton") is not None
            and importlib.util.find_spec(TRITON_MODULE) is not None
        )
    except (ImportError, ValueError):
        return False


def load_triton_slot() -> Any:
    """golf.protocols.slot_triton.triton_slot, imported on first use (triton is optional)."""
    if importlib.util.find_spec("triton") is None:
        raise ConfigError("slot_kernel 'triton' needs triton installed; use slot_kernel 'torch'")
    try:
        module = importlib.import_module(TRITON_MODULE)
    except ImportError as e:
        raise ConfigError(f"slot_kernel 'triton' is unavailable: {e}") from None
    return module.triton_slot
