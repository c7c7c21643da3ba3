"""Sync and async clients of the golf-eval HTTP API (docs/API.md).

A non-2xx response raises ServiceError with the server's one-line reason; network
failures stay httpx.TransportError, so a caller can tell "the server said no" from
"there is no server".
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, aclosing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from clients.sse import Event, SSEDecoder

__all__ = ["AsyncClient", "Client", "Event", "ServiceError"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# A stream that breaks or stays silent past the timeout is re-opened after a fresh GET.
_STREAM_BREAKS = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)

_OCTETS = "application/octet-stream"
Progress = Callable[[dict[str, Any]], Any]
RECORD_SUFFIXES = (".py", ".log", ".txt", ".json", ".md")
"""The files of a record folder `import_record` sends: code, logs, submission.json, README
(those directly in the folder; the server reads them as `golf import` does)."""


def record_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The files of a record folder the import sends (see RECORD_SUFFIXES), by name."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    return sorted(
        p
        for p in root.iterdir()
        if p.is_file()
        and not p.is_symlink()
        and not p.name.startswith(".")
        and p.name.lower().endswith(RECORD_SUFFIXES)
    )


def _record_form(
    stack: ExitStack,
    folder: str | os.PathLike[str],
    artifact: str | os.PathLike[str],
    dataset: str,
    sets: Sequence[str],
    record: str | None,
) -> dict[str, Any]:
    """The multipart form of POST /v1/artifacts/import, its files opened on `stack`."""
    files: list[tuple[str, tuple[str, Any, str]]] = [
        ("file", (p.name, stack.enter_context(p.open("rb")), _OCTETS)) for p in record_files(folder)
    ]
    a = Path(artifact)
    files.append(("artifact", (a.name, stack.enter_context(a.open("rb")), _OCTETS)))
    data = {"record": record or Path(folder).resolve().name, "dataset": dataset, "set": list(sets)}
    return {"files": files, "data": data}


class ServiceError(Exception):
    """The service answered with an error status; `detail` is its one-line reason."""

    def __init__(self, status: int, detail: str):
        self.status = status
        self.detail = detail
        super().__init__(f"{detail} (HTTP {status})")


def _detail(response: httpx.Response) -> str:
    """The `detail` of an error body as one line, whatever shape the server gave it."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        # FastAPI's own validation shape: name the first field, as the service does.
        first = detail[0]
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        detail = f"{loc}: {first.get('msg', '')}" if loc else first.get("msg", "")
    if not detail:
        lines = response.text.strip().splitlines()
        detail = lines[0] if lines else response.reason_phrase
    return " ".join(str(detail).split())


def _json(response: httpx.Response) -> Any:
    if response.is_error:
        raise ServiceError(response.status_code, _detail(response))
    return response.json()


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _job(job_id: str, tail: str = "") -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}{tail}"


JOB_PAGE = 1_000
"""Jobs asked for per page of `GET /v1/jobs` (the service's largest page)."""


def _page(cursor: str | None) -> dict[str, Any]:
    return {"limit": JOB_PAGE} | ({"cursor": cursor} if cursor is not None else {})


def _job_body(
    artifact: str,
    dataset: str,
    protocols: str | Sequence[str],
    params: dict[str, Any] | None,
    priority: int,
    group: str | None = None,
    code: tuple[int, str] | None = None,
    chain_workers: int | None = None,
) -> dict[str, Any]:
    names = [protocols] if isinstance(protocols, str) else list(protocols)
    body = {
        "artifact": artifact,
        "dataset": dataset,
        "protocols": names,
        "params": params or {},
        "priority": priority,
    }
    if code is not None:
        body |= {"code_bytes": code[0], "code_sha256": code[1]}
    if chain_workers is not None:
        body["chain_workers"] = chain_workers
    return body | ({"group": group} if group is not None else {})


def _leaderboard_query(
    dataset: str, protocol: str | None, board: str = "mine", include_partial: bool = False
) -> dict[str, str]:
    query = {"dataset": dataset, "board": board}
    if include_partial:
        query["include_partial"] = "true"
    return query | ({"protocol": protocol} if protocol else {})


def _windows_query(protocol: str | None, cursor: str | None = None) -> dict[str, str]:
    query = {"protocol": protocol} if protocol else {}
    return query | ({"cursor": cursor} if cursor else {})


class Client:
    """Blocking client. Use as a context manager, or call `close()`.

    `timeout` bounds each connect, read and write; an event stream silent for longer
    is re-opened by `wait`, so long quiet jobs do not need a larger value.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=_headers(api_key), timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return _json(self._http.request(method, path, **kwargs))

    def upload(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Store an artifact; the same bytes always give the same `id` (its sha256)."""
        p = Path(path)
        with p.open("rb") as f:
            return self._call("POST", "/v1/artifacts", files={"file": (p.name, f, _OCTETS)})

    def import_record(
        self,
        folder: str | os.PathLike[str],
        artifact: str | os.PathLike[str],
        dataset: str,
        sets: Sequence[str] = (),
        record: str | None = None,
    ) -> dict[str, Any]:
        """`golf import FOLDER --artifact ARTIFACT` on the server: the folder's record files
        and the artifact are sent, converted there and stored as a `.golf` (tokenizer: the
        served `dataset`'s; `sets`: `KEY=VALUE` overrides; `record`: the folder's name by
        default). Returns the stored artifact (its `id` is what `submit` takes) and how
        the import decided (`record`, `format`, `arch`, `decisions`)."""
        with ExitStack() as stack:
            form = _record_form(stack, folder, artifact, dataset, sets, record)
            return self._call("POST", "/v1/artifacts/import", **form)

    def submit(
        self,
        artifact: str,
        dataset: str,
        protocols: str | Sequence[str],
        params: dict[str, Any] | None = None,
        priority: int = 0,
        group: str | None = None,
        code: tuple[int, str] | None = None,
        chain_workers: int | None = None,
    ) -> dict[str, Any]:
        """Queue a job for an uploaded artifact id, tagged with a seed `group` if given,
        with the (bytes, sha256) of its code file if given, its chains (ttt, ttt-phased)
        on `chain_workers` workers if given; returns the job object."""
        body = _job_body(artifact, dataset, protocols, params, priority, group, code, chain_workers)
        return self._call("POST", "/v1/jobs", json=body)

    def get(self, job_id: str) -> dict[str, Any]:
        """The job object: state, per-shard progress, running val_bpb, ETA."""
        return self._call("GET", _job(job_id))

    def jobs(self) -> list[dict[str, Any]]:
        """The caller's jobs (an admin's: everyone's), newest first, without shards (every
        page of the listing)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self._call("GET", "/v1/jobs", params=_page(cursor))
            found += page["jobs"]
            if (cursor := page.get("next_cursor")) is None:
                return found

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets the service can score against."""
        return self._call("GET", "/v1/datasets")["datasets"]

    def artifact(self, artifact_id: str) -> dict[str, Any]:
        """An uploaded artifact's summary: bytes (code bytes too), verdict, flags."""
        return self._call("GET", f"/v1/artifacts/{quote(artifact_id, safe='')}")

    def leaderboard(
        self,
        dataset: str,
        protocol: str | None = None,
        board: str = "mine",
        include_partial: bool = False,
    ) -> dict[str, Any]:
        """Seed groups (group, else artifact) ranked by mean val_bpb per protocol; `board`
        mine or shared (published jobs); partial runs only with `include_partial`."""
        query = _leaderboard_query(dataset, protocol, board, include_partial)
        return self._call("GET", "/v1/leaderboard", params=query)

    def publish(self, job_id: str, published: bool = True) -> dict[str, Any]:
        """Put a succeeded job on the shared board (or, with False, take it off)."""
        return self._call("POST", _job(job_id, "/publish"), json={"published": published})

    def report(self, job_id: str) -> dict[str, Any]:
        """The final report of a succeeded job (ServiceError 409 before that)."""
        return self._call("GET", _job(job_id, "/report"))

    def windows(self, job_id: str, protocol: str | None = None) -> list[dict[str, Any]]:
        """Per-window records, ordered by protocol then window (every page)."""
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self._call(
                "GET", _job(job_id, "/windows"), params=_windows_query(protocol, cursor)
            )
            rows += page["windows"]
            if (cursor := page.get("next_cursor")) is None:
                return rows

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; returns the job object."""
        return self._call("DELETE", _job(job_id))

    def events(self, job_id: str) -> Iterator[Event]:
        """The job's Server-Sent Events as they arrive, until the server ends the stream."""
        with self._http.stream("GET", _job(job_id, "/events")) as response:
            if response.is_error:
                response.read()
                _json(response)
            decoder = SSEDecoder()
            for line in response.iter_lines():
                if (event := decoder.feed(line)) is not None:
                    yield event

    def wait(
        self, job_id: str, progress: Progress | None = None, poll: float = 1.0
    ) -> dict[str, Any]:
        """Follow a job to its end: the report if it succeeded, else the final job object.

        `progress` gets each job object the stream carries. A stream that breaks or
        ends early is re-opened after `poll` seconds.
        """
        while True:
            try:
                for event in self.events(job_id):
                    if event.event == "progress" and progress is not None:
                        progress(event.data)
                    elif event.event in ("report", "end"):
                        return event.data
            except _STREAM_BREAKS:
                pass
            job = self.get(job_id)
            if job["state"] == "succeeded":
                return self.report(job_id)
            if job["state"] in TERMINAL:
                return job
            time.sleep(poll)


class AsyncClient:
    """The asyncio/trio twin of Client: the same methods, awaited; `events` async-iterates."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=_headers(api_key), timeout=timeout
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return _json(await self._http.request(method, path, **kwargs))

    async def upload(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Store an artifact; the same bytes always give the same `id` (its sha256)."""
        p = Path(path)
        with p.open("rb") as f:
            return await self._call("POST", "/v1/artifacts", files={"file": (p.name, f, _OCTETS)})

    async def import_record(
        self,
        folder: str | os.PathLike[str],
        artifact: str | os.PathLike[str],
        dataset: str,
        sets: Sequence[str] = (),
        record: str | None = None,
    ) -> dict[str, Any]:
        """`Client.import_record`, awaited."""
        with ExitStack() as stack:
            form = _record_form(stack, folder, artifact, dataset, sets, record)
            return await self._call("POST", "/v1/artifacts/import", **form)

    async def submit(
        self,
        artifact: str,
        dataset: str,
        protocols: str | Sequence[str],
        params: dict[str, Any] | None = None,
        priority: int = 0,
        group: str | None = None,
        code: tuple[int, str] | None = None,
        chain_workers: int | None = None,
    ) -> dict[str, Any]:
        """Queue a job for an uploaded artifact id, tagged with a seed `group` if given,
        with the (bytes, sha256) of its code file if given, its chains (ttt, ttt-phased)
        on `chain_workers` workers if given; returns the job object."""
        body = _job_body(artifact, dataset, protocols, params, priority, group, code, chain_workers)
        return await self._call("POST", "/v1/jobs", json=body)

    async def get(self, job_id: str) -> dict[str, Any]:
        """The job object: state, per-shard progress, running val_bpb, ETA."""
        return await self._call("GET", _job(job_id))

    async def jobs(self) -> list[dict[str, Any]]:
        """The caller's jobs (an admin's: everyone's), newest first, without shards (every
        page of the listing)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self._call("GET", "/v1/jobs", params=_page(cursor))
            found += page["jobs"]
            if (cursor := page.get("next_cursor")) is None:
                return found

    async def datasets(self) -> list[dict[str, Any]]:
        """The datasets the service can score against."""
        return (await self._call("GET", "/v1/datasets"))["datasets"]

    async def artifact(self, artifact_id: str) -> dict[str, Any]:
        """An uploaded artifact's summary: bytes (code bytes too), verdict, flags."""
        return await self._call("GET", f"/v1/artifacts/{quote(artifact_id, safe='')}")

    async def leaderboard(
        self,
        dataset: str,
        protocol: str | None = None,
        board: str = "mine",
        include_partial: bool = False,
    ) -> dict[str, Any]:
        """Seed groups (group, else artifact) ranked by mean val_bpb per protocol; `board`
        mine or shared (published jobs); partial runs only with `include_partial`."""
        query = _leaderboard_query(dataset, protocol, board, include_partial)
        return await self._call("GET", "/v1/leaderboard", params=query)

    async def publish(self, job_id: str, published: bool = True) -> dict[str, Any]:
        """Put a succeeded job on the shared board (or, with False, take it off)."""
        return await self._call("POST", _job(job_id, "/publish"), json={"published": published})

    async def report(self, job_id: str) -> dict[str, Any]:
        """The final report of a succeeded job (ServiceError 409 before that)."""
        return await self._call("GET", _job(job_id, "/report"))

    async def windows(self, job_id: str, protocol: str | None = None) -> list[dict[str, Any]]:
        """Per-window records, ordered by protocol then window (every page)."""
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = _windows_query(protocol, cursor)
            page = await self._call("GET", _job(job_id, "/windows"), params=query)
            rows += page["windows"]
            if (cursor := page.get("next_cursor")) is None:
                return rows

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; returns the job object."""
        return await self._call("DELETE", _job(job_id))

    async def events(self, job_id: str) -> AsyncIterator[Event]:
        """The job's Server-Sent Events as they arrive, until the server ends the stream."""
        async with self._http.stream("GET", _job(job_id, "/events")) as response:
            if response.is_error:
                await response.aread()
                _json(response)
            decoder = SSEDecoder()
            async for line in response.aiter_lines():
                if (event := decoder.feed(line)) is not None:
                    yield event

    async def wait(
        self, job_id: str, progress: Progress | None = None, poll: float = 1.0
    ) -> dict[str, Any]:
        """Follow a job to its end: the report if it succeeded, else the final job object.

        `progress` gets each job object (awaited if it returns an awaitable). A stream
        that breaks or ends early is re-opened after `poll` seconds.
        """
        while True:
            try:
                async with aclosing(self.events(job_id)) as stream:
                    async for event in stream:
                        if event.event == "progress" and progress is not None:
                            result = progress(event.data)
                            if inspect.isawaitable(result):
                                await result
                        elif event.event in ("report", "end"):
                            return event.data
            except _STREAM_BREAKS:
                pass
            job = await self.get(job_id)
            if job["state"] == "succeeded":
                return await self.report(job_id)
            if job["state"] in TERMINAL:
                return job
            await anyio.sleep(poll)
