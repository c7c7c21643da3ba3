"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from service.store import ACTIVE, TERMINAL, Store

RATE_WINDOW_S = 30.0
SHARD_STATES = ("queued", "running", "done", "cancelled", "failed")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("golf_jobs", "Jobs by state.", ["state"], registry=self.registry)
        self.shards = Gauge("golf_shards", "Shards by state.", ["state"], registry=self.registry)
        self.windows = Counter("golf_windows", "Windows stored.", registry=self.registry)
        self.rate = Gauge(
            "golf_windows_per_second",
            f"Windows stored per second over the last {RATE_WINDOW_S:g} s.",
            registry=self.registry,
        )
        self.busy = Counter(
            "golf_worker_busy_seconds",
            "Time each worker spent on shards.",
            ["worker"],
            registry=self.registry,
        )
        self._recent: deque[tuple[float, int]] = deque()

    def windows_done(self, n: int) -> None:
        self.windows.inc(n)
        self._recent.append((time.monotonic(), n))

    def worker_busy(self, worker: str, seconds: float) -> None:
        self.busy.labels(worker).inc(seconds)

    def render(self, store: Store) -> bytes:
        """The text exposition, with the state gauges read from the store now."""
        jobs = store.job_counts()
        for state in ACTIVE + TERMINAL:
            self.jobs.labels(state).set(jobs.get(state, 0))
        shards = store.shard_counts()
        for state in SHARD_STATES:
            self.shards.labels(state).set(shards.get(state, 0))
        horizon = time.monotonic() - RATE_WINDOW_S
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        self.rate.set(sum(n for _, n in self._recent) / RATE_WINDOW_S)
        return generate_latest(self.registry)
