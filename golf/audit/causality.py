"""Causality flip test (openai/parameter-golf PR #1240): does a token move earlier scores?

A causal protocol's prediction of target t depends only on tokens before t. For sampled
windows we change the token behind one scored target j and rerun the window's whole
batch; every scored prediction in the batch of a target before that token must keep its
NLL. The pairs (flipped token, earlier scored target) are counted in two kinds:

- within-window: the target is in the flipped window itself. Standard SLOT fits its
  delta on the window's scored targets, the flipped one included, so nearly all of
  these move: this is the leak PR #1240 is about.
- cross-window: the target is in a batch mate. A per-window delta never carries one
  window's tokens into another, so these stay at 0 unless something couples windows
  (a delta shared by the batch, a model that mixes rows).

The totals mix the two, so their rate depends on the batch size; report both rates.

Threshold: a change counts as a violation when |ΔNLL| > 1e-6 nats. The unmodified batch
is rerun first and must differ from itself by no more than that (on CPU it is
bit-identical; causal protocols then show exactly zero change), so a violation is a real
dependence, not float noise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from golf.engine.engine import EngineModel, prepare
from golf.engine.evaluate import batch_nll, device_tokens
from golf.protocols.base import Protocol, Scorer
from golf.protocols.scored import Scored
from golf.protocols.stream import StreamProtocol
from golf.spec.documents import BOS_ID
from golf.spec.errors import ConfigError, DataError
from golf.spec.params import EvalParams
from golf.spec.registry import get_protocol

THRESHOLD = 1e-6


def audit(
    model: Scorer,
    tokens: Tensor | np.ndarray,
    protocol: Protocol | str,
    params: EvalParams,
    windows: int = 8,
    seed: int = 0,
    threshold: float = THRESHOLD,
) -> dict[str, str | int | float]:
    """Flip one future token in each of `windows` sampled windows; count moved earlier NLLs."""
    if windows < 1:
        raise ConfigError(f"audit needs at least one window, got {windows}")
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    tokens = device_tokens(tokens, model).clone()  # flipped and restored in place
    plan = protocol.plan(tokens.numel() - 1, params)
    rng = np.random.default_rng(seed)
    # A window needs two scored targets for one to be earlier than the flipped one.
    eligible = np.flatnonzero(plan.lengths - plan.score_from >= 2)
    chosen = np.sort(rng.choice(eligible, size=min(windows, len(eligible)), replace=False))
    vocab = model.config.vocab_size
    pairs = {"within_window": 0, "cross_window": 0}
    violations = dict.fromkeys(pairs, 0)
    noise = 0.0
    for k in np.unique(chosen // params.batch_windows).tolist():
        batch, base = batch_nll(model, tokens, plan, protocol, params, k)
        rerun = batch_nll(model, tokens, plan, protocol, params, k)[1]
        noise = max(noise, float((rerun - base).abs().max()))
        if noise > threshold:
            raise RuntimeError(
                f"audit: rerunning batch {k} unchanged moved an NLL by {noise:.3g} > "
                f"{threshold:g}; this device is not deterministic enough to audit"
            )
        target_at = batch.starts[:, None] + batch.offsets + 1  # token index of each target
        for window in chosen[chosen // params.batch_windows == k].tolist():
            lo, hi = int(plan.score_from[window]), int(plan.lengths[window])
            flip_at = int(plan.starts[window]) + int(rng.integers(lo + 1, hi)) + 1
            original = int(tokens[flip_at])
            tokens[flip_at] = (original + int(rng.integers(1, vocab))) % vocab
            nll = batch_nll(model, tokens, plan, protocol, params, k)[1]
            tokens[flip_at] = original
            earlier = batch.scored & (target_at < flip_at)
            moved = (nll - base).abs() > threshold
            own = torch.zeros_like(earlier)
            own[window - batch.windows.start] = True
            for kind, rows in (("within_window", own), ("cross_window", ~own)):
                pairs[kind] += int((earlier & rows).sum())
                violations[kind] += int((moved & earlier & rows).sum())
    total_pairs, total_violations = sum(pairs.values()), sum(violations.values())
    result: dict[str, str | int | float] = {
        "protocol": protocol.name,
        "windows_tested": len(chosen),
        "pairs_tested": total_pairs,
        "violations": total_violations,
        "violation_rate": _rate(total_violations, total_pairs),
    }
    for kind in pairs:
        result[f"{kind}_pairs"] = pairs[kind]
        result[f"{kind}_violations"] = violations[kind]
        result[f"{kind}_rate"] = _rate(violations[kind], pairs[kind])
    return result | {"threshold": threshold, "rerun_max_abs_diff": noise}


def _rate(violations: int, pairs: int) -> float:
    return violations / pairs if pairs else 0.0


def audit_stream(
    model: Scorer,
    tokens: Tensor | np.ndarray,
    protocol: StreamProtocol | str,
    params: EvalParams,
    flips: int = 4,
    seed: int = 0,
    threshold: float = THRESHOLD,
    probe_rows: int = 64,
) -> dict[str, str | int | float | bool]:
    """Flip test of a protocol that adapts as it scores (score-first TTT).

    The protocol runs over `tokens` (keep them short) once, and once more per flipped token
    f (never a BOS, never flipped into one: documents keep their bounds). Its units come
    back in the order they were scored; u* is the first unit that scored f as a target.
    Every score of a unit scored before u*, and of u* at targets before f, must keep its
    NLL: nothing may be scored after training on a token it precedes (issue #1017's
    conditions 1, 3 and 4: a protocol that trains before scoring, or rescores in a second
    pass, moves them). `stream_prefix_violations` counts, for information, the scores of
    targets before f in the stream that moved: zero for protocols that score in stream
    order; per-document protocols that score long documents first (ttt-phased) train on
    documents that come later in the stream but were scored earlier.

    Condition 2 is probed on the side: every logits tensor the protocol computes has
    `vocab_size` columns and, on up to `probe_rows` sampled rows per call, softmax
    probabilities that sum to 1 within 1e-5 (fp64 sum of the fp32 probabilities).
    """
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if not isinstance(protocol, StreamProtocol):
        raise ConfigError(f"protocol {protocol.name!r} is audited batch by batch: use audit()")
    if flips < 1:
        raise ConfigError(f"audit needs at least one flip, got {flips}")
    params = protocol.resolve(params)
    probe = _Probe(prepare(model, params), probe_rows, seed)
    tokens = device_tokens(tokens, probe).clone()
    vocab = model.config.vocab_size
    rank, targets, base = _flat(protocol.score(probe, tokens, params))
    noise = float(np.abs(_flat(protocol.score(probe, tokens, params))[2] - base).max())
    if noise > threshold:
        raise RuntimeError(
            f"audit: rerunning {protocol.name} unchanged moved an NLL by {noise:.3g} > "
            f"{threshold:g}; this device is not deterministic enough to audit"
        )
    rng = np.random.default_rng(seed)
    host = tokens.cpu().numpy()
    candidates = np.arange(int(targets.min()) + 2, len(host))
    candidates = candidates[(host[candidates] != BOS_ID) & np.isin(candidates - 1, targets)]
    where = np.sort(rng.choice(candidates, size=min(flips, len(candidates)), replace=False))
    pairs = violations = prefix_pairs = prefix_violations = 0
    for flip_at in where.tolist():
        original = int(tokens[flip_at])
        new = (original + int(rng.integers(1, vocab))) % vocab
        tokens[flip_at] = new if new != BOS_ID else (new + 1) % vocab
        nll = _flat(protocol.score(probe, tokens, params))[2]
        tokens[flip_at] = original
        moved = np.abs(nll - base) > threshold
        first = int(rank[targets == flip_at - 1].min())  # u*: the first unit scoring f
        before = (rank < first) | ((rank == first) & (targets < flip_at - 1))
        pairs += int(before.sum())
        violations += int(moved[before].sum())
        prefix = targets < flip_at - 1
        prefix_pairs += int(prefix.sum())
        prefix_violations += int(moved[prefix].sum())
    return {
        "protocol": protocol.name,
        "flips": len(where),
        "pairs_tested": pairs,
        "violations": violations,
        "violation_rate": _rate(violations, pairs),
        "stream_prefix_pairs": prefix_pairs,
        "stream_prefix_violations": prefix_violations,
        "threshold": threshold,
        "rerun_max_abs_diff": noise,
        "normalization_rows": probe.stats["rows"],
        "normalization_max_abs_error": probe.stats["worst"],
        "normalized": 0 < probe.stats["rows"] and probe.stats["worst"] <= NORMALIZATION_TOLERANCE,
        "verdict": "score-first" if violations == 0 else "NOT score-first",
    }


NORMALIZATION_TOLERANCE = 1e-5


def _flat(units: list[Scored]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scoring rank of the unit, target index, NLL) of every score, in scoring order."""
    rank = np.concatenate([np.full(len(u.targets), i) for i, u in enumerate(units)])
    return rank, np.concatenate([u.targets for u in units]), np.concatenate([u.nll for u in units])


class _Probe(EngineModel):
    """The prepared model, checking each logits tensor is a full normalised distribution."""

    def __init__(self, model: EngineModel, rows: int, seed: int):
        super().__init__(model.engine, model.model)
        self.max_rows = rows
        self.stats = {"rows": 0, "worst": 0.0}  # shared with the protocol's eager copies
        self.rng = np.random.default_rng(seed)

    def logits(self, hidden: Tensor, adapter=None) -> Tensor:  # type: ignore[override]
        out = super().logits(hidden, adapter)
        if out.shape[-1] != self.config.vocab_size:
            raise RuntimeError(
                f"logits have {out.shape[-1]} columns, vocab is {self.config.vocab_size}"
            )
        flat = out.detach().reshape(-1, out.shape[-1])
        pick = self.rng.choice(flat.shape[0], size=min(self.max_rows, flat.shape[0]), replace=False)
        probs = torch.softmax(flat[torch.from_numpy(pick).to(flat.device)].float(), dim=-1)
        error = (probs.double().sum(-1) - 1).abs().max().item()
        self.stats["rows"] += len(pick)
        self.stats["worst"] = max(self.stats["worst"], error)
        return out


def audit_shape(params: EvalParams, n_tokens: int, n_docs: int) -> EvalParams:
    """`params` at a shape where `n_tokens` hold several steps of every chain: windows of
    at most n/6 tokens (stride a quarter of that), 4 chunks, LoRA chunks of ≤ L/4, two
    documents per batch and a phase prefix of half the documents. The algorithm, its
    optimizers and learning rates are the run's own."""
    seq_len = max(8, min(params.seq_len, n_tokens // 6))
    chunk = max(seq_len, n_tokens // 4)
    return params.model_copy(
        update={
            "seq_len": seq_len,
            "stride": max(1, min(params.stride or seq_len, seq_len // 4)),
            "max_windows": None,
            "ttt_chunk_tokens": chunk,
            "ttt_batch_seqs": min(params.ttt_batch_seqs, 2),
            "global_chunk_tokens": chunk,
            "global_batch_seqs": min(params.global_batch_seqs, 2),
            "lora_chunk": max(1, min(params.lora_chunk, seq_len // 4)),
            "lora_batch_docs": min(params.lora_batch_docs, 2),
            "phased_prefix_docs": min(params.phased_prefix_docs, max(1, n_docs // 2)),
            "phased_phases": min(params.phased_phases, 2),
        }
    )


def stream_audit(
    model: Scorer, tokens: np.ndarray, protocol: str, params: EvalParams
) -> dict[str, str | int | float | bool] | None:
    """What a report of `protocol` carries as its audit: `audit_report` for the protocols
    that adapt as they score (None for frozen ones, or with `ttt_audit_flips` 0). `golf
    eval` and the service's workers both call this, so their reports agree."""
    proto = get_protocol(protocol)
    if not isinstance(proto, StreamProtocol) or params.ttt_audit_flips == 0:
        return None
    return audit_report(model, np.asarray(tokens), proto, proto.resolve(params))


def audit_report(
    model: Scorer, tokens: np.ndarray, protocol: StreamProtocol, params: EvalParams
) -> dict[str, str | int | float | bool]:
    """The stream audit `golf eval` attaches to a TTT report: `ttt_audit_flips` flips on
    the first `ttt_audit_tokens` tokens, at `audit_shape`."""
    from golf.spec.documents import find_documents

    prefix = np.asarray(tokens)[: params.ttt_audit_tokens + 1]
    try:
        n_docs = len(find_documents(prefix))
    except DataError:
        n_docs = 0
    shape = audit_shape(params, len(prefix), n_docs)
    result = audit_stream(model, prefix, protocol, shape, flips=params.ttt_audit_flips)
    keys = ("verdict", "flips", "pairs_tested", "violations", "normalized")
    summary = {k: result[k] for k in keys}
    return summary | {
        "tokens": len(prefix),
        "seq_len": shape.seq_len,
        "chunk": shape.ttt_chunk_tokens,
    }
