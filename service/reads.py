"""Store reads off the event loop: a few threads, each with its own read-only connection.

A read on the loop stalls every request and stream while it runs; a read in a thread
that shares the writer's connection waits on its lock and makes the loop's writes wait
on it. Here each read thread opens its own connection (`Store.reader`) once, so a slow
read (a report, a page of windows) costs one thread and blocks nobody.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from service.store import Store

T = TypeVar("T")


class ReadPool:
    """`await reads(fn, *args)` runs `fn(store, *args)` on a read thread's own connection."""

    def __init__(self, path: Path, threads: int = 4, record_key: bytes | None = None):
        self.path = path
        self.record_key = record_key
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="golf-read")
        self._local = threading.local()
        self._opened: list[Store] = []
        self._lock = threading.Lock()

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, fn, args)

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.reader(self.path, self.record_key)
            with self._lock:
                self._opened.append(store)
        return fn(store, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for store in self._opened:
                store.close()
            self._opened.clear()
