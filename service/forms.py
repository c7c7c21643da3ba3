"""Multipart forms of several named files and short text fields, streamed under caps.

`receive_form` is `receive_file`'s sibling (service/uploads.py) for a route that takes
a set of files, each by its own name (POST /v1/artifacts/import: a record folder's files
and its artifact). Each file part is written chunk by chunk to `dest/<field>/<name>`;
only the short text fields are kept in memory. Refused in one line, before or while the
body streams in (the rest of the body is never read):

- 415: a body that is not multipart/form-data; a file whose name does not end in one of
  its field's suffixes;
- 413: a declared Content-Length over the total cap; the parts' bytes over it while
  streaming; a file over its field's cap; more file parts than `max_files`; a text value
  over TEXT_CAP bytes or more than MAX_TEXT_VALUES of them;
- 422: a malformed body; a field the route does not take; a file part without a file
  name, or whose name is a path (`/`, `\\`), `.` or `..`, hidden (a leading `.`), not
  printable UTF-8, or longer than MAX_FILENAME; one name twice in a field; a second value
  of a single-valued field; a text value that is not UTF-8; a required field missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import Request
from python_multipart.multipart import MultipartParseError, MultipartParser

from service.errors import http_error
from service.uploads import MAX_FILENAME, PartHeaders, multipart_boundary

TEXT_CAP = 4096
"""Bytes of one text value (a name, a `KEY=VALUE`)."""
MAX_TEXT_VALUES = 256


@dataclass(frozen=True)
class FileField:
    """A file field: `cap` bytes per file, `many` files or one, accepted name endings
    (lower-case; empty: any name)."""

    cap: int
    many: bool = False
    required: bool = False
    suffixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextField:
    many: bool = False
    required: bool = False


@dataclass
class Form:
    """What a form held: per file field the paths written, per text field its values."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)

    def text(self, name: str, default: str | None = None) -> str | None:
        values = self.texts.get(name)
        return values[0] if values else default


class Refused(Exception):
    """A part refused while parsing: (status, one-line reason)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def part_filename(sent: bytes | None, field_name: str) -> str:
    """A file part's name as sent, refused unless it is a plain file name (see the
    module doc): never shortened or cleaned, so that what is stored is what was named."""
    if not sent:
        raise Refused(422, f"a part of field `{field_name}` has no file name")
    try:
        name = sent.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(422, f"a file name of field `{field_name}` is not UTF-8") from None
    shown = repr(name[:80])
    if "/" in name or "\\" in name:
        raise Refused(422, f"file name {shown} is a path; send bare file names")
    if name in (".", "..") or name.startswith("."):
        raise Refused(422, f"file name {shown} is hidden or a directory name")
    if not name.isprintable() or name != name.strip():
        raise Refused(422, f"file name {shown} has unprintable characters or blanks around it")
    if len(name) > MAX_FILENAME:
        raise Refused(422, f"file name {shown}… is longer than {MAX_FILENAME} characters")
    return name


async def receive_form(
    request: Request,
    dest: Path,
    files: dict[str, FileField],
    texts: dict[str, TextField],
    *,
    total_cap: int,
    max_files: int,
) -> Form:
    """Parse the request's multipart body into `dest` (see the module doc)."""
    boundary = multipart_boundary(request, total_cap, "expected a multipart/form-data body")
    form = Form()
    state: dict[str, Any] = {"total": 0, "files": 0, "texts": 0, "out": None}
    part: dict[str, Any] = {}
    headers = PartHeaders()

    def on_headers_finished() -> None:
        params = headers.disposition()
        field_name = params.get(b"name", b"").decode("utf-8", "replace")
        part.clear()
        part.update(field=field_name, size=0)
        if field_name in files:
            _open_file(field_name, params.get(b"filename"))
        elif field_name in texts:
            if form.texts.get(field_name) and not texts[field_name].many:
                raise Refused(422, f"field `{field_name}` is given more than once")
            state["texts"] += 1
            if state["texts"] > MAX_TEXT_VALUES:
                raise Refused(413, f"more than {MAX_TEXT_VALUES} text values")
            part["text"] = bytearray()
        else:
            known = ", ".join(f"`{k}`" for k in (*files, *texts))
            raise Refused(422, f"unknown field `{field_name[:80]}`; this route takes {known}")

    def _open_file(field_name: str, sent: bytes | None) -> None:
        rule = files[field_name]
        filename = part_filename(sent, field_name)
        if rule.suffixes and not filename.lower().endswith(rule.suffixes):
            kinds = ", ".join(rule.suffixes)
            raise Refused(415, f"file {filename!r} of field `{field_name}`: expected {kinds}")
        paths = form.files.setdefault(field_name, [])
        if paths and not rule.many:
            raise Refused(422, f"field `{field_name}` takes one file")
        if any(p.name == filename for p in paths):
            raise Refused(422, f"file {filename!r} is sent twice in field `{field_name}`")
        state["files"] += 1
        if state["files"] > max_files:
            raise Refused(413, f"more than {max_files} files")
        folder = dest / field_name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        paths.append(path)
        state["out"] = path.open("xb")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        n = end - start
        state["total"] += n
        if state["total"] > total_cap:
            raise Refused(413, f"upload exceeds the limit of {total_cap} bytes")
        part["size"] += n
        field_name = part.get("field", "")
        if state["out"] is not None:
            cap = files[field_name].cap
            if part["size"] > cap:
                shown = form.files[field_name][-1].name
                raise Refused(413, f"file {shown!r} exceeds the limit of {cap} bytes")
            state["out"].write(data[start:end])
        elif "text" in part:
            if part["size"] > TEXT_CAP:
                raise Refused(413, f"a value of field `{field_name}` exceeds {TEXT_CAP} bytes")
            part["text"] += data[start:end]

    def on_part_end() -> None:
        out: IO[bytes] | None = state["out"]
        if out is not None:
            out.close()
            state["out"] = None
        if "text" in part:
            try:
                text = bytes(part["text"]).decode("utf-8")
            except UnicodeDecodeError:
                raise Refused(422, f"field `{part['field']}` is not UTF-8 text") from None
            form.texts.setdefault(part["field"], []).append(text)

    parser = MultipartParser(
        boundary,
        {
            **headers.callbacks(),
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    dest.mkdir(parents=True, exist_ok=True)
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except Refused as e:
        raise http_error(e.status, str(e)) from None
    except MultipartParseError as e:
        raise http_error(422, f"malformed multipart body: {e}") from None
    finally:
        if state["out"] is not None:
            state["out"].close()
    for field_name, rule in (*files.items(), *texts.items()):
        if rule.required and not (form.files.get(field_name) or form.texts.get(field_name)):
            raise http_error(422, f"multipart field `{field_name}` is missing")
    return form
