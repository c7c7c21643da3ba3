"""Artifacts: upload (streamed, capped, validated by golf's safe reader, stored by sha256)
and look-up of a stored one's summary."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from golf.formats.artifact import read_artifact
from service.auth import CallerDep
from service.deps import StateDep
from service.errors import http_error
from service.schemas import ArtifactOut
from service.uploads import receive_file

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])


@router.post("", response_model=ArtifactOut)
async def upload_artifact(request: Request, caller: CallerDep, s: StateDep) -> ArtifactOut:
    """Multipart field `file`; the same bytes always give the same id. The part's file
    name is kept with the owner's upload (jobs list it as `filename`); errors name it."""
    settings = s.settings
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings.uploads_dir / f"{secrets.token_hex(8)}.part"
    try:
        sent: dict[str, str] = {}
        await receive_file(request, "file", tmp, settings.max_upload_bytes, sent)
        filename = sent.get("filename")
        async with s.validations:
            artifact = await run_in_threadpool(
                read_artifact,
                tmp,
                max_decompressed=settings.max_decompressed_bytes,
                name=filename or "the upload",
            )
        summary = artifact.summary()
        stored = settings.artifacts_dir / f"{artifact.sha256}.golf"
        if not _intact(stored, artifact.sha256):  # missing, or damaged: this upload repairs it
            os.replace(tmp, stored)
        s.store.put_artifact(summary, caller.owner, filename)
    finally:
        tmp.unlink(missing_ok=True)
    return ArtifactOut.from_summary(summary)


@router.get("/{artifact_id}", response_model=ArtifactOut)
async def get_artifact(artifact_id: str, caller: CallerDep, s: StateDep) -> ArtifactOut:
    """The summary stored at upload: config, bytes, budget verdict, provenance flags.

    An owner sees the artifacts they uploaded (admins all); others get 404 alike."""
    summary = s.store.artifact(artifact_id, None if caller.admin else caller.owner)
    if summary is None:
        raise http_error(404, f"unknown artifact {artifact_id}")
    return ArtifactOut.from_summary(summary)


def _intact(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except FileNotFoundError:
        return False
