"""Cheap rejection before any work: authenticate, cap and time-box every request body.

A pure ASGI middleware, so it acts before FastAPI reads a byte of the body:
- a request with a body to the API must carry a known key, else 401 at once (an
  unauthenticated client never makes the server read, parse or store its upload);
- multipart bodies are accepted on the upload routes (UPLOAD_PATHS) only, 415 unread
  elsewhere; every other body may hold at most `max_json_bytes` whatever its
  Content-Type says (413, by Content-Length up front, else while it streams in);
- the whole body must arrive within a deadline (408): a client that stalls mid-body
  holds a connection, never a temp file or a parser, for longer than that.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException

from service.auth import ApiKeys

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

BODY_METHODS = {b"POST", b"PUT", b"PATCH", "POST", "PUT", "PATCH"}
UPLOAD_PATHS = frozenset({"/v1/artifacts", "/v1/artifacts/import", "/v1/reviews"})
"""Where a multipart body (an artifact, a record folder and its artifact, a record's
tarball: each capped by max_upload_bytes) is accepted."""


class BodyRejected(HTTPException):
    """Raised inside the app's body reads. An HTTPException, so FastAPI's body parsing
    passes it through untouched and the client gets this status and detail."""


class RequestLimits:
    """ASGI middleware enforcing the body rules above on `/v1/` requests."""

    def __init__(
        self,
        app: Any,
        keys: ApiKeys,
        *,
        max_json_bytes: int,
        json_deadline_s: float,
        upload_deadline_s: float,
    ):
        self.app = app
        self.keys = keys
        self.max_json_bytes = max_json_bytes
        self.json_deadline_s = json_deadline_s
        self.upload_deadline_s = upload_deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in BODY_METHODS
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        if self._caller(headers) is None:
            await _answer(send, 401, "missing or unknown API key: send `Authorization: Bearer KEY`")
            return
        multipart = headers.get(b"content-type", b"").lower().lstrip().startswith(b"multipart/")
        upload = multipart and scope["path"].rstrip("/") in UPLOAD_PATHS
        if multipart and not upload:
            await _answer(send, 415, "multipart bodies are accepted on upload routes only")
            return
        cap = None if upload else self.max_json_bytes
        declared = headers.get(b"content-length", b"")
        if cap is not None and declared.isdigit() and int(declared) > cap:
            await _answer(send, 413, f"request body of {int(declared)} bytes exceeds {cap} bytes")
            return
        deadline = time.monotonic() + (self.upload_deadline_s if upload else self.json_deadline_s)
        await self.app(scope, _limited(receive, cap, deadline), send)

    def _caller(self, headers: dict[bytes, bytes]) -> object | None:
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        return self.keys.lookup(key.strip()) if scheme.lower() == "bearer" else None


def _limited(receive: Receive, cap: int | None, deadline: float) -> Receive:
    """`receive` that raises BodyRejected past `cap` bytes or after `deadline`."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        remaining = deadline - time.monotonic()
        try:
            message = await asyncio.wait_for(receive(), max(remaining, 0.001))
        except TimeoutError:
            raise BodyRejected(408, "request body not received in time") from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if cap is not None and seen > cap:
                raise BodyRejected(413, f"request body exceeds {cap} bytes")
        return message

    return wrapped


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    # The body is never read: close the connection rather than drain what is left of it.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
