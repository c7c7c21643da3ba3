"""SIMULATION ONLY: a synthetic scorer for load-testing the service, never for scores.

`golf serve` with `GOLF_WORKER_SCORER=synthetic` (or `synthetic:RATE`, windows per
second per worker) makes every actor answer shards with window records computed from
the window index alone: no model is loaded and nothing is evaluated. The records have
the plan's exact windows and scored-token counts and valid checksums, so the service
stores, verifies and reports them as it would real ones; only the NLL and byte values
are made up. `bench/service_scale.py` uses it to measure ingest, storage and API
latency at full FineWeb-val scale without the GPU time a real pass needs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import ray

from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.registry import get_protocol
from workers.integrity import ShardDigest, record_checksum
from workers.task import ShardTask

ENGINE = {
    "device": "cpu",
    "device_name": "synthetic scorer (SIMULATION, no model)",
    "precision": "fp32",
    "attention": "none",
    "compiled": False,
    "slot_kernel": "torch",
    "torch": "none",
}
"""What a synthetic shard reports as its engine, so a simulated report says so."""


def parse_scorer(scorer: str) -> float | None:
    """The per-worker rate (windows/s) of a `synthetic[:RATE]` scorer; None = unpaced."""
    _, _, rate = scorer.partition(":")
    return float(rate) if rate else None


@lru_cache(maxsize=8)
def _scored(protocol: str, n_targets: int, params: EvalParams) -> list[int]:
    """Scored targets of each window of the protocol's plan."""
    plan = get_protocol(protocol).plan(n_targets, params)
    return (plan.lengths - plan.score_from).tolist()


_n_tokens: dict[str, int] = {}  # dataset key -> token count (the tokens are not kept)


def synthetic_shard(task: ShardTask, scorer: str) -> Iterator[dict[str, Any]]:
    """Yield the batches of `task` as `EvalWorker.run_shard` does, with made-up values:
    window w scores its plan's tokens at a deterministic NLL and byte count."""
    if get_protocol(task.protocol).sequential:
        raise ConfigError(
            f"the synthetic scorer simulates window plans only, not {task.protocol!r}'s "
            "document batches"
        )
    rate = parse_scorer(scorer)
    key = task.tokens.key
    if key not in _n_tokens:
        _n_tokens[key] = int(ray.get(task.tokens.ref).size)
    scored = _scored(task.protocol, _n_tokens[key] - 1, task.params)
    B = task.params.batch_windows
    digest = ShardDigest()
    for k in range(task.batch_lo, task.batch_hi):
        started = time.perf_counter()
        records = []
        for w in range(k * B, min((k + 1) * B, len(scored))):
            tokens = scored[w]
            n_bytes = 4 * tokens + w % 7
            nll = tokens * (2.0 + (w * 2654435761 % 1000) / 1000)
            records.append(
                {
                    "window": w,
                    "nll_sum": nll,
                    "tokens": tokens,
                    "bytes": n_bytes,
                    "checksum": record_checksum(
                        task.record_key, task.job, task.protocol, w, nll, tokens, n_bytes
                    ),
                }
            )
        if rate:
            time.sleep(max(0.0, len(records) / rate - (time.perf_counter() - started)))
        yield {
            "batch": k,
            "seconds": time.perf_counter() - started,
            "records": records,
            "engine": ENGINE,
            "digest": digest.update(r["checksum"] for r in records),
        }
