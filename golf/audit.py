"""Causality flip test (openai/parameter-golf PR #1240): does a token move earlier scores?

A causal protocol's prediction of target t depends only on tokens before t. For sampled
windows we change the token behind one scored target j and rerun the window's whole
batch; every scored prediction in the batch of a target before that token must keep its
NLL. Batch mates are included so that coupling across windows (a shared delta) is caught
too.

Threshold: a change counts as a violation when |ΔNLL| > 1e-6 nats. The unmodified batch
is rerun first and must differ from itself by no more than that (on CPU it is
bit-identical; causal protocols then show exactly zero change), so a violation is a real
dependence, not float noise.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from golf.errors import ConfigError
from golf.evaluate import batch_nll, device_tokens
from golf.protocols import EvalParams, Protocol, get_protocol

THRESHOLD = 1e-6


def audit(
    model: nn.Module,
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
    pairs = violations = 0
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
            pairs += int(earlier.sum())
            violations += int(((nll - base).abs() > threshold)[earlier].sum())
    return {
        "protocol": protocol.name,
        "windows_tested": len(chosen),
        "pairs_tested": pairs,
        "violations": violations,
        "violation_rate": violations / pairs if pairs else 0.0,
        "threshold": threshold,
        "rerun_max_abs_diff": noise,
    }
