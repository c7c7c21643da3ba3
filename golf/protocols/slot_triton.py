"""SLOT's fit step fused in Triton: the same algorithm and inputs as `fast_slot`.

Per step, torch's fast path materialises several `[B, A, V]` temporaries (squash,
softmax, gradient) and reduces them with a batched matmul. Here one kernel streams the
projected rows instead: per row an online max/sum over vocabulary blocks, then the
logit gradient summed over the rows of each window in a fixed order (no atomics, so
runs are bit-identical). The two small `[B, d]×[d, V]` products stay in torch, and a
second kernel applies AdamW with `FlatAdamW`'s arithmetic. Row selection and the final
scoring are `fast_slot`'s own code (`slot_rows`, `score_rows`).

Kernels launch with `enable_fp_fusion=False` and fuse (tl.fma) exactly where torch's
kernels do, so a GPU rounds op for op as the interpreter that tests them on CPU; only
exp and tanh differ from torch's by an ulp or two. The difference from `fast_slot` is
float32 reordering noise (an ulp or two of the NLL), and runs are bit-identical.

Importing this module imports triton; golf imports it only when `slot_kernel` asks.
On CPU tensors it runs only under the interpreter: `TRITON_INTERPRET=1` set before
triton is first imported (`@triton.jit` reads it when a kernel is defined, and triton's
own tl.max and tl.sum are kernels defined at its import).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from golf.protocols.slot_core import (
    BETAS,
    EPS,
    WEIGHT_DECAY,
    lr_at,
    score_rows,
    slot_rows,
)
from golf.spec.params import EvalParams

BLOCK_V = 128
"""Vocabulary columns per block; the vocabulary need not be a multiple."""
ROWS_PER_PROGRAM = 32
"""Adapted rows per program; a window's partial sums are then added in chunk order."""
BLOCK_ADAMW = 1024


@triton.jit
def _tanh(x):
    """tanh from exp (the interpreter has no libdevice): Cephes' tanhf, under 2 ulp.

    A polynomial below 0.625, where 1 − 2/(e²ˣ + 1) would cancel.
    """
    a = tl.abs(x)
    a2 = a * a
    poly = -5.70498872745e-3 * a2 + 2.06390887954e-2
    poly = poly * a2 - 5.37397155531e-2
    poly = poly * a2 + 1.33314422036e-1
    poly = poly * a2 - 3.33332819422e-1
    small = poly * a2 * a + a
    large = 1.0 - tl.div_rn(2.0, tl.exp(2.0 * tl.minimum(a, 15.0)) + 1.0)  # 1 past ~9
    t = tl.where(a > 0.625, large, small)
    return tl.where(x < 0, -t, t)


@triton.jit
def _logit_grad_kernel(
    base_ptr,
    shift_ptr,
    target_ptr,
    weight_ptr,
    count_ptr,
    stats_ptr,
    out_ptr,
    vocab,
    stride_base_b,
    stride_base_p,
    stride_row_b,
    stride_stats_b,
    stride_out_b,
    stride_out_c,
    softcap,
    inv_softcap,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """out[b, c, :] = Σ over window b's adapted rows in chunk c of w·(p − onehot)·(1 − s²).

    s = tanh(base + shift / softcap), p = softmax(softcap·s). Pass 1 keeps each row's
    max m, normaliser Z and w / Z (scratch `stats`); pass 2 walks the vocabulary blocks,
    each summing its rows in order in registers: one store per block, no atomics.
    """
    b = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    first = c * ROWS
    last = tl.minimum(first + ROWS, tl.load(count_ptr + b))
    cols = tl.arange(0, BLOCK)
    base_b = base_ptr + b * stride_base_b
    shift_b = shift_ptr + b * vocab
    stats_b = stats_ptr + b * stride_stats_b

    for p in range(first, last):
        row = base_b + p * stride_base_p
        m = tl.full([], float("-inf"), tl.float32)
        total = tl.full([], 0.0, tl.float32)
        for v0 in range(0, vocab, BLOCK):
            v = v0 + cols
            live = v < vocab
            shift = tl.load(shift_b + v, mask=live, other=0.0)
            s = _tanh(tl.fma(shift, inv_softcap, tl.load(row + v, mask=live, other=0.0)))
            a = tl.where(live, softcap * s, float("-inf"))
            m_new = tl.maximum(m, tl.max(a, axis=0))
            total = total * tl.exp(m - m_new) + tl.sum(tl.exp(a - m_new), axis=0)
            m = m_new
        scale = tl.div_rn(tl.load(weight_ptr + b * stride_row_b + p), total)
        tl.store(stats_b + 3 * p, m)
        tl.store(stats_b + 3 * p + 1, total)
        tl.store(stats_b + 3 * p + 2, scale)
    tl.debug_barrier()  # pass 2 reads the stats that other threads of this program wrote

    for v0 in range(0, vocab, BLOCK):
        v = v0 + cols
        live = v < vocab
        shift = tl.load(shift_b + v, mask=live, other=0.0)
        acc = tl.zeros([BLOCK], tl.float32)
        for p in range(first, last):
            m = tl.load(stats_b + 3 * p)
            total = tl.load(stats_b + 3 * p + 1)
            scale = tl.load(stats_b + 3 * p + 2)
            target = tl.load(target_ptr + b * stride_row_b + p)
            row = base_b + p * stride_base_p
            s = _tanh(tl.fma(shift, inv_softcap, tl.load(row + v, mask=live, other=0.0)))
            e = tl.exp(softcap * s - m)
            e = tl.where(v == target, e - total, e)  # Z·(softmax − onehot)
            g = tl.fma(-e, s * s, e)  # × (1 − tanh²)
            acc = tl.fma(scale, g, acc)  # × w / Z, rows in order
        tl.store(out_ptr + b * stride_out_b + c * stride_out_c + v, acc, mask=live)


@triton.jit
def _adamw_kernel(
    param_ptr,
    grad_ptr,
    exp_avg_ptr,
    exp_avg_sq_ptr,
    n,
    decay,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    neg_step_size,
    bias_correction2_sqrt,
    eps,
    BLOCK: tl.constexpr,
):
    """FlatAdamW.step in one pass, op for op (IEEE sqrt and division, as torch)."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = i < n
    param = tl.load(param_ptr + i, mask=live)
    grad = tl.load(grad_ptr + i, mask=live)
    exp_avg = tl.load(exp_avg_ptr + i, mask=live)
    exp_avg_sq = tl.load(exp_avg_sq_ptr + i, mask=live)
    param = param * decay
    # torch fuses lerp (weight < 0.5) and addcmul into FMAs, on CPU as on CUDA.
    exp_avg = tl.fma(one_minus_beta1, grad - exp_avg, exp_avg)
    exp_avg_sq = tl.fma(one_minus_beta2 * grad, grad, exp_avg_sq * beta2)
    denom = tl.div_rn(tl.sqrt_rn(exp_avg_sq), bias_correction2_sqrt) + eps
    param = param + tl.div_rn(neg_step_size * exp_avg, denom)
    tl.store(param_ptr + i, param, mask=live)
    tl.store(exp_avg_ptr + i, exp_avg, mask=live)
    tl.store(exp_avg_sq_ptr + i, exp_avg_sq, mask=live)


def adamw_step(
    param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, lr: float, steps: int
) -> None:
    """FlatAdamW(BETAS, EPS, WEIGHT_DECAY).step(grad, lr) as its `steps`-th step, in place
    on contiguous tensors; the host-side scalars are FlatAdamW's own expressions."""
    beta1, beta2 = BETAS
    n = param.numel()
    _adamw_kernel[(triton.cdiv(n, BLOCK_ADAMW),)](
        param,
        grad,
        exp_avg,
        exp_avg_sq,
        n,
        1 - lr * WEIGHT_DECAY,
        1 - beta1,
        beta2,
        1 - beta2,
        -lr / (1 - beta1**steps),
        (1 - beta2**steps) ** 0.5,
        EPS,
        BLOCK=BLOCK_ADAMW,
        enable_fp_fusion=False,
    )


def interpreted() -> bool:
    """Whether the kernels run under Triton's interpreter (CPU tensors): only when
    TRITON_INTERPRET=1 was set before triton itself was imported, as tl.max, tl.sum
    and the like are kernels of triton's own."""
    kernels = (tl.max, tl.sum, _logit_grad_kernel, _adamw_kernel)
    return not any(isinstance(k, triton.runtime.JITFunction) for k in kernels)


def triton_slot(
    hidden: Tensor,
    weight: Tensor,
    softcap: float,
    targets: Tensor,
    adapt: Tensor,
    scored: Tensor,
    params: EvalParams,
    *,
    block_v: int = BLOCK_V,
    rows_per_program: int = ROWS_PER_PROGRAM,
) -> Tensor:
    """`fast_slot` with each step's gradient and AdamW update as Triton kernels."""
    if hidden.device.type != "cuda" and not interpreted():
        raise RuntimeError("triton_slot needs CUDA tensors, or TRITON_INTERPRET=1 on CPU")
    n_windows, _, dim = hidden.shape
    vocab = weight.shape[0]
    rows, n_adapt, base, row_targets, row_weights = slot_rows(
        hidden, weight, softcap, targets, adapt, scored, params
    )
    # Adapted rows come first in `rows`, so window b fits on rows [0, counts[b]).
    counts = adapt.sum(1, dtype=torch.int32)
    chunks = max(1, triton.cdiv(n_adapt, rows_per_program))
    stats = base.new_empty(n_windows, max(n_adapt, 1), 3)
    partial = base.new_empty(n_windows, chunks, vocab)

    theta = hidden.new_zeros(n_windows, dim + vocab)  # [delta | logit_bias]
    grad = torch.empty_like(theta)
    exp_avg, exp_avg_sq = torch.zeros_like(theta), torch.zeros_like(theta)
    for step in range(params.slot_steps):
        shift = torch.addmm(theta[:, dim:], theta[:, :dim], weight.T)
        _logit_grad_kernel[(n_windows, chunks)](
            base,
            shift,
            row_targets,
            row_weights,
            counts,
            stats,
            partial,
            vocab,
            base.stride(0),
            base.stride(1),
            row_targets.stride(0),
            stats.stride(0),
            partial.stride(0),
            partial.stride(1),
            softcap,
            1 / softcap,
            ROWS=rows_per_program,
            BLOCK=block_v,
            enable_fp_fusion=False,
        )
        grad_bias = partial[:, 0] if chunks == 1 else partial.sum(1)
        grad[:, dim:] = grad_bias
        torch.mm(grad_bias, weight, out=grad[:, :dim])
        adamw_step(theta, grad, exp_avg, exp_avg_sq, lr_at(step, params), step + 1)
    return score_rows(base, theta, weight, softcap, rows, row_targets, scored)
