"""POST /v1/reviews: a record folder as a tarball, reviewed; tar members checked. The
router runs in a minimal app (its state: settings and the validation semaphore; a fixed
caller), so these tests need no Ray."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from record_support import make_record

from service.auth import Caller, require_caller
from service.errors import install_handlers
from service.routers import reviews


@pytest.fixture()
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    app = FastAPI()
    install_handlers(app)
    app.include_router(reviews.router)
    settings = SimpleNamespace(
        uploads_dir=tmp_path / "uploads", max_upload_bytes=1 << 20, max_decompressed_bytes=4 << 20
    )
    app.state.golf = SimpleNamespace(settings=settings, validations=asyncio.Semaphore(1))
    app.dependency_overrides[require_caller] = lambda: Caller("alice")
    with TestClient(app) as c:
        yield c


def tarball(members: list[tuple[str, bytes | None, str]], mode: str = "w:gz") -> bytes:
    """(name, data, kind) → a tar; kind is file, dir, symlink, hardlink or fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]  # fmt: skip
            info.linkname = "/etc/passwd" if "link" in kind else ""
            tar.addfile(info)
    return buf.getvalue()


def folder_tar(folder: Path, extra: list[tuple[str, bytes | None, str]] = ()) -> bytes:  # type: ignore[assignment]
    files = [(f"{folder.name}/{p.name}", p.read_bytes(), "file") for p in sorted(folder.iterdir())]
    return tarball([(folder.name, None, "dir"), *files, *extra])


def post(client: TestClient, data: bytes, fmt: str = "json"):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/reviews?format={fmt}", files={"file": ("rec.tar.gz", data)})


def test_a_record_tarball_is_reviewed(client: TestClient, tmp_path: Path) -> None:
    folder = make_record(tmp_path / "2026-05-01_Mine", model_bytes=15_999_500)
    data = folder_tar(folder, [("2026-05-01_Mine/plot.png", b"\x89PNG", "file")])
    r = post(client, data)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["folder"] == "2026-05-01_Mine"
    assert doc["verdicts"]["size"] == "fail"
    assert doc["skipped"] == ["2026-05-01_Mine/plot.png"]
    md = post(client, data, "md")
    assert md.status_code == 200 and md.text.startswith("## golf review: `2026-05-01_Mine`")
    assert not any((tmp_path / "uploads").iterdir())  # nothing left behind


@pytest.mark.parametrize(
    "members, status, words",
    [
        ([("/etc/cron.d/x.py", b"x", "file")], 422, "absolute path"),
        ([("rec/../../x.py", b"x", "file")], 422, "leaves the archive"),
        ([("rec/train.log", None, "symlink")], 422, "is a link"),
        ([("rec/train.log", None, "hardlink")], 422, "is a link"),
        ([("rec/fifo.txt", None, "fifo")], 422, "special file"),
        ([("a/b/c/d/e/x.py", b"x", "file")], 422, "nested too deep"),
        ([("rec/image.png", b"x", "file")], 422, "no record files"),
    ],
)
def test_members_are_checked(client: TestClient, members, status: int, words: str) -> None:  # type: ignore[no-untyped-def]
    r = post(client, tarball(members))
    assert r.status_code == status and words in r.json()["detail"], r.text


def test_decompression_bomb_stops_at_the_cap(client: TestClient) -> None:
    data = tarball([("rec/train.log", b"\n" * (5 << 20), "file")], mode="w:xz")
    assert len(data) < 1 << 20  # under the upload cap, over the extraction cap
    r = post(client, data)
    assert r.status_code == 413 and "extracts to more than 4,194,304 bytes" in r.json()["detail"]


def test_junk_and_oversize_uploads(client: TestClient) -> None:
    r = post(client, b"not a tar at all" * 100)
    assert r.status_code == 422 and "not a tar archive" in r.json()["detail"]
    r = post(client, b"x" * (2 << 20))
    assert r.status_code == 413


def test_registered_in_the_app() -> None:
    from service import app as app_module

    assert "reviews" in app_module.create_app.__code__.co_names
