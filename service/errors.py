"""Every failure a client sees is `{"detail": "<one line>"}` with a fitting status.

User mistakes are golf's typed errors and keep their message; anything else is a bug,
logged with its traceback and answered 500 without one, and the server keeps serving.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray.exceptions import RayTaskError
from starlette.exceptions import HTTPException

from golf.formats.artifact import TooLarge
from golf.spec.errors import GolfError, MismatchError, validation_message

log = logging.getLogger(__name__)


def one_line(exc: BaseException) -> str:
    """A failure as one line: a GolfError's own message, else `Type: message`."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, GolfError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_NODE_DETAILS = re.compile(
    r"\b(?:ip|pid|actor_id|node_id|worker_id|job_id|task_id)=[^,)\s]+"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"
    r"|\b[0-9a-f]{24,}\b",
    re.IGNORECASE,
)


def public(text: str) -> str:
    """`text` without the cluster's internals (node IPs, process and actor ids), for the
    error an owner reads; the operator's log keeps the full text."""
    return " ".join(_NODE_DETAILS.sub("…", text).split())


def worker_death(exc: BaseException) -> str:
    """Why a worker died, in words an owner may read (no node, process or actor ids)."""
    text = str(exc).lower()
    if "out of memory" in text or "outofmemory" in text or "oom" in text.split():
        return "the worker ran out of memory"
    if "ray.kill" in text:
        return "the worker was killed"
    if "node" in text and ("died" in text or "dead" in text or "removed" in text):
        return "the worker's node was lost"
    return "the worker process died"


def golf_status(exc: GolfError) -> int:
    """413 for a file over the cap, 409 for artifact/dataset disagreement, else 422."""
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, MismatchError):
        return 409
    return 422


def http_error(status: int, detail: str) -> HTTPException:
    return HTTPException(status, " ".join(detail.split()))


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(GolfError)
    async def golf_error(_: Request, exc: GolfError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=golf_status(exc))

    @app.exception_handler(HTTPException)
    async def http_exception(request: Request, exc: HTTPException) -> Response:
        # FastAPI answers a body it cannot parse (not JSON) with 400; it is invalid input
        # like any other, so it is 422 with a one-line detail, as documented.
        if exc.status_code == 400:
            return JSONResponse(
                {"detail": f"body: cannot be parsed ({exc.detail})"}, status_code=422
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {one_line(exc)}"}, status_code=500)
