"""Change notification per job, fanned out to its Server-Sent Events streams.

The scheduler publishes after every stored batch and state change. A job that has open
streams has one feed: a task that, on a change, builds the job's view once (through
the read pool, off the event loop), renders it as one SSE frame and hands that same
frame to every stream of the job. Changes coalesce (at most four frames a second), so
a fast job never floods and 300 streams cost what one does, plus a write each. A
stream sends the latest frame, then each newer one, then the report, or `end` if the
job failed or was cancelled; a slow client skips to the newest frame.

Open streams are capped per owner and in total (`StreamLimit`, answered 429), and a
stream holds its place from admission until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from service.store import TERMINAL

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
MIN_INTERVAL_S = 0.25
"""At most four progress events a second per job, however fast batches land."""
MAX_WRITES_PER_S = 400
"""Frames written per second per job over all its streams: a job followed by more than
MAX_WRITES_PER_S * MIN_INTERVAL_S streams gets its frames less often (300 streams:
one every 0.75 s), so fan-out costs the event loop a bounded share."""

View = Callable[[], Awaitable[tuple[dict[str, Any], dict[str, Any] | None]]]
"""Returns the job object and, once it succeeded, its report."""


RELEASE_GROUP = 25
"""Streams woken per event-loop turn when a new frame is ready."""


class StreamLimit(Exception):
    """Too many open streams, for this owner or in total."""


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


class Feed:
    """The latest SSE frame of one job, rebuilt once per change for all its streams."""

    def __init__(self, job_id: str, view: View):
        self.job_id = job_id
        self.view = view
        self.version = 0
        self.frame = b""
        self.done = False
        self.streams = 0
        self.dirty = asyncio.Event()
        self.dirty.set()
        self._waiting: set[asyncio.Event] = set()
        self.task = asyncio.create_task(self._run(), name=f"feed-{job_id}")

    async def _run(self) -> None:
        while not self.done:
            await self.dirty.wait()
            self.dirty.clear()
            started = time.monotonic()
            try:
                job, report = await self.view()
            except Exception:
                log.exception("building the event of %s failed; retrying", self.job_id)
                await asyncio.sleep(1.0)
                self.dirty.set()
                continue
            frame = sse("progress", job)
            if job["state"] in TERMINAL:
                frame += sse("report", report) if report is not None else sse("end", job)
                self.done = True
            self.frame = frame.encode()  # encoded once for every stream
            self.version += 1
            await self._release()
            # Within the interval of this frame, wait: what changes meanwhile goes in one.
            interval = max(MIN_INTERVAL_S, self.streams / MAX_WRITES_PER_S)
            await asyncio.sleep(max(0.0, started + interval - time.monotonic()))

    async def _release(self) -> None:
        """Wake the waiting streams RELEASE_GROUP at a time, letting the loop serve other
        requests between groups (300 streams never stall it for one long burst)."""
        waiting, self._waiting = list(self._waiting), set()
        for i in range(0, len(waiting), RELEASE_GROUP):
            for waiter in waiting[i : i + RELEASE_GROUP]:
                waiter.set()
            await asyncio.sleep(0)

    async def wait_newer(self, version: int, timeout: float) -> bool:
        """True once a frame newer than `version` exists; False after `timeout`."""
        if self.version > version:
            return True
        waiter = asyncio.Event()
        self._waiting.add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout)
        except TimeoutError:
            return self.version > version
        finally:
            self._waiting.discard(waiter)
        return True


class Hub:
    """Feeds of the jobs that have open streams, and the stream caps (event loop only)."""

    def __init__(self, max_streams: int = 1024, max_streams_per_owner: int = 64) -> None:
        self.max_streams = max_streams
        self.max_streams_per_owner = max_streams_per_owner
        self._feeds: dict[str, Feed] = {}
        self._open: Counter[str] = Counter()

    def publish(self, job_id: str) -> None:
        feed = self._feeds.get(job_id)
        if feed is not None:
            feed.dirty.set()

    @property
    def open_streams(self) -> int:
        return sum(self._open.values())

    def admit(self, owner: str) -> Callable[[], None]:
        """Hold a stream place for `owner`; StreamLimit when none is left. Returns the
        release (idempotent)."""
        if self.open_streams >= self.max_streams:
            raise StreamLimit(
                f"this service has {self.max_streams} open streams, its limit (max_streams); "
                "retry later"
            )
        if self._open[owner] >= self.max_streams_per_owner:
            raise StreamLimit(
                f"{owner} has {self._open[owner]} open streams, the limit per owner "
                "(max_streams_per_owner); close one first"
            )
        self._open[owner] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[owner] -= 1
                if self._open[owner] <= 0:
                    del self._open[owner]

        return release

    @contextlib.contextmanager
    def _feed(self, job_id: str, view: View) -> Any:
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = Feed(job_id, view)
        feed.streams += 1
        try:
            yield feed
        finally:
            feed.streams -= 1
            if feed.streams == 0 and self._feeds.get(job_id) is feed:
                del self._feeds[job_id]
                feed.task.cancel()

    async def job_events(
        self, job_id: str, view: View, release: Callable[[], None]
    ) -> AsyncIterator[bytes]:
        """The SSE stream of one job (see the module docstring); `release` (from `admit`)
        is called when it ends."""
        try:
            with self._feed(job_id, view) as feed:
                seen = 0
                while True:
                    if not await feed.wait_newer(seen, KEEPALIVE_S):
                        yield b": keepalive\n\n"
                        continue
                    seen = feed.version
                    yield feed.frame
                    if feed.done:
                        return
        finally:
            release()
