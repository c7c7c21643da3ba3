"""The database's health as /healthz reports it: `PRAGMA quick_check`, run periodically.

`SELECT 1` succeeds on a database whose pages or WAL frames are garbage; a quick check
reads every page and does not. It costs a full read, so it runs every `quick_check_s`
seconds in a read thread (never per request) and /healthz reports its last result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from service.reads import ReadPool

log = logging.getLogger(__name__)


class DbHealth:
    def __init__(self, reads: ReadPool, every_s: float):
        self.reads = reads
        self.every_s = every_s
        self.error: str | None = None
        self.checked_at: float | None = None
        self._task: asyncio.Task | None = None

    async def check(self) -> str | None:
        """Run one quick check now; its finding (None: sound) is kept for /healthz."""
        try:
            error = await self.reads(lambda store: store.quick_check())
        except Exception as e:  # the database cannot even be opened or read
            error = f"{type(e).__name__}: {e}"
        if error is not None and error != self.error:
            log.error("database quick_check failed: %s", error)
        self.error, self.checked_at = error, time.time()
        return error

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="db-quick-check")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.every_s)
