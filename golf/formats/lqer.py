"""LQER: the low-rank error correction of the 2026-04-27 / 2026-04-29 records, dequantized.

After GPTQ, the records take the few matrices with the largest quantization error E and
store a rank-r factorisation E ≈ A·B beside the int6 integers, itself quantized:
- symmetric (`+lqer`): A and B int4 per row (`.lqA`, `.lqAs`, `.lqB`, `.lqBs`);
- asymmetric (`+lqer_asym`): A with one fp16 scale for the whole matrix, integers
  −2..1 (`.lqA_a`, `.lqAs_a`), B int4 (−8..7) in groups of g consecutive values of the
  flattened matrix, one fp16 scale per group (`.lqB_a`, `.lqBs_a`).
The weight the model runs is `q·s + (qA·sA) @ (qB·sB)`, computed here in float32 with the
records' own order of operations; golf stores it as float32 (no int scheme holds it), so
the imported weights are the record's to the bit.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from golf.formats.artifact import DtypeMismatch, MissingTensor, OutOfRange, ShapeMismatch

SYM_KEYS = (".lqA", ".lqAs", ".lqB", ".lqBs")
ASYM_KEYS = (".lqA_a", ".lqAs_a", ".lqB_a", ".lqBs_a")
MAX_RANK = 64


def lqer_keys(name: str, info: str) -> list[str]:
    """The `w` keys a `... +lqer[_asym]` entry of `m` uses besides `.q` and `.scale`."""
    suffixes = ASYM_KEYS if info.endswith("+lqer_asym") else SYM_KEYS
    return [name + s for s in suffixes]


def dequantize_lqer(name: str, info: str, w: Mapping[str, Tensor]) -> Tensor:
    """Float32 `q·s + A @ B` of an LQER entry; a missing, mistyped or misshapen factor is
    one ArtifactError line naming it."""
    for key in [f"{name}.q", f"{name}.scale", *lqer_keys(name, info)]:
        if key not in w:
            raise MissingTensor(f'tensor {key}: listed in "m" ({info}), absent from "w"')
    q, s = w[f"{name}.q"], w[f"{name}.scale"]
    _int8(f"{name}.q", q, 2)
    if s.ndim != 1 or s.shape[0] != q.shape[0]:
        raise ShapeMismatch(
            f"tensor {name}.scale: shape {list(s.shape)} does not fit {list(q.shape)}"
        )
    base = q.float() * s.float().view(q.shape[0], 1)
    rows, cols = q.shape
    if info.endswith("+lqer_asym"):
        qa, sa, qb, sb = (w[k] for k in lqer_keys(name, info))
        _int8(f"{name}.lqA_a", qa, 2)
        _int8(f"{name}.lqB_a", qb, 2)
        r = _rank(name, qa, qb, rows, cols)
        if sa.numel() != 1:
            raise ShapeMismatch(f"tensor {name}.lqAs_a: {sa.numel()} scales, expected one")
        if sb.ndim != 1 or sb.numel() < 1 or (r * cols) % sb.numel():
            raise ShapeMismatch(
                f"tensor {name}.lqBs_a: {sb.numel()} scales do not group {r}x{cols}"
            )
        _range(f"{name}.lqA_a", qa, -2, 1)
        _range(f"{name}.lqB_a", qb, -8, 7)
        a = qa.float() * float(sa.reshape(()))
        group = qb.numel() // sb.numel()
        b = (qb.reshape(-1, group).float() * sb.float().view(-1, 1)).reshape(qb.shape)
    else:
        qa, sa, qb, sb = (w[k] for k in lqer_keys(name, info))
        _int8(f"{name}.lqA", qa, 2)
        _int8(f"{name}.lqB", qb, 2)
        r = _rank(name, qa, qb, rows, cols)
        if tuple(sa.shape) != (rows,) or tuple(sb.shape) != (r,):
            raise ShapeMismatch(f"tensor {name}: LQER scales {list(sa.shape)}, {list(sb.shape)}")
        a = qa.float() * sa.float().view(-1, 1)
        b = qb.float() * sb.float().view(-1, 1)
    return base + a @ b


def _int8(key: str, t: Tensor, ndim: int) -> None:
    if t.dtype != torch.int8:
        raise DtypeMismatch(f"tensor {key}: dtype {t.dtype}, expected int8")
    if t.ndim != ndim:
        raise ShapeMismatch(f"tensor {key}: {t.ndim} dimensions, expected {ndim}")


def _rank(name: str, qa: Tensor, qb: Tensor, rows: int, cols: int) -> int:
    r = qa.shape[1]
    if qa.shape[0] != rows or tuple(qb.shape) != (r, cols) or not 1 <= r <= MAX_RANK:
        raise ShapeMismatch(
            f"tensor {name}: LQER factors {list(qa.shape)} @ {list(qb.shape)} do not make "
            f"[{rows}, {cols}] at rank <= {MAX_RANK}"
        )
    return r


def _range(key: str, t: Tensor, lo: int, hi: int) -> None:
    if t.numel() and (int(t.min()) < lo or int(t.max()) > hi):
        raise OutOfRange(f"tensor {key}: integers outside {lo}..{hi}")
