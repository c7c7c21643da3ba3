"""Causal attention for every model family, with the kernel settings passed in, not global.

An `AttentionContext` travels with each forward: which kernel family CUDA attention may
use (`mode`), which backends ran (`seen`, for the report's `engine.attention`) and which
SDPA backend first ran for each call shape (`sdpa_choice`). The engine owns one context per
prepared model, so two engines in one process never see each other's settings.
"""

from __future__ import annotations

import typing
import warnings
from dataclasses import dataclass, field, replace
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
try:  # varlen kernels, for document-bounded attention on CUDA
    from flash_attn_interface import flash_attn_varlen_func as _varlen_3  # type: ignore
except ImportError:
    _varlen_3 = None
try:
    from flash_attn import flash_attn_varlen_func as _varlen_2  # type: ignore
except ImportError:
    _varlen_2 = None

MASK_ELEMENTS = 1 << 26
"""Largest [B, R, T] segment mask built at once; longer rows run SDPA per segment."""


@dataclass
class AttentionContext:
    """Per-model attention settings and what ran under them."""

    mode: Literal["auto", "sdpa", "flash"] = "auto"
    """Which kernel family CUDA attention may use."""
    seen: dict[str, None] = field(default_factory=dict)
    """The backends attention calls used since `seen` was last cleared (insertion order)."""
    sdpa_choice: dict[tuple, str] = field(default_factory=dict)
    """(device, dtype, head_dim, masked) -> the SDPA backend that ran there first."""
    ran: str = "none"
    """What the engine reports: the backends of the last forward, "+"-joined."""
    segments: Tensor | None = None
    """[B, T] segment (document) index of each position, non-decreasing along T, or None.
    With it attention stays inside a segment (document-bounded evaluation); set per call
    with `with_segments`, which shares `seen` and `sdpa_choice` with the engine's context."""

    adapter: Adapter | None = None
    """Per-call low-rank adapters (score-first TTT's LoRA), added by each layer, or None."""

    def for_call(
        self, segments: Tensor | None = None, adapter: Adapter | None = None
    ) -> AttentionContext:
        """This context for one call with document `segments` and/or an `adapter`; shares
        `seen` and `sdpa_choice` with the engine's context."""
        if segments is None and adapter is None:
            return self
        return replace(self, segments=segments, adapter=adapter)


class Adapter(typing.Protocol):
    """What a layer asks of per-call adapters: the low-rank update of one site.

    Sites: "q", "k", "v" (added to the projections), "o" (added to the attention output,
    fed the attention input), "mlp" (added to the MLP output, fed its input) and "head"
    (added to the logits before the softcap; layer -1). None: no adapter there.
    """

    def delta(self, site: str, layer: int, x: Tensor) -> Tensor | None: ...


def adapter_delta(ctx: AttentionContext, site: str, layer: int, x: Tensor) -> Tensor | None:
    """The per-call adapter's update at `site` of virtual layer `layer` (score-first TTT's
    LoRA), or None without one."""
    return None if ctx.adapter is None else ctx.adapter.delta(site, layer, x)


def plus_delta(y: Tensor, delta: Tensor | None) -> Tensor:
    """y plus an adapter's update (y unchanged without one)."""
    return y if delta is None else y + delta.to(y.dtype)


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
    if ctx.segments is not None:
        return _segmented_attention(q, k, v, q_pos, ctx)
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


def segment_ids(inputs: Tensor, bos: int, max_len: int = 0) -> Tensor:
    """[B, T] segment index of each position of `inputs` ([B, T] ids): a segment starts at
    position 0 and at every BOS and, with `max_len` > 0, every `max_len` positions into a
    document (as the records' `cu_seqlens` split long documents)."""
    starts = inputs == bos
    starts[:, 0] = True
    seg = starts.long().cumsum(1)
    if max_len > 0:
        pos = torch.arange(inputs.size(1), device=inputs.device).expand_as(seg)
        first = torch.cummax(torch.where(starts, pos, 0), 1).values
        seg = seg * (inputs.size(1) + 1) + (pos - first) // max_len
    return seg


def _segment_mask(segments: Tensor, q_pos: Tensor | None, n_keys: int) -> Tensor:
    """[B,1,R,T] bool: key causal and in the query's segment."""
    if q_pos is None:
        q_pos = torch.arange(n_keys, device=segments.device).expand(segments.size(0), -1)
    keys = torch.arange(n_keys, device=segments.device)
    causal = keys[None, None, :] <= q_pos[:, :, None]
    same = segments[:, None, :] == segments.gather(1, q_pos)[:, :, None]
    return (causal & same)[:, None].contiguous()


def _segmented_attention(
    q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor | None, ctx: AttentionContext
) -> Tensor:
    """Causal attention that never crosses a segment boundary of `ctx.segments`.

    CUDA, bf16/fp16, all queries: flash_attn_varlen_func over the rows packed into one
    sequence per segment. Otherwise SDPA with a block-diagonal causal mask, or, for rows
    too long for a mask, SDPA per segment.
    """
    segments = ctx.segments
    assert segments is not None
    b, t = k.shape[:2]
    low = q.dtype in (torch.bfloat16, torch.float16)
    varlen = _varlen_3 if _varlen_3 is not None else _varlen_2
    if q.is_cuda and low and q_pos is None and varlen is not None and ctx.mode != "sdpa":
        ctx.seen["flash-attn-varlen"] = None
        flat = segments + torch.arange(b, device=q.device)[:, None] * (int(segments.max()) + 1)
        flat = flat.reshape(-1)
        change = torch.ones_like(flat, dtype=torch.bool)
        change[1:] = flat[1:] != flat[:-1]
        bounds = torch.cat((change.nonzero().flatten(), flat.new_tensor([flat.numel()])))
        cu = bounds.to(torch.int32)
        max_len = int((bounds[1:] - bounds[:-1]).max())
        shape = (b * t, *q.shape[2:])
        y = varlen(
            q.reshape(shape),
            k.reshape(b * t, *k.shape[2:]),
            v.reshape(b * t, *v.shape[2:]),
            cu,
            cu,
            max_len,
            max_len,
            causal=True,
        )
        y = y[0] if isinstance(y, tuple) else y
        return y.reshape(q.shape)
    r = t if q_pos is None else q_pos.size(1)
    groups = q.size(2) // k.size(2)
    ctx.seen["sdpa-segments-cpu" if not q.is_cuda else "sdpa-segments"] = None
    if q_pos is None and b * r * t > MASK_ELEMENTS:
        out = torch.empty_like(q)
        for row in range(b):
            ids = segments[row]
            change = torch.ones_like(ids, dtype=torch.bool)
            change[1:] = ids[1:] != ids[:-1]
            edges = [*change.nonzero().flatten().tolist(), t]
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                out[row : row + 1, lo:hi] = _sdpa(
                    q[row : row + 1, lo:hi],
                    k[row : row + 1, lo:hi],
                    v[row : row + 1, lo:hi],
                    None,
                    gqa=groups > 1,
                )
        return out
    mask = _segment_mask(segments, q_pos, t)
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if q.is_cuda and groups > 1:  # CUDA SDPA kernels with a mask want equal head counts
        kt, vt = kt.repeat_interleave(groups, dim=1), vt.repeat_interleave(groups, dim=1)
        y = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask)
    else:
        y = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, enable_gqa=groups > 1)
    return y.transpose(1, 2)
