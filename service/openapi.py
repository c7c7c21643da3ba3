"""The error responses of every operation, documented as they are sent.

Every failure is `{"detail": "<one line>"}` (service/errors.py), 422 included, so the
OpenAPI document says so instead of FastAPI's default list-shaped 422; and each
operation lists the statuses it can answer: 401 (no or unknown key), 404 (a path id
the caller cannot see), 408/413 (a body too slow or too large), 409/429 where a route
refuses by state or by cap.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from pydantic import BaseModel


class ErrorOut(BaseModel):
    detail: str
    """One line saying what was wrong and, where it helps, what to do."""


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED = {401: _doc("Missing or unknown API key.")}
NOT_FOUND = {404: _doc("No such object visible to this key.")}
INVALID = {422: _doc("A parameter or body field is invalid; the detail names it.")}
BODY = {
    408: _doc("The request body did not arrive in time."),
    413: _doc("The request body is too large."),
    415: _doc("The body's Content-Type is not accepted here."),
}
CONFLICT = {409: _doc("The object is not in a state that allows this.")}
OVER_CAP = {429: _doc("An owner or service limit is reached; the detail names it.")}

READ_ERRORS = UNAUTHORIZED | NOT_FOUND | INVALID
STREAM_ERRORS = OVER_CAP
JOB_ERRORS = UNAUTHORIZED | NOT_FOUND | INVALID | BODY | CONFLICT | OVER_CAP


def document_errors(app: FastAPI) -> None:
    """Give every /v1 operation the error responses it can send (run before the OpenAPI
    document is first built); routes keep what they declared themselves."""
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/v1/"):
            continue
        extra: dict[int, dict[str, Any]] = UNAUTHORIZED | INVALID
        if "{" in route.path:
            extra |= NOT_FOUND
        if route.methods & {"POST", "PUT", "PATCH"}:
            extra |= BODY
        for status, doc in extra.items():
            route.responses.setdefault(status, doc)
        # FastAPI builds its response docs when the route is made: rebuild them.
        route.response_fields = {
            status: create_model_field(
                name=f"Response_{status}_{route.unique_id}",
                type_=response["model"],
                mode="serialization",
            )
            for status, response in route.responses.items()
            if response.get("model") is not None
        }
