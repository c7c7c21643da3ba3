"""Every failure a client sees is `{"detail": "<one line>"}` with a fitting status.

User mistakes are golf's typed errors and keep their message; anything else is a bug,
logged with its traceback and answered 500 without one, and the server keeps serving.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {one_line(exc)}"}, status_code=500)
