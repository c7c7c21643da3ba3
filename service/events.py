"""Change notification per job and its Server-Sent Events stream.

The scheduler publishes after every stored batch and state change; a stream sends the
job's latest state (changes coalesce, at most four a second, so a slow client never
falls behind and a fast job never floods one), then the
report, or `end` if the job failed or was cancelled.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from service.store import TERMINAL

KEEPALIVE_S = 15.0
MIN_INTERVAL_S = 0.25
"""At most four progress events a second per stream, however fast batches land."""


class Hub:
    """Per-job wake-ups for the event streams (event-loop only)."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def publish(self, job_id: str) -> None:
        for event in self._subscribers.get(job_id, ()):
            event.set()

    def subscribe(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._subscribers[job_id].add(event)
        return event

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None:
        self._subscribers[job_id].discard(event)
        if not self._subscribers[job_id]:
            del self._subscribers[job_id]


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def job_events(
    hub: Hub, job_id: str, view: Callable[[], tuple[dict[str, Any], dict[str, Any] | None]]
) -> AsyncIterator[str]:
    """`progress` on every change, then `report` (succeeded) or `end` (failed, cancelled).

    `view()` returns the job object and, once it succeeded, its report.
    """
    changed = hub.subscribe(job_id)
    try:
        while True:
            changed.clear()
            job, report = view()
            yield sse("progress", job)
            sent = time.monotonic()
            if job["state"] in TERMINAL:
                yield sse("report", report) if report is not None else sse("end", job)
                return
            try:
                await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            # Within MIN_INTERVAL_S of the last event, wait: what changes meanwhile goes in one.
            await asyncio.sleep(max(0.0, sent + MIN_INTERVAL_S - time.monotonic()))
    finally:
        hub.unsubscribe(job_id, changed)
