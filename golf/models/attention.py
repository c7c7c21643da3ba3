"""Causal attention for every model family, with the kernel settings passed in, not global.

An `AttentionContext` travels with each forward: which kernel family CUDA attention may
use (`mode`), which backends ran (`seen`, for the report's `engine.attention`) and which
SDPA backend first ran for each call shape (`sdpa_choice`). The engine owns one context per
prepared model, so two engines in one process never see each other's settings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

try:  # flash-attn 3 (Hopper), used only for low-precision CUDA tensors
    from flash_attn_interface import flash_attn_func as _flash_attn_3  # type: ignore
except ImportError:
    _flash_attn_3 = None
try:  # flash-attn 2
    from flash_attn import flash_attn_func as _flash_attn_2  # type: ignore
except ImportError:
    _flash_attn_2 = None


@dataclass
class AttentionContext:
    """Per-model attention settings and what ran under them."""

    mode: Literal["auto", "sdpa", "flash"] = "auto"
    """Which kernel family CUDA attention may use."""
    seen: dict[str, None] = field(default_factory=dict)
    """The backends attention calls used since `seen` was last cleared (insertion order)."""
    sdpa_choice: dict[tuple, str] = field(default_factory=dict)
    """(device, dtype, head_dim, masked) -> the SDPA backend that ran there first."""


def flash_attn_available() -> str | None:
    """ "flash-attn-3" or "flash-attn-2" when that library imports, else None."""
    if _flash_attn_3 is not None:
        return "flash-attn-3"
    return "flash-attn-2" if _flash_attn_2 is not None else None


def causal_attention(
    q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor | None, ctx: AttentionContext
) -> Tensor:
    """[B,R,H,D] x [B,T,Hkv,D] -> [B,R,H,D], causal, grouped-query.

    Without `q_pos` the queries are all T positions (R = T); with `q_pos` ([B, R] positions)
    query r attends to keys at positions <= q_pos[b, r] (the pruned last layer). On CPU
    this is SDPA ("sdpa-cpu"), the unmasked call unchanged; on CUDA see `_cuda_attention`.
    The backend that ran is recorded in `ctx.seen`.
    """
    device_type = q.device.type
    if q.dtype == torch.float32 and torch.is_autocast_enabled(device_type):
        q = q.to(torch.get_autocast_dtype(device_type))  # autocast may keep norms in fp32
    k, v = k.to(q.dtype), v.to(q.dtype)  # no-op unless autocast mixed the dtypes
    if not q.is_cuda:
        ctx.seen["sdpa-cpu"] = None
        return _sdpa(q, k, v, q_pos, gqa=True)
    return _cuda_attention(q, k, v, q_pos, ctx)


def _causal_mask(q_pos: Tensor, n_keys: int) -> Tensor:
    """[B,1,R,T] bool: key position <= query position."""
    keys = torch.arange(n_keys, device=q_pos.device)
    return (keys[None, None, None, :] <= q_pos[:, None, :, None]).contiguous()


def _sdpa(q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor | None, gqa: bool) -> Tensor:
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if q_pos is None:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    else:
        mask = _causal_mask(q_pos, k.size(2))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
    return y.transpose(1, 2)


def _sdpa_backends(low_precision: bool, masked: bool) -> list[tuple[str, object]]:
    from torch.nn.attention import SDPBackend

    if low_precision and not masked:  # flash first; never silently the math kernel
        order = [("sdpa-flash", SDPBackend.FLASH_ATTENTION)]
        order.append(("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION))
        order.append(("sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION))
    elif low_precision:  # the flash kernel takes no mask
        order = [("sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION)]
        order.append(("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION))
    else:  # fp32: the memory-efficient kernel, else math
        order = [("sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION)]
        order.append(("sdpa-math", SDPBackend.MATH))
    return order


def _cuda_attention(
    q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor | None, ctx: AttentionContext
) -> Tensor:
    """FA3 / FA2 for bf16/fp16 causal calls (unless mode "sdpa"), else SDPA with one
    backend forced at a time (KV heads repeated for GQA), the first that runs remembered."""
    from torch.nn.attention import sdpa_kernel

    low = q.dtype in (torch.bfloat16, torch.float16)
    if low and q_pos is None and ctx.mode != "sdpa":
        if _flash_attn_3 is not None and torch.cuda.get_device_capability(q.device)[0] == 9:
            ctx.seen["flash-attn-3"] = None
            y = _flash_attn_3(q, k, v, causal=True)
            return y[0] if isinstance(y, tuple) else y
        if _flash_attn_2 is not None:
            ctx.seen["flash-attn-2"] = None
            return _flash_attn_2(q, k, v, causal=True)
    groups = q.size(2) // k.size(2)
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=2), v.repeat_interleave(groups, dim=2)
    key = (q.device, q.dtype, q.size(-1), q_pos is not None)
    backends = _sdpa_backends(low, q_pos is not None)
    chosen = ctx.sdpa_choice.get(key)
    if chosen is not None:  # the steady state (and what torch.compile traces)
        with sdpa_kernel([dict(backends)[chosen]]):  # type: ignore[list-item]
            y = _sdpa(q, k, v, q_pos, gqa=False)
        ctx.seen[chosen] = None
        return y
    for name, backend in backends:  # first call here: the first backend that runs
        try:
            with warnings.catch_warnings(), sdpa_kernel([backend]):  # type: ignore[list-item]
                warnings.simplefilter("ignore")
                y = _sdpa(q, k, v, q_pos, gqa=False)
        except RuntimeError:
            continue
        ctx.sdpa_choice[key] = name
        ctx.seen[name] = None
        return y
    raise RuntimeError(f"no SDPA backend runs attention for {q.dtype} head_dim {q.size(-1)}")
