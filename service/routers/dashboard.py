"""The dashboard: static pages under service/static/, served at `/`, `/jobs/{id}` and
`/leaderboard`.

The pages themselves are open; every number they show comes from the v1 API, called by
the browser with the key the user enters (kept in sessionStorage).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)
static = StaticFiles(directory=STATIC_DIR)


def _index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/")
async def jobs_page() -> FileResponse:
    return _index()


@router.get("/jobs/{job_id}")
async def job_page(job_id: str) -> FileResponse:
    return _index()


@router.get("/leaderboard")
async def leaderboard_page() -> FileResponse:
    return _index()
