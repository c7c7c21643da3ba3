"""Reviews: POST a record folder as a tarball, get `golf review`'s verdict back.

The upload is the same streamed multipart `file` field as an artifact, under the same
byte cap (`max_upload_bytes`); the tarball (plain, gzip, bzip2 or xz) is read member by
member, never extracted blindly:

- a member must be a regular file or a directory: links (symbolic or hard), devices,
  FIFOs and sparse files are refused (422, naming the member);
- its path must be relative, without `..`, at most `MAX_DEPTH` parts below the record
  folder (a single top-level directory, when every member is under one, is the folder);
- only the listed file types are kept (`KEPT_SUFFIXES`: code, logs, JSON, text); others
  (images, tokenizer models, shell scripts) are skipped and listed in the response;
- at most `MAX_MEMBERS` members, each at most `MAX_MEMBER_BYTES`, all together at most
  `max_decompressed_bytes` as extracted — counted while reading, so a decompression bomb
  stops at the cap (413).

The folder is then reviewed by golf.review (static checks only: no artifact, no
execution) in a worker thread, and deleted. `?format=md` returns the markdown review.
"""

from __future__ import annotations

import secrets
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from golf.review import review_folder
from golf.review.render import render_markdown
from service.auth import CallerDep
from service.deps import StateDep
from service.errors import http_error
from service.uploads import receive_file

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])

KEPT_SUFFIXES = (".py", ".log", ".txt", ".json", ".md")
MAX_MEMBERS = 512
MAX_MEMBER_BYTES = 64 * 2**20
MAX_DEPTH = 3
CHUNK = 1 << 20


class Refused(Exception):
    """A tar member or the tarball itself is refused: (status, one-line reason)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def extract_record(tar_path: Path, dest: Path, max_total: int) -> tuple[Path, list[str]]:
    """The record folder of `tar_path` written under `dest` (see the module doc);
    returns the folder and the skipped members. Raises Refused."""
    try:
        tar = tarfile.open(tar_path, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise Refused(422, f"not a tar archive ({type(e).__name__})") from None
    members: list[tarfile.TarInfo] = []
    total = 0
    skipped: list[str] = []
    try:
        with tar:
            for n, member in enumerate(tar):
                if n >= MAX_MEMBERS:
                    raise Refused(413, f"more than {MAX_MEMBERS} members")
                parts = _parts(member.name)
                if member.isdir():
                    continue
                if not member.isreg() or member.issparse():
                    kind = "link" if member.issym() or member.islnk() else "special file"
                    raise Refused(422, f"member {member.name!r} is a {kind}, not a regular file")
                if member.size > MAX_MEMBER_BYTES:
                    raise Refused(413, f"member {member.name!r} is over {MAX_MEMBER_BYTES:,} bytes")
                if not parts[-1].lower().endswith(KEPT_SUFFIXES):
                    skipped.append("/".join(parts))
                    continue
                total += member.size
                if total > max_total:
                    raise Refused(413, f"the archive extracts to more than {max_total:,} bytes")
                members.append(member)
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    raise Refused(422, f"member {member.name!r} cannot be read")
                written = 0
                with src, open(target, "wb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > member.size:
                            raise Refused(422, f"member {member.name!r} is longer than declared")
                        out.write(chunk)
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise Refused(422, f"the tar archive is damaged ({type(e).__name__})") from None
    if not members:
        raise Refused(422, "no record files in the archive (.py, .log, .txt, .json, .md)")
    tops = {_parts(m.name)[0] for m in members}
    nested = all(len(_parts(m.name)) > 1 for m in members)
    folder = dest / tops.pop() if len(tops) == 1 and nested else dest
    return folder, skipped


def _parts(name: str) -> list[str]:
    path = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or name.startswith(("/", "\\")):
        raise Refused(422, f"member {name!r} has an absolute path")
    if ".." in parts:
        raise Refused(422, f"member {name!r} leaves the archive (..)")
    if not parts or len(parts) > MAX_DEPTH + 1:
        raise Refused(422, f"member {name!r} is nested too deep")
    if any(not p.isprintable() for p in parts):
        raise Refused(422, f"member {name!r} has unprintable characters")
    return parts


@router.post("", response_model=None)
async def review_upload(
    request: Request, caller: CallerDep, s: StateDep, format: str = "json"
) -> Any:
    """Multipart field `file`: a tarball of one record folder. The review as JSON (the
    `golf review --format json` document plus `skipped`), or markdown with `format=md`."""
    if format not in ("json", "md"):
        raise http_error(422, f"format {format!r}: expected json or md")
    settings = s.settings
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    tmp = settings.uploads_dir / f"{token}.tar.part"
    work = settings.uploads_dir / f"{token}.review"
    try:
        await receive_file(request, "file", tmp, settings.max_upload_bytes)
        work.mkdir()
        async with s.validations:
            try:
                folder, skipped = await run_in_threadpool(
                    extract_record, tmp, work, settings.max_decompressed_bytes
                )
            except Refused as e:
                raise http_error(e.status, str(e)) from None
            review = await run_in_threadpool(review_folder, folder)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    if format == "md":
        return PlainTextResponse(render_markdown(review), media_type="text/markdown")
    return review.as_dict() | {"skipped": skipped}
