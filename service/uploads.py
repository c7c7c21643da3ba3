"""Multipart uploads streamed straight to a temp file under a hard byte cap.

Starlette's form parser spools files without a limit; this parser writes the one file
field chunk by chunk and stops at the cap, so an oversize upload costs at most the cap
on disk, and nothing is kept in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

from service.errors import http_error

MULTIPART_SLACK = 64 * 1024
"""Room for boundaries and part headers when judging a declared Content-Length."""


class _OverCap(Exception):
    pass


MAX_FILENAME = 255


def multipart_boundary(request: Request, cap: int, expected: str) -> bytes:
    """The body's multipart boundary: 415 (`expected` says what) for a body that is not
    multipart/form-data, 413 for a declared Content-Length past `cap` and the slack."""
    mime, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise http_error(415, expected)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap + MULTIPART_SLACK:
        raise http_error(413, f"upload of {declared} bytes exceeds the limit of {cap} bytes")
    return boundary


class PartHeaders:
    """One part's header lines as the parser hands them over piecewise (`callbacks`);
    `disposition()` gives its Content-Disposition parameters (name, filename) once its
    headers are finished, and readies for the next part."""

    def __init__(self) -> None:
        self._lines: list[tuple[bytes, bytes]] = []
        self._name = self._value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_header_field": self._on_field,
            "on_header_value": self._on_value,
            "on_header_end": self._on_end,
        }

    def disposition(self) -> dict[bytes, bytes]:
        params = parse_options_header(dict(self._lines).get(b"content-disposition", b""))[1]
        self._lines.clear()
        return params

    def _on_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _on_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_end(self) -> None:
        self._lines.append((self._name.lower(), self._value))
        self._name = self._value = b""


def safe_filename(sent: bytes | None) -> str | None:
    """A sent file name's last path component, printable and at most MAX_FILENAME long."""
    if not sent:
        return None
    text = sent.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if c.isprintable())[:MAX_FILENAME].strip()
    return text or None


async def receive_file(
    request: Request, field: str, dest: Path, cap: int, meta: dict[str, str] | None = None
) -> int:
    """Write multipart field `field` of the request body to `dest`; returns its size.
    With `meta`, the part's `filename` (its base name, if it sent one) is put there.

    413 past `cap` bytes (by Content-Length up front, else while streaming); 415 for a
    body that is not multipart; 422 for a malformed body or a missing field.
    """
    boundary = multipart_boundary(
        request, cap, f"expected multipart/form-data with the file in field `{field}`"
    )
    size = other = 0
    found = False
    in_field = False
    headers = PartHeaders()

    with dest.open("wb") as out:

        def on_headers_finished() -> None:
            nonlocal in_field, found
            params = headers.disposition()
            in_field = params.get(b"name") == field.encode()
            if in_field and found:
                raise MultipartParseError(f"field `{field}` appears more than once")
            found = found or in_field
            if in_field and meta is not None and (name := safe_filename(params.get(b"filename"))):
                meta["filename"] = name

        def on_part_data(data: bytes, start: int, end: int) -> None:
            nonlocal size, other
            if in_field:
                size += end - start
                if size > cap:
                    raise _OverCap
                out.write(data[start:end])
            else:  # other fields are read, never kept, and capped all the same
                other += end - start
                if other > cap:
                    raise _OverCap

        parser = MultipartParser(
            boundary,
            {
                **headers.callbacks(),
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
            },
        )
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except _OverCap:
            raise http_error(413, f"upload exceeds the limit of {cap} bytes") from None
        except MultipartParseError as e:
            raise http_error(422, f"malformed multipart body: {e}") from None
    if not found:
        raise http_error(422, f"multipart field `{field}` is missing")
    return size
