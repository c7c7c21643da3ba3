"""GPTQ: int6/int8 weights chosen against the inputs each matrix actually sees.

For a linear layer with calibration inputs X, the output error of quantized weights Ŵ
is ‖X(W − Ŵ)ᵀ‖² = n · Σ_rows e H eᵀ with H = XᵀX / n and e a row of W − Ŵ. GPTQ quantizes
the columns one at a time and pushes each column's rounding error onto the columns not
yet quantized, along the rows of the upper Cholesky factor of H⁻¹ (the optimal-brain-
surgeon update, done in blocks so most of the work is one matrix product per block).
Columns go in order of decreasing H diagonal ("act-order"), the inputs that carry the
most energy first, while there is the most freedom left to absorb their error.

As in the seed lineage (openai/parameter-golf PR #1313/#1488), the scale of a row is the
round-to-nearest one (max|row| / qmax, in fp16), the Hessian is damped by 1% of its mean
diagonal, and a column whose input is always zero is set to zero. Embedding tables,
the tied embedding included, stay round-to-nearest int8: no linear layer's inputs
describe how their rows are used. Calibration batches come from train tokens, val
tokens, or the model's own samples; the provenance records which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.data.shards import Dataset
from golf.formats.quant import PASSTHROUGH_MAX_NUMEL, QMAX, QTensor, Scheme, quantize, scheme_for
from golf.models.gpt import GPT
from golf.spec.errors import ConfigError, DataError

CALIBRATION_SOURCES = ("train", "val", "self")
BATCH_SEQS = 8  # sequences per calibration forward, the reference's GPTQ batch size
BOS_ID = 1  # first token of self-generated sequences


# ------------------------------------------------------------------------ calibration


def calibration_batches(
    source: str, dataset: Dataset, model: GPT, n_seqs: int, seq_len: int, seed: int
) -> list[Tensor]:
    """`n_seqs` int64 id sequences of `seq_len` tokens in batches of at most BATCH_SEQS:
    seeded random windows of the train or val tokens, or samples of the model itself
    ("self", which reads no data, so calibration never sees val text)."""
    if source not in CALIBRATION_SOURCES:
        raise ConfigError(
            f"unknown GPTQ calibration source {source!r}; known: {', '.join(CALIBRATION_SOURCES)}"
        )
    sizes = [min(BATCH_SEQS, n_seqs - i) for i in range(0, n_seqs, BATCH_SEQS)]
    if source == "self":
        return self_generated(model, sizes, seq_len, seed)
    tokens = dataset.train_tokens() if source == "train" else dataset.val_tokens()
    return list(torch.split(random_windows(tokens, n_seqs, seq_len, seed), BATCH_SEQS))


def random_windows(tokens: np.ndarray, n: int, seq_len: int, seed: int) -> Tensor:
    """[n, seq_len] int64: windows at seeded uniform offsets of a token array."""
    if tokens.size < seq_len:
        raise DataError(f"{tokens.size} tokens are too few for calibration windows of {seq_len}")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, tokens.size - seq_len + 1, (n,), generator=gen).tolist()
    return torch.from_numpy(np.stack([tokens[s : s + seq_len] for s in starts]).astype(np.int64))


@torch.no_grad()
def self_generated(model: GPT, sizes: Sequence[int], seq_len: int, seed: int) -> list[Tensor]:
    """Batches of sequences sampled from the model at temperature 1, each started at BOS.

    The reference recomputes the whole prefix per token (no KV cache), and so does this;
    on CUDA it samples under bf16 autocast, as the reference does, to keep that cheap.
    """
    device = model.tok_emb.weight.device
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    batches = []
    with torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda"):
        for size in sizes:
            ids = torch.full((size, 1), BOS_ID, dtype=torch.int64, device=device)
            for _ in range(seq_len - 1):
                logits = model.logits(model.forward_hidden(ids)[:, -1])
                probs = F.softmax(logits.float(), dim=-1)
                ids = torch.cat((ids, torch.multinomial(probs, 1, generator=gen)), dim=1)
            batches.append(ids.cpu())
    model.train(was_training)
    return batches


def quantized_linears(
    model: GPT, passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL
) -> dict[str, nn.Linear]:
    """State-dict weight name -> Linear, for the linears stored as int6 or int8."""
    roles = model.parameter_roles()
    return {
        f"{name}.weight": m
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear)
        and scheme_for(
            roles[f"{name}.weight"], m.weight.shape, passthrough_max_numel=passthrough_max_numel
        )
        is not Scheme.FP16
    }


def collect_hessians(
    model: GPT,
    batches: Sequence[Tensor],
    *,
    passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL,
) -> dict[str, Tensor]:
    """Weight name -> H = Σ XᵀX / rows (float64) over every input the weight multiplies.

    Hooks sit on the modules, so a matrix that depth recurrence runs twice sums the
    inputs of both passes. `GPT.logits` multiplies the head weight directly, so an
    untied `lm_head` gets the final hidden states by hand.
    """
    linears = quantized_linears(model, passthrough_max_numel)
    sums = {
        name: torch.zeros(m.in_features, m.in_features, dtype=torch.float64, device=m.weight.device)
        for name, m in linears.items()
    }
    rows = dict.fromkeys(linears, 0)

    def accumulate(name: str, x: Tensor) -> None:
        x = x.detach().reshape(-1, x.size(-1)).double()
        sums[name].addmm_(x.T, x)
        rows[name] += x.size(0)

    def hook(name: str) -> Callable[..., None]:
        return lambda module, args, output: accumulate(name, args[0])

    handles = [m.register_forward_hook(hook(name)) for name, m in linears.items()]
    was_training = model.training
    model.eval()
    device = model.tok_emb.weight.device
    try:
        with torch.no_grad():
            for ids in batches:
                hidden = model.forward_hidden(ids.to(device))
                if "lm_head.weight" in linears:
                    accumulate("lm_head.weight", hidden)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: h / rows[name] for name, h in sums.items() if rows[name]}


# ------------------------------------------------------------------------ quantization


def round_to_scale(weight: Tensor, scale: Tensor, qmax: int) -> Tensor:
    """Round-to-nearest integers of `weight` against per-row `scale`, clamped to ±qmax."""
    return torch.clamp(torch.round(weight / scale[:, None]), -qmax, qmax)


def inverse_cholesky(h: Tensor) -> Tensor | None:
    """Upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU): row j of U, scaled by 1/U[j,j], is how
    the error of column j spreads over the later ones. None if H is not positive definite."""
    chol, info = torch.linalg.cholesky_ex(h)
    if info == 0:
        u, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(chol), upper=True)
    return u if info == 0 else None


def gptq_quantize(
    weight: Tensor,
    hessian: Tensor,
    scale: Tensor,
    *,
    qmax: int = 31,
    block: int = 128,
    damp: float = 0.01,
    act_order: bool = True,
) -> QTensor:
    """GPTQ integers of `weight` [rows, cols] for the given fp16 per-row `scale`.

    Float64 throughout, on the weight's device. If the damped Hessian is still not
    positive definite (damp = 0 with fewer calibration rows than columns), this falls
    back to round-to-nearest, as the reference does.
    """
    schemes = {q: s for s, q in QMAX.items()}
    if qmax not in schemes:
        raise ValueError(f"qmax {qmax} is not one of {sorted(schemes)}")
    device = weight.device
    w = weight.detach().to(torch.float64).clone()
    h = hessian.detach().to(device, torch.float64).clone()
    s = scale.to(device, torch.float64)
    cols = w.size(1)

    dead = h.diagonal() == 0  # inputs that are always zero: weights there do nothing
    h[dead, dead] = 1
    w[:, dead] = 0
    h.diagonal().add_(damp * h.diagonal().mean())
    if act_order:
        perm = torch.argsort(h.diagonal(), descending=True, stable=True)
    else:
        perm = torch.arange(cols, device=device)
    w, h = w[:, perm], h[perm][:, perm]
    u = inverse_cholesky(h)
    if u is None:
        q = round_to_scale(weight.detach().to(torch.float64), s, qmax)
        return QTensor(schemes[qmax], q.to(torch.int8), scale)

    q = torch.empty_like(w)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        err = torch.empty(w.size(0), i2 - i1, dtype=torch.float64, device=device)
        for j in range(i1, i2):
            q[:, j] = round_to_scale(w[:, j : j + 1], s, qmax)[:, 0]
            e = (w[:, j] - q[:, j] * s) / u[j, j]
            w[:, j + 1 : i2] -= e[:, None] * u[j, j + 1 : i2]
            err[:, j - i1] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
    q = q[:, torch.argsort(perm)]
    return QTensor(schemes[qmax], q.to(torch.int8), scale)


def row_errors(weight: Tensor, qt: QTensor, hessian: Tensor) -> Tensor:
    """Per row, e H eᵀ with e = w − ŵ: that row's squared output error / calibration rows."""
    e = weight.detach().double() - qt.dequantize().to(weight.device).double()
    return ((e @ hessian.to(e.device, torch.float64)) * e).sum(dim=1)


def keep_better_rows(weight: Tensor, hessian: Tensor, gptq: QTensor, rtn: QTensor) -> QTensor:
    """Per row, whichever of GPTQ and round-to-nearest has the smaller calibration error.

    GPTQ is greedy and clamps at ±qmax, so a row may come out worse than plain rounding;
    rows are independent under H, so this makes the matrix never worse than RTN.
    """
    rtn_values = rtn.values.to(gptq.values.device)
    better = row_errors(weight, gptq, hessian) <= row_errors(weight, rtn, hessian)
    values = torch.where(better.to(gptq.values.device)[:, None], gptq.values, rtn_values)
    return QTensor(gptq.scheme, values, gptq.scale)


def quantize_model(
    model: GPT,
    batches: Sequence[Tensor],
    *,
    block: int = 128,
    damp: float = 0.01,
    act_order: bool = True,
    progress: Callable[[str], None] | None = None,
    passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL,
) -> dict[str, QTensor]:
    """Every tensor of the model's state dict under the scheme `scheme_for` picks for its
    declared role, on the CPU: GPTQ for the int6/int8 linears (calibrated on `batches`),
    round-to-nearest for the rest. `progress(name)` is called after each tensor."""
    roles = model.parameter_roles()
    hessians = collect_hessians(model, batches, passthrough_max_numel=passthrough_max_numel)
    out: dict[str, QTensor] = {}
    for name, t in model.state_dict().items():
        scheme = scheme_for(roles[name], t.shape, passthrough_max_numel=passthrough_max_numel)
        qt = quantize(t, scheme)
        if name in hessians:
            gptq = gptq_quantize(
                t,
                hessians[name],
                qt.scale.to(t.device),
                qmax=QMAX[scheme],
                block=block,
                damp=damp,
                act_order=act_order,
            )
            best = keep_better_rows(t, hessians[name], gptq, qt)
            qt = QTensor(scheme, best.values.cpu().contiguous(), qt.scale)
        out[name] = qt
        if progress is not None:
            progress(name)
    return out


def output_error(weight: Tensor, qt: QTensor, x: Tensor) -> float:
    """‖X Wᵀ − X Ŵᵀ‖_F over inputs x [..., in], in float64."""
    e = weight.detach().double() - qt.dequantize().to(weight.device).double()
    x = x.detach().reshape(-1, x.size(-1)).to(weight.device, torch.float64)
    return float(torch.linalg.matrix_norm(x @ e.T))
