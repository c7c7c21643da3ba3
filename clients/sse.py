"""A Server-Sent Events decoder, fed line by line (the service's streams are small and
JSON-only, so this avoids a dependency for twenty lines of the HTML spec)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple


class Event(NamedTuple):
    """One SSE event: its `event:` name and its `data:` parsed as JSON."""

    event: str
    data: Any


class SSEDecoder:
    """Accumulates `event:`/`data:` fields and emits an Event at each blank line."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):  # comment: the server's keep-alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None  # `id:` and `retry:` are not used: a reconnecting client re-reads state

    def _dispatch(self) -> Event | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return Event(event, json.loads("\n".join(data)))
