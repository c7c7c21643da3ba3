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
from pydantic import BaseModel


class ErrorOut(BaseModel):
    detail: str
    """One line saying what was wrong and, where it helps, what to do."""


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED = {401: _doc("Missing or unknown API key")}
NOT_FOUND = {404: _doc("No such object visible to this key")}
INVALID = {422: _doc("A parameter or body field is invalid; the detail names it")}
BODY = {
    408: _doc("The request body did not arrive in time"),
    413: _doc("The request body is too large"),
    415: _doc("The body's Content-Type is not accepted here"),
}
CONFLICT = {409: _doc("The object is not in a state that allows this")}
OVER_CAP = {429: _doc("An owner or service limit is reached; the detail names it")}

READ_ERRORS = UNAUTHORIZED | NOT_FOUND | INVALID
STREAM_ERRORS = OVER_CAP
JOB_ERRORS = UNAUTHORIZED | NOT_FOUND | INVALID | BODY | CONFLICT | OVER_CAP


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}

UPLOADS = {
    "/v1/artifacts": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    },
    "/v1/artifacts/import": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "record": {"type": "string", "description": "the folder's name"},
                        "dataset": {
                            "type": "string",
                            "description": "a served dataset; its tokenizer is the artifact's",
                        },
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "the folder's files by their own names "
                            "(train_gpt*.py, logs, submission.json, README.md)",
                        },
                        "artifact": {"type": "string", "format": "binary"},
                        "set": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "KEY=VALUE over the code's and the log's values",
                        },
                    },
                    "required": ["record", "dataset", "file", "artifact"],
                }
            }
        },
    },
}
"""Bodies the routes read themselves (streamed uploads), so FastAPI cannot describe them."""


def document_errors(app: FastAPI) -> None:
    """Make the app's OpenAPI document list, for every /v1 operation, the error responses
    it can send, each with the `{"detail": str}` body actually sent (422 included)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        doc.setdefault("components", {}).setdefault("schemas", {})["ErrorOut"] = (
            ErrorOut.model_json_schema()
        )
        for path, operations in doc.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for method, op in operations.items():
                extra: dict[int, dict[str, Any]] = UNAUTHORIZED | INVALID
                if "{" in path:
                    extra |= NOT_FOUND
                if method in ("post", "put", "patch"):
                    extra |= BODY
                if method == "post" and path in UPLOADS:
                    op.setdefault("requestBody", UPLOADS[path])
                responses = op.setdefault("responses", {})
                for status, info in extra.items():
                    responses.setdefault(str(status), {"description": info["description"]})
                for status, response in responses.items():
                    if status.startswith(("4", "5")):
                        response["content"] = {"application/json": {"schema": ERROR_REF}}
        doc["components"]["schemas"].pop("HTTPValidationError", None)
        doc["components"]["schemas"].pop("ValidationError", None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
