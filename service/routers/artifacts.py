"""Artifacts: upload (streamed, capped, validated by golf's safe reader, stored by sha256),
import of a record folder's artifact (`golf import`'s conversion, on the server), and
look-up of a stored one's summary."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from golf.formats.artifact import read_artifact
from golf.formats.board import describe, import_record
from golf.record import parse_override
from golf.record.source import MAX_SUBMITTED_BYTES
from golf.spec.records import ArtifactSummary
from service.auth import CallerDep
from service.deps import AppState, StateDep
from service.errors import http_error
from service.forms import FileField, TextField, receive_form
from service.openapi import NOT_FOUND
from service.schemas import ArtifactOut, RecordImportOut
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
        _store(s, tmp, summary, caller.owner, filename)
    finally:
        tmp.unlink(missing_ok=True)
    return ArtifactOut.from_summary(summary)


RECORD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
"""A record folder's name as the board spells them (`2026-03-25_ValCalib_GPTQ_…`)."""
RECORD_SUFFIXES = (".py", ".log", ".txt", ".json", ".md")
"""The record files the import reads: code, logs, submission.json, README."""
MAX_RECORD_FILES = 64


@router.post("/import", response_model=RecordImportOut, responses=NOT_FOUND)
async def import_record_upload(request: Request, caller: CallerDep, s: StateDep) -> RecordImportOut:
    """`golf import RECORD_DIR --artifact F` on the server. Multipart fields: `record`
    (the folder's name), `dataset` (a served dataset: its tokenizer is the one the
    artifact was trained with), `file` (the folder's files by their own names: train_gpt.py
    and its decode sibling, logs, submission.json, README.md; repeatable), `artifact`
    (the record's artifact, e.g. final_model.int6.ptz) and `set` (`KEY=VALUE`,
    repeatable). The same code as `golf import` reads the folder (never running it) and
    converts the artifact; the `.golf` is stored and summarised as an upload's."""
    settings = s.settings
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    work = settings.uploads_dir / f"{secrets.token_hex(8)}.import"
    try:
        form = await receive_form(
            request,
            work / "parts",
            {
                "file": FileField(
                    MAX_SUBMITTED_BYTES, many=True, required=True, suffixes=RECORD_SUFFIXES
                ),
                "artifact": FileField(settings.max_upload_bytes, required=True),
            },
            {
                "record": TextField(required=True),
                "dataset": TextField(required=True),
                "set": TextField(many=True),
            },
            total_cap=settings.max_upload_bytes,
            max_files=MAX_RECORD_FILES + 1,
        )
        record = form.text("record") or ""
        if not RECORD_NAME.fullmatch(record):
            raise http_error(
                422, f"record {record[:80]!r}: a folder name of letters, digits, . _ + -"
            )
        dataset = s.datasets.get(form.text("dataset") or "")
        if dataset is None:
            named = form.text("dataset")
            raise http_error(404, f"unknown dataset {named!r}; see GET /v1/datasets")
        overrides = dict(parse_override(item) for item in form.texts.get("set", []))
        folder = work / "record" / record
        folder.parent.mkdir()
        (work / "parts" / "file").rename(folder)
        (artifact,) = form.files["artifact"]
        out = work / "imported.golf"
        async with s.validations:
            imported = await run_in_threadpool(
                import_record,
                folder,
                artifact,
                out,
                tokenizer=dataset.tokenizer_path,
                overrides=overrides,
                max_decompressed=settings.max_decompressed_bytes,
            )
        summary = imported.artifact.summary()
        _store(s, out, summary, caller.owner, f"{record}.golf")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    decisions = describe(imported).splitlines()
    return RecordImportOut.from_import(summary, imported.format, imported.facts.arch, decisions)


def _store(s: AppState, path: Path, summary: ArtifactSummary, owner: str, name: str | None) -> None:
    """Keep the validated file `path` as the artifact `summary` names, for `owner`."""
    stored = s.settings.artifacts_dir / f"{summary.sha256}.golf"
    if not _intact(stored, summary.sha256):  # missing, or damaged: this upload repairs it
        os.replace(path, stored)
    s.store.put_artifact(summary, owner, name)


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
