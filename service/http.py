"""Connection limits uvicorn lacks: a deadline for each request head, and a connection cap.

uvicorn times out idle keep-alive connections, but a connection that never completes
its first request head (a slowloris client sending a header byte now and then) stays
open for good, and each costs a file descriptor. This protocol closes a connection
whose request head is not complete `header_timeout_s` after it opened (or after its
previous response), and closes new connections at once past `max_connections`.
A reverse proxy in front (docker/nginx.conf) enforces the same at the edge.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def limited_protocol(header_timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """An H11Protocol class enforcing the two limits (uvicorn.Config(http=...))."""

    class LimitedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._head_timer: asyncio.TimerHandle | None = None
            self._waiting_cycle: Any = None
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.abort()
                return
            self._await_head()

        def _await_head(self) -> None:
            """Start the clock for the next request head."""
            self._cancel_head_timer()
            self._waiting_cycle = self.cycle
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.cycle is self._waiting_cycle and not self.transport.is_closing():
                self.transport.close()  # no complete request head in time

        def handle_events(self) -> None:
            super().handle_events()
            if self._head_timer is not None and self.cycle is not self._waiting_cycle:
                self._cancel_head_timer()  # a request head arrived: the app has it now

        def on_response_complete(self) -> None:
            super().on_response_complete()
            idle = self.cycle is None or self.cycle.response_complete  # not a pipelined next
            if idle and not self.transport.is_closing():
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    return LimitedH11Protocol
