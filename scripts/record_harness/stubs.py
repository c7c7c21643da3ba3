"""Make a record's CUDA script run on one CPU process in fp32 (harness only).

Installed before the record's source is executed:
- `flash_attn`, `flash_attn_interface` (FA2/FA3) -> `scaled_dot_product_attention`
  (causal, GQA by repeating K/V heads; varlen as a block-diagonal loop over sequences);
- `torch.compile` -> identity (as a call and as a decorator factory);
- `torch.autocast` / `torch.amp.autocast` -> no-op context (fp32 everywhere);
- `nn.Module.bfloat16()` / `.half()` -> no-op (the model stays fp32);
- CUDA runtime calls (set_device, synchronize, memory stats, SDP backend switches) -> no-ops;
- distributed stays off (no RANK / WORLD_SIZE in the environment: world size 1).
`cpu_source` maps device names in the source text ("cuda" -> "cpu", `.cuda()` -> `.cpu()`,
`torch.cuda.is_available()` -> True: patching torch's own would send its optimizers to CUDA).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import tokenize
import types

import torch
import torch.nn.functional as F


def _sdpa_bthd(q, k, v, causal: bool = True, softmax_scale=None):
    """FA layout [B, T, H, D] in and out; K/V heads repeated for GQA."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if k.size(1) != q.size(1):
        rep = q.size(1) // k.size(1)
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=softmax_scale)
    return y.transpose(1, 2).contiguous()


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, *args, **kwargs):
    return _sdpa_bthd(q, k, v, causal=causal, softmax_scale=softmax_scale)


def flash_attn_varlen_func(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q=None,
    max_seqlen_k=None,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    *args,
    **kwargs,
):
    """[total, H, D] packed sequences; each sequence attends only within itself."""
    out = (
        torch.empty_like(q[..., : v.size(-1)]) if v.size(-1) != q.size(-1) else torch.empty_like(q)
    )
    bounds = cu_seqlens_q.tolist()
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b > a:
            out[a:b] = _sdpa_bthd(
                q[None, a:b], k[None, a:b], v[None, a:b], causal=causal, softmax_scale=softmax_scale
            )[0]
    return out


def _compile(model=None, *args, **kwargs):
    if model is None:
        return lambda fn: fn
    return model


def _no_autocast(*args, **kwargs):
    return contextlib.nullcontext()


def _noop(*args, **kwargs):
    return None


def install() -> None:
    """Patch torch and register the flash-attn stand-ins (idempotent, process-wide)."""
    import torch._dynamo  # noqa: F401  (its rule tables must be built before the patches)
    import torch.optim  # noqa: F401

    for name in ("flash_attn", "flash_attn_interface", "flash_attn.flash_attn_interface"):
        mod = types.ModuleType(name)
        mod.flash_attn_func = flash_attn_func
        mod.flash_attn_varlen_func = flash_attn_varlen_func
        sys.modules[name] = mod
    sys.modules["flash_attn"].flash_attn_interface = sys.modules["flash_attn.flash_attn_interface"]
    torch.compile = _compile
    torch.autocast = _no_autocast
    torch.amp.autocast = _no_autocast
    torch.cuda.amp.autocast = _no_autocast
    torch.nn.Module.bfloat16 = lambda self: self
    torch.nn.Module.half = lambda self: self
    cuda = torch.cuda
    cuda.device_count = lambda: 1
    cuda.current_device = lambda: 0
    for name in ("set_device", "synchronize", "empty_cache", "reset_peak_memory_stats"):
        setattr(cuda, name, _noop)
    cuda.max_memory_allocated = lambda *a, **k: 0
    cuda.max_memory_reserved = lambda *a, **k: 0
    cuda.get_device_name = lambda *a, **k: "cpu"
    cuda.get_device_properties = lambda *a, **k: types.SimpleNamespace(
        name="cpu", total_memory=0, multi_processor_count=1, major=0, minor=0
    )
    cuda.current_stream = lambda *a, **k: types.SimpleNamespace(
        synchronize=_noop, wait_stream=_noop
    )
    cuda.stream = lambda *a, **k: contextlib.nullcontext()
    cuda.Stream = lambda *a, **k: types.SimpleNamespace(synchronize=_noop, wait_stream=_noop)
    backends = torch.backends.cuda
    for name in (
        "enable_cudnn_sdp",
        "enable_flash_sdp",
        "enable_math_sdp",
        "enable_mem_efficient_sdp",
    ):
        setattr(backends, name, _noop)
    torch.set_float32_matmul_precision("highest")


_CUDA_CALL = re.compile(r"\.cuda\(\s*(non_blocking\s*=\s*True)?\s*\)")


def cpu_source(source: str) -> str:
    """Device strings "cuda"/"cuda:N" -> "cpu" in string tokens; `.cuda()` -> `.cpu()`."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    edits: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    for tok in tokens:
        if tok.type == tokenize.STRING and re.fullmatch(
            r"""[rbRB]?(["'])cuda(:\d+)?\1""", tok.string
        ):
            edits.append((tok.start, tok.end, '"cpu"'))
    lines = source.splitlines(keepends=True)
    for (r0, c0), (_r1, c1), new in reversed(edits):
        line = lines[r0 - 1]
        lines[r0 - 1] = line[:c0] + new + line[c1:]
    text = "".join(lines)
    text = re.sub(r"""f(["'])cuda:\{[^}]*\}\1""", '"cpu"', text)
    text = text.replace("torch.cuda.is_available()", "True")
    return _CUDA_CALL.sub(".cpu()", text)
