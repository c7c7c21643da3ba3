"""Durable state in SQLite (WAL): artifacts, jobs, shards, per-window records, dispatches.

The store is the source of truth: a restarted service rebuilds its queue from it. Window
rows are keyed (job, protocol, window) and inserted with INSERT OR IGNORE, and shard
counters grow only by the rows actually inserted, so a shard that runs twice is
counted once.
"""

from __future__ import annotations

import hmac
import itertools
import json
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from golf.data.bytes import bits_per_byte
from golf.engine.evaluate import WindowRecord
from golf.spec.jobplan import JobPlan, ProtocolPlan
from golf.spec.params import EvalParams
from golf.spec.records import ArtifactSummary
from workers.integrity import IntegrityError, record_checksum, shard_digest

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY, summary TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS artifact_owners (
    artifact TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (artifact, owner)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, state TEXT NOT NULL,
    artifact TEXT NOT NULL, dataset TEXT NOT NULL, dataset_sha256 TEXT NOT NULL,
    protocols TEXT NOT NULL, params TEXT NOT NULL, plans TEXT NOT NULL,
    priority INTEGER NOT NULL, created_at REAL NOT NULL, started_at REAL,
    finished_at REAL, error TEXT, report TEXT, cost REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, state);
CREATE TABLE IF NOT EXISTS shards (
    job TEXT NOT NULL, protocol TEXT NOT NULL, shard INTEGER NOT NULL,
    batch_lo INTEGER NOT NULL, batch_hi INTEGER NOT NULL, windows_total INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', windows_done INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    nll_sum REAL NOT NULL DEFAULT 0, worker TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    elapsed_s REAL NOT NULL DEFAULT 0, engine TEXT, digest TEXT,
    step INTEGER NOT NULL DEFAULT 0, checkpoint INTEGER, resumed_at INTEGER, audit TEXT,
    PRIMARY KEY (job, protocol, shard));
CREATE INDEX IF NOT EXISTS shards_queued ON shards (job, protocol, shard)
    WHERE state = 'queued';
CREATE TABLE IF NOT EXISTS windows (
    job TEXT NOT NULL, protocol TEXT NOT NULL, window INTEGER NOT NULL,
    nll_sum REAL NOT NULL, tokens INTEGER NOT NULL, bytes INTEGER NOT NULL, checksum TEXT,
    shard INTEGER, PRIMARY KEY (job, protocol, window)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dispatches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, job TEXT NOT NULL,
    owner TEXT NOT NULL, protocol TEXT NOT NULL, shard INTEGER NOT NULL,
    worker TEXT NOT NULL, attempt INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS totals (
    job TEXT NOT NULL, protocol TEXT NOT NULL, windows_total INTEGER NOT NULL,
    windows_done INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    nll_sum REAL NOT NULL DEFAULT 0, PRIMARY KEY (job, protocol)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    job TEXT NOT NULL, protocol TEXT NOT NULL, windows_done INTEGER NOT NULL,
    val_bpb REAL NOT NULL, PRIMARY KEY (job, protocol, windows_done)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_board (
    job TEXT PRIMARY KEY, published_at REAL, code_bytes INTEGER, code_sha256 TEXT)
    WITHOUT ROWID;
"""

MAX_SERIES_POINTS = 200
"""About how many points of a protocol's running val_bpb series are kept per job: a point
stays only if it is 1/MAX_SERIES_POINTS of the protocol's windows past the one before it
(the latest is always kept), so the curve is even however many batches there are."""


# Columns added after the first release, added to older databases on open.
MIGRATIONS = (
    ("jobs", "cost", "REAL NOT NULL DEFAULT 0"),
    ("windows", "checksum", "TEXT"),
    ("shards", "engine", "TEXT"),
    ("artifact_owners", "filename", "TEXT"),
    ("jobs", "filename", "TEXT"),
    ("jobs", "grp", "TEXT"),  # `group` is an SQL keyword
    ("shards", "digest", "TEXT"),
    ("windows", "shard", "INTEGER"),  # which shard sent the row (document batches interleave)
    ("shards", "step", "INTEGER NOT NULL DEFAULT 0"),  # a chain's steps done
    ("shards", "checkpoint", "INTEGER"),  # the step a chain's latest checkpoint resumes at
    ("shards", "resumed_at", "INTEGER"),  # the step a chain's last re-run started from
    ("shards", "audit", "TEXT"),  # JSON of the causality audit its worker ran, if any
)


class OverCapacity(Exception):
    """The owner already has as many active jobs, or as much queued work, as allowed."""


@dataclass(frozen=True)
class ShardKey:
    job: str
    protocol: str
    shard: int


@dataclass(frozen=True)
class JobRow:
    """A stored job: what was asked (`params`), what was planned (`plans`), where it is."""

    id: str
    owner: str
    state: str
    artifact: str
    dataset: str
    dataset_sha256: str
    protocols: tuple[str, ...]
    params: EvalParams
    plans: dict[str, ProtocolPlan]
    priority: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    report: dict[str, Any] | None
    cost: float
    filename: str | None = None  # the artifact's file name at its owner's last upload
    group: str | None = None  # the submission (seed group) the owner tagged it with

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRow:
        doc = dict(row)
        doc["group"] = doc.pop("grp", None)
        plans = json.loads(doc["plans"])
        return cls(
            **{
                **doc,
                "protocols": tuple(json.loads(doc["protocols"])),
                "params": EvalParams.model_validate(json.loads(doc["params"])),
                "plans": {
                    name: ProtocolPlan.model_validate({**plan, "protocol": name})
                    for name, plan in plans.items()
                },
                "report": json.loads(doc["report"]) if doc["report"] is not None else None,
            }
        )


@dataclass
class ProtocolSums:
    """Running totals of one protocol's shards."""

    windows_done: int = 0
    windows_total: int = 0
    tokens: int = 0
    bytes: int = 0
    nll_sum: float = 0.0
    # A chain's one shard, as it stands (meaningless for protocols cut into shards):
    steps_done: int = 0  # chunks / document batches done
    checkpoint: int | None = None  # the step it resumes at if it loses a worker
    state: str | None = None
    workers: str | None = None  # the gang it holds, `worker-0+worker-1`
    attempts: int = 0
    resumed_at: int | None = None


@dataclass
class JobProgress:
    """Shard counts by state and per-protocol totals of one job."""

    counts: dict[str, int] = field(default_factory=dict)
    protocols: dict[str, ProtocolSums] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardRow:
    """A stored shard: its batch range, state and the running sums of its windows."""

    job: str
    protocol: str
    shard: int
    batch_lo: int
    batch_hi: int
    windows_total: int
    state: str
    windows_done: int
    tokens: int
    bytes: int
    nll_sum: float
    worker: str | None
    attempts: int
    elapsed_s: float
    engine: str | None  # JSON of the golf.engine.EngineInfo its worker ran
    digest: str | None = None  # workers.integrity.shard_digest of its records
    step: int = 0  # a chain's steps done (its batches are chain steps)
    checkpoint: int | None = None  # the step a chain resumes at after a lost worker
    resumed_at: int | None = None  # the step a chain's latest re-run resumed from
    audit: str | None = None  # JSON of the stream causality audit (the first batch's shard)


@dataclass(frozen=True)
class QueuedShard:
    """A shard waiting for a worker, with what the fair dispatcher orders by."""

    key: ShardKey
    owner: str
    priority: int
    created_at: float
    protocol_index: int
    batch_lo: int
    batch_hi: int


class Store:
    """One SQLite connection behind a lock. The service's writer is shared by the event
    loop and the scheduler's threads; `Store.reader` opens a read-only one for a read
    thread (service/reads.py), so reads never wait on the writer's lock (WAL: readers and
    the writer do not block each other)."""

    def __init__(self, path: Path, *, readonly: bool = False, record_key: bytes | None = None):
        self.path = path
        self.record_key = record_key
        """Keys the window checksums (workers/integrity.py); reports need it."""
        if readonly:
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA query_only=1")
            self._lock = threading.RLock()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for table, column, declaration in MIGRATIONS:
            have = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._lock = threading.RLock()

    @classmethod
    def reader(cls, path: Path, record_key: bytes | None = None) -> Store:
        """A read-only connection to the database at `path` (which must exist)."""
        return cls(path, readonly=True, record_key=record_key)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, tuple(args))]

    def ping(self) -> bool:
        return self._all("SELECT 1 AS ok")[0]["ok"] == 1

    def quick_check(self) -> str | None:
        """None if `PRAGMA quick_check` finds the database sound, else its first finding."""
        try:
            rows = [next(iter(row.values())) for row in self._all("PRAGMA quick_check")]
        except sqlite3.DatabaseError as e:
            return f"{type(e).__name__}: {e}"
        return None if rows == ["ok"] else "; ".join(map(str, rows[:3]))

    def checkpoint(self) -> None:
        """Fold the WAL into the database file (what is checkpointed no longer depends on
        the WAL's frames)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ snapshots

    SNAPSHOT_TABLES = ("shards", "totals", "series")

    def snapshot(self, job_id: str, report: dict[str, Any]) -> dict[str, Any]:
        """A job's rows as plain data (service/results.py), its state set to succeeded
        with `report`; window rows by protocol as [window, nll_sum, tokens, bytes, checksum,
        shard]."""
        with self._lock:
            job = dict(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
            job |= {"state": "succeeded", "report": json.dumps(report)}
            job["finished_at"] = job["finished_at"] or time.time()
            doc: dict[str, Any] = {"job": job}
            for table in self.SNAPSHOT_TABLES:
                doc[table] = [
                    dict(r)
                    for r in self._db.execute(f"SELECT * FROM {table} WHERE job = ?", (job_id,))
                ]
            doc["artifact"] = [
                dict(r)
                for r in self._db.execute(
                    "SELECT * FROM artifacts WHERE id = ?", (job["artifact"],)
                )
            ]
            doc["artifact_owners"] = [
                dict(r)
                for r in self._db.execute(
                    "SELECT * FROM artifact_owners WHERE artifact = ? AND owner = ?",
                    (job["artifact"], job["owner"]),
                )
            ]
            windows: dict[str, list[list[Any]]] = {}
            for r in self._db.execute(
                "SELECT protocol, window, nll_sum, tokens, bytes, checksum, shard FROM windows"
                " WHERE job = ? ORDER BY protocol, window",
                (job_id,),
            ):
                windows.setdefault(r[0], []).append(list(r[1:]))
            doc["windows"] = windows
        return doc

    def restore(self, doc: dict[str, Any]) -> None:
        """Put a snapshot's rows back (the job and its shards replaced, the rest kept)."""
        job = doc["job"]
        with self._tx() as db:
            _insert(db, "jobs", [job], "OR REPLACE")
            for table in self.SNAPSHOT_TABLES:
                _insert(db, table, doc[table], "OR REPLACE")
            _insert(db, "artifacts", doc["artifact"], "OR IGNORE")
            _insert(db, "artifact_owners", doc["artifact_owners"], "OR IGNORE")
            for protocol, rows in doc["windows"].items():
                db.executemany(
                    "INSERT OR REPLACE INTO windows (job, protocol, window, nll_sum, tokens,"
                    " bytes, checksum, shard) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    # snapshots written before rows kept their shard have 5 columns
                    [(job["id"], protocol, *row, *[None] * (6 - len(row))) for row in rows],
                )

    def job_state(self, job_id: str) -> str | None:
        rows = self._all("SELECT state FROM jobs WHERE id = ?", (job_id,))
        return rows[0]["state"] if rows else None

    # ------------------------------------------------------------------ artifacts

    def put_artifact(
        self, summary: ArtifactSummary, owner: str, filename: str | None = None
    ) -> None:
        """Store an artifact's summary once, and note that `owner` uploaded it (under
        `filename`: the latest name an owner gave the bytes is kept)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?)",
                (summary.sha256, summary.model_dump_json(), time.time()),
            )
            db.execute(
                "INSERT INTO artifact_owners (artifact, owner, filename) VALUES (?, ?, ?)"
                " ON CONFLICT (artifact, owner)"
                " DO UPDATE SET filename = coalesce(excluded.filename, filename)",
                (summary.sha256, owner, filename),
            )

    def artifact(self, sha256: str, owner: str | None = None) -> ArtifactSummary | None:
        """The artifact's summary; with `owner`, only if that owner uploaded it."""
        sql = "SELECT summary FROM artifacts WHERE id = ?"
        args: tuple[str, ...] = (sha256,)
        if owner is not None:
            sql += " AND EXISTS (SELECT 1 FROM artifact_owners WHERE artifact = id AND owner = ?)"
            args += (owner,)
        rows = self._all(sql, args)
        return ArtifactSummary.model_validate_json(rows[0]["summary"]) if rows else None

    # ------------------------------------------------------------------ jobs

    def create_job(
        self,
        *,
        owner: str,
        artifact: str,
        dataset: str,
        dataset_sha256: str,
        params: EvalParams,
        plan: JobPlan,
        priority: int,
        max_active: int,
        budget: float,
        group: str | None = None,
    ) -> str:
        """Insert a queued job and the shards of its plan, within the owner's job cap and
        cost budget (queued, running, and cancelled jobs whose shards still run)."""
        job_id = "j_" + secrets.token_hex(8)
        with self._tx() as db:
            (active,) = db.execute(
                "SELECT count(*) FROM jobs WHERE owner = ? AND state IN (?, ?)", (owner, *ACTIVE)
            ).fetchone()
            if active >= max_active:
                raise OverCapacity(f"{owner} already has {active} active jobs (cap {max_active})")
            (used,) = db.execute(
                "SELECT coalesce(sum(cost), 0) FROM jobs j WHERE owner = ? AND (state IN (?, ?)"
                " OR EXISTS (SELECT 1 FROM shards s WHERE s.job = j.id AND s.state = 'stopping'))",
                (owner, *ACTIVE),
            ).fetchone()
            if used + plan.cost > budget:
                raise OverCapacity(
                    f"{owner} has {used:.3g} of a {budget:.3g} window-token budget queued or "
                    f"running; this job needs {plan.cost:.3g} (owner_budget)"
                )
            db.execute(
                "INSERT INTO jobs (id, owner, state, artifact, dataset, dataset_sha256,"
                " protocols, params, plans, priority, created_at, cost, grp, filename)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " (SELECT filename FROM artifact_owners WHERE artifact = ?"
                "  ORDER BY owner = ? DESC, filename IS NULL LIMIT 1))",
                (
                    job_id,
                    owner,
                    artifact,
                    dataset,
                    dataset_sha256,
                    json.dumps([p.protocol for p in plan.protocols]),
                    params.model_dump_json(),
                    json.dumps(
                        {
                            p.protocol: p.model_dump(mode="json", exclude={"protocol"})
                            for p in plan.protocols
                        }
                    ),
                    priority,
                    time.time(),
                    plan.cost,
                    group,
                    artifact,
                    owner,
                ),
            )
            db.executemany(
                "INSERT INTO totals (job, protocol, windows_total) VALUES (?, ?, ?)",
                [(job_id, p.protocol, p.windows) for p in plan.protocols],
            )
            db.executemany(
                "INSERT INTO shards (job, protocol, shard, batch_lo, batch_hi, windows_total)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (job_id, s.protocol, s.shard, s.batch_lo, s.batch_hi, s.windows)
                    for s in plan.shards
                ],
            )
        return job_id

    def job(self, job_id: str) -> JobRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRow.from_row(row) if row is not None else None

    def jobs(
        self,
        owner: str | None = None,
        limit: int | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[JobRow]:
        """Jobs newest first (created_at descending, then id), all of them or one owner's;
        with `before` = (created_at, id) of a job, only those listed after it."""
        clauses, args = [], []
        if owner is not None:
            clauses.append("owner = ?")
            args.append(owner)
        if before is not None:
            clauses.append("(created_at < ? OR (created_at = ? AND id > ?))")
            args += [before[0], before[0], before[1]]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id LIMIT ?",
                (*args, -1 if limit is None else limit),
            ).fetchall()
        return [JobRow.from_row(row) for row in rows]

    def leaderboard_jobs(self, dataset: str, owner: str | None = None) -> list[JobRow]:
        """Succeeded jobs on a dataset (by name), all or one owner's, oldest first."""
        sql = "SELECT * FROM jobs WHERE state = 'succeeded' AND dataset = ?"
        args: tuple[str, ...] = (dataset,)
        if owner is not None:
            sql += " AND owner = ?"
            args += (owner,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY finished_at, id", args).fetchall()
        return [JobRow.from_row(row) for row in rows]

    def job_counts(self) -> dict[str, int]:
        rows = self._all("SELECT state, count(*) AS n FROM jobs GROUP BY state")
        return {row["state"]: row["n"] for row in rows}

    def shard_counts(self) -> dict[str, int]:
        rows = self._all("SELECT state, count(*) AS n FROM shards GROUP BY state")
        return {row["state"]: row["n"] for row in rows}

    def set_job_state(self, job_id: str, state: str, *, only_from: tuple[str, ...]) -> bool:
        """Move a job to `state` if it is in one of `only_from`; False if it was not."""
        finished = time.time() if state in TERMINAL else None
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE jobs SET state = ?, finished_at = coalesce(?, finished_at)"
                f" WHERE id = ? AND state IN ({','.join('?' * len(only_from))})",
                (state, finished, job_id, *only_from),
            )
            if cur.rowcount == 1 and state in ("cancelled", "failed"):
                _close_shards(db, job_id, state)
        return cur.rowcount == 1

    def fail_job(self, job_id: str, error: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state = 'failed', error = ?, finished_at = ?"
                " WHERE id = ? AND state IN (?, ?)",
                (error, time.time(), job_id, *ACTIVE),
            )
            if cur.rowcount == 1:
                _close_shards(db, job_id, "failed")
        return cur.rowcount == 1

    def succeed_job(self, job_id: str, report: dict[str, Any]) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state = 'succeeded', report = ?, finished_at = ?"
                " WHERE id = ? AND state = 'running'",
                (json.dumps(report), time.time(), job_id),
            )
        return cur.rowcount == 1

    # ------------------------------------------------------------------ shards

    def shards(self, job_id: str, limit: int | None = None, offset: int = 0) -> list[ShardRow]:
        """A job's shards in plan order (protocols in the job's order, then shard number)."""
        rows = self._all(
            "SELECT s.* FROM shards s JOIN jobs j ON j.id = s.job WHERE s.job = ?"
            " ORDER BY instr(j.protocols, '\"' || s.protocol || '\"'), s.shard"
            " LIMIT ? OFFSET ?",
            (job_id, -1 if limit is None else limit, offset),
        )
        return [ShardRow(**row) for row in rows]

    def progress(self, job_ids: list[str]) -> dict[str, JobProgress]:
        """Per job: shard counts by state and per-protocol sums, aggregated in SQL (a job
        list or a progress event never loads shard rows)."""
        marks = ",".join("?" * len(job_ids))
        rows = self._all(
            f"SELECT job, protocol, state, count(*) AS n, sum(windows_done) AS done,"
            f" sum(windows_total) AS total, sum(tokens) AS tokens, sum(bytes) AS bytes,"
            f" sum(nll_sum) AS nll, sum(step) AS step, max(checkpoint) AS checkpoint,"
            f" max(worker) AS worker, max(attempts) AS attempts, max(resumed_at) AS resumed"
            f" FROM shards WHERE job IN ({marks})"
            f" GROUP BY job, protocol, state",
            job_ids,
        )
        out = {job_id: JobProgress() for job_id in job_ids}
        for r in rows:
            progress = out[r["job"]]
            progress.counts[r["state"]] = progress.counts.get(r["state"], 0) + r["n"]
            sums = progress.protocols.setdefault(r["protocol"], ProtocolSums())
            sums.windows_done += r["done"]
            sums.windows_total += r["total"]
            sums.tokens += r["tokens"]
            sums.bytes += r["bytes"]
            sums.nll_sum += r["nll"]
            # A chain is one shard, so one group: its state, workers and step as they are.
            sums.steps_done += r["step"]
            sums.checkpoint = r["checkpoint"]
            sums.state, sums.workers, sums.attempts = r["state"], r["worker"], r["attempts"]
            sums.resumed_at = r["resumed"]
        return out

    def next_shard(self, last_owner: str | None) -> QueuedShard | None:
        """The shard the fair dispatcher runs next: the next owner with queued work after
        `last_owner` (cyclic, by name), that owner's first job by priority then age, its
        first queued shard in plan order. Index lookups only (shards_queued): the cost
        does not grow with the number of queued shards."""
        with self._lock:
            owners = [
                r[0]
                for r in self._db.execute(
                    "SELECT DISTINCT owner FROM jobs j WHERE state IN (?, ?) AND EXISTS"
                    " (SELECT 1 FROM shards s WHERE s.job = j.id AND s.state = 'queued')"
                    " ORDER BY owner",
                    ACTIVE,
                )
            ]
            if not owners:
                return None
            later = [o for o in owners if last_owner is not None and o > last_owner]
            owner = (later or owners)[0]
            job = self._db.execute(
                "SELECT id, priority, created_at, protocols FROM jobs j"
                " WHERE owner = ? AND state IN (?, ?) AND EXISTS"
                " (SELECT 1 FROM shards s WHERE s.job = j.id AND s.state = 'queued')"
                " ORDER BY priority DESC, created_at, id LIMIT 1",
                (owner, *ACTIVE),
            ).fetchone()
            for index, protocol in enumerate(json.loads(job["protocols"])):
                row = self._db.execute(
                    "SELECT shard, batch_lo, batch_hi FROM shards WHERE job = ? AND protocol = ?"
                    " AND state = 'queued' ORDER BY shard LIMIT 1",
                    (job["id"], protocol),
                ).fetchone()
                if row is not None:
                    return QueuedShard(
                        ShardKey(job["id"], protocol, row["shard"]),
                        owner,
                        job["priority"],
                        job["created_at"],
                        index + 1,
                        row["batch_lo"],
                        row["batch_hi"],
                    )
        return None

    def start_shard(self, key: ShardKey, owner: str, worker: str) -> None:
        """Mark a shard running on `worker`, its job running, and log the dispatch."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE shards SET state = 'running', worker = ?, attempts = attempts + 1"
                " WHERE job = ? AND protocol = ? AND shard = ?",
                (worker, key.job, key.protocol, key.shard),
            )
            db.execute(
                "UPDATE jobs SET state = 'running', started_at = coalesce(started_at, ?)"
                " WHERE id = ? AND state = 'queued'",
                (now, key.job),
            )
            db.execute(
                "INSERT INTO dispatches (at, job, owner, protocol, shard, worker, attempt)"
                " SELECT ?, job, ?, protocol, shard, worker, attempts FROM shards"
                " WHERE job = ? AND protocol = ? AND shard = ?",
                (now, owner, key.job, key.protocol, key.shard),
            )

    def add_windows(
        self, key: ShardKey, records: Iterable[WindowRecord], checksums: Iterable[str]
    ) -> int:
        """Store a batch's records, with the worker's checksums, once each; returns how many
        were new."""
        added = tokens = n_bytes = 0
        nll = 0.0
        with self._tx() as db:
            for r, checksum in zip(records, checksums, strict=True):
                cur = db.execute(
                    "INSERT OR IGNORE INTO windows (job, protocol, window, nll_sum, tokens,"
                    " bytes, checksum, shard) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.job,
                        key.protocol,
                        r.window,
                        r.nll_sum,
                        r.tokens,
                        r.bytes,
                        checksum,
                        key.shard,
                    ),
                )
                if cur.rowcount == 1:
                    added += 1
                    tokens += r.tokens
                    n_bytes += r.bytes
                    nll += r.nll_sum
            db.execute(
                "UPDATE shards SET windows_done = windows_done + ?, tokens = tokens + ?,"
                " bytes = bytes + ?, nll_sum = nll_sum + ?"
                " WHERE job = ? AND protocol = ? AND shard = ?",
                (added, tokens, n_bytes, nll, key.job, key.protocol, key.shard),
            )
            db.execute(
                "UPDATE totals SET windows_done = windows_done + ?, bytes = bytes + ?,"
                " nll_sum = nll_sum + ? WHERE job = ? AND protocol = ?",
                (added, n_bytes, nll, key.job, key.protocol),
            )
        return added

    def chain_step(
        self,
        key: ShardKey,
        step: int,
        checkpoint: int | None = None,
        resumed_at: int | None = None,
    ) -> None:
        """A running chain finished `step` steps (with `checkpoint`: and saved the state it
        resumes from at that step; with `resumed_at`: this run resumed at that step)."""
        with self._tx() as db:
            db.execute(
                "UPDATE shards SET step = ?, checkpoint = coalesce(?, checkpoint),"
                " resumed_at = coalesce(?, resumed_at)"
                " WHERE job = ? AND protocol = ? AND shard = ?",
                (step, checkpoint, resumed_at, key.job, key.protocol, key.shard),
            )

    def finish_shard(
        self,
        key: ShardKey,
        elapsed_s: float,
        engine: dict[str, Any] | None = None,
        digest: str | None = None,
        audit: dict[str, Any] | None = None,
    ) -> None:
        """Mark a shard done, with the engine (golf.engine.EngineInfo) its worker ran, the
        digest its worker computed over its records (workers.integrity) and the causality
        audit it ran, if it ran one."""
        with self._tx() as db:
            db.execute(
                "UPDATE shards SET state = 'done', elapsed_s = ?, engine = ?, digest = ?,"
                " audit = ? WHERE job = ? AND protocol = ? AND shard = ? AND state = 'running'",
                (
                    elapsed_s,
                    json.dumps(engine),
                    digest,
                    None if audit is None else json.dumps(audit),
                    key.job,
                    key.protocol,
                    key.shard,
                ),
            )

    def add_series_point(self, job_id: str, protocol: str) -> None:
        """Append (windows scored, running val_bpb) of one protocol of a job, as its shards
        total now; the previous latest point goes if it is too close to the one before it
        (MAX_SERIES_POINTS)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT windows_done, windows_total, nll_sum, bytes FROM totals"
                " WHERE job = ? AND protocol = ?",
                (job_id, protocol),
            ).fetchone()
            if row is None or not row["windows_done"] or not row["bytes"]:
                return  # nothing scored yet (or a job stored before running totals)
            done, total, nll, n_bytes = row
            last = [
                x
                for (x,) in db.execute(
                    "SELECT windows_done FROM series WHERE job = ? AND protocol = ?"
                    " AND windows_done < ? ORDER BY windows_done DESC LIMIT 2",
                    (job_id, protocol, done),
                )
            ]
            if len(last) == 2 and last[0] - last[1] < total / MAX_SERIES_POINTS:
                db.execute(
                    "DELETE FROM series WHERE job = ? AND protocol = ? AND windows_done = ?",
                    (job_id, protocol, last[0]),
                )
            db.execute(
                "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?)",
                (job_id, protocol, done, bits_per_byte(nll, n_bytes)),
            )

    def series(self, job_id: str) -> dict[str, list[tuple[int, float]]]:
        """Each protocol's running val_bpb as (windows scored, val_bpb), in order."""
        found: dict[str, list[tuple[int, float]]] = {}
        for row in self._all(
            "SELECT protocol, windows_done, val_bpb FROM series WHERE job = ?"
            " ORDER BY protocol, windows_done",
            (job_id,),
        ):
            found.setdefault(row["protocol"], []).append((row["windows_done"], row["val_bpb"]))
        return found

    def engines(self, job_id: str, protocol: str) -> list[dict[str, Any]]:
        """The distinct engines the workers of a protocol's shards reported."""
        rows = self._all(
            "SELECT DISTINCT engine FROM shards WHERE job = ? AND protocol = ?"
            " AND engine IS NOT NULL AND engine != 'null'",
            (job_id, protocol),
        )
        return [json.loads(row["engine"]) for row in rows]

    def shard_attempts(self, key: ShardKey) -> int:
        rows = self._all(
            "SELECT attempts FROM shards WHERE job = ? AND protocol = ? AND shard = ?",
            (key.job, key.protocol, key.shard),
        )
        return rows[0]["attempts"] if rows else 0

    def end_stopped_shard(self, key: ShardKey) -> None:
        """A stopped job's shard has let go of its worker: `stopping` -> the job's state."""
        with self._tx() as db:
            db.execute(
                "UPDATE shards SET state = (SELECT state FROM jobs WHERE id = shards.job)"
                " WHERE job = ? AND protocol = ? AND shard = ? AND state = 'stopping'",
                (key.job, key.protocol, key.shard),
            )

    def requeue_shard(self, key: ShardKey, refund: bool = False) -> None:
        """Queue a shard again; with `refund`, its last dispatch is not counted as an attempt
        (the service itself stopped the worker)."""
        with self._tx() as db:
            db.execute(
                "UPDATE shards SET state = 'queued', attempts = attempts - ?"
                " WHERE job = ? AND protocol = ? AND shard = ? AND state = 'running'",
                (int(refund), key.job, key.protocol, key.shard),
            )

    def requeue_interrupted(self) -> int:
        """After a restart: shards left running by the previous process run again, and
        those of stopped jobs end (no worker holds them any more)."""
        with self._tx() as db:
            db.execute(
                "UPDATE shards SET state = (SELECT state FROM jobs WHERE id = shards.job)"
                " WHERE state = 'stopping'"
            )
            return db.execute("UPDATE shards SET state = 'queued' WHERE state = 'running'").rowcount

    def finished_jobs(self) -> list[str]:
        """Running jobs whose every shard is done: ready to be checked and reported."""
        rows = self._all(
            "SELECT j.id FROM jobs j WHERE j.state = 'running' AND NOT EXISTS"
            " (SELECT 1 FROM shards s WHERE s.job = j.id AND s.state != 'done')"
        )
        return [row["id"] for row in rows]

    # ------------------------------------------------------------------ windows

    def windows_page(
        self, job_id: str, protocol: str, after: int, limit: int
    ) -> list[WindowRecord]:
        """Up to `limit` records of one protocol with window index > `after`, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT window, nll_sum, tokens, bytes FROM windows"
                " WHERE job = ? AND protocol = ? AND window > ? ORDER BY window LIMIT ?",
                (job_id, protocol, after, limit),
            ).fetchall()
        return [WindowRecord(*row) for row in rows]

    def verified_windows(self, job_id: str, protocol: str) -> list[WindowRecord]:
        """The records of `windows`, checked before a report may use them: each row against
        the HMAC its worker made (under this store's record key), each shard's rows against
        the shard digest its worker sent, and the running totals (per shard and per
        protocol) against the rows. IntegrityError naming what disagrees."""
        if self.record_key is None:
            raise IntegrityError("no record key: window records cannot be verified")
        with self._lock:
            rows = self._db.execute(
                "SELECT window, nll_sum, tokens, bytes, checksum, shard FROM windows"
                " WHERE job = ? AND protocol = ? ORDER BY window",
                (job_id, protocol),
            ).fetchall()
            shards = self._db.execute(
                "SELECT shard, windows_total, windows_done, tokens, bytes, nll_sum, digest"
                " FROM shards WHERE job = ? AND protocol = ? ORDER BY shard",
                (job_id, protocol),
            ).fetchall()
            totals = self._db.execute(
                "SELECT windows_done, bytes, nll_sum FROM totals WHERE job = ? AND protocol = ?",
                (job_id, protocol),
            ).fetchone()
        records = [WindowRecord(*row[:4]) for row in rows]
        checksums = [row["checksum"] for row in rows]
        bad = [
            r.window
            for r, checksum in zip(records, checksums, strict=True)
            if checksum is None
            or not hmac.compare_digest(
                checksum, record_checksum(self.record_key, job_id, protocol, *astuple(r))
            )
        ]
        if bad:
            raise IntegrityError(
                f"{protocol}: {len(bad)} stored window records fail their checksum "
                f"(first: window {bad[0]}); the report is withheld"
            )
        if len(records) == sum(s["windows_total"] for s in shards):
            _check_shards(protocol, records, checksums, [row["shard"] for row in rows], shards)
        if totals is not None:
            _check_sums(
                f"{protocol}: the running totals",
                records,
                (totals["windows_done"], None, totals["bytes"], totals["nll_sum"]),
            )
        return records

    def dispatches(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM dispatches ORDER BY seq")

    # ------------------------------------------------------------------ boards

    def set_code(self, job_id: str, code_bytes: int, code_sha256: str | None) -> None:
        """The code bytes the owner declared with the job (`golf submit --code FILE`)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO job_board (job, code_bytes, code_sha256) VALUES (?, ?, ?)"
                " ON CONFLICT (job) DO UPDATE SET code_bytes = excluded.code_bytes,"
                " code_sha256 = excluded.code_sha256",
                (job_id, code_bytes, code_sha256),
            )

    def set_published(self, job_id: str, published: bool) -> None:
        """Put a job on the shared board (or take it off)."""
        at = time.time() if published else None
        with self._tx() as db:
            db.execute(
                "INSERT INTO job_board (job, published_at) VALUES (?, ?)"
                " ON CONFLICT (job) DO UPDATE SET published_at = excluded.published_at",
                (job_id, at),
            )

    def board_info(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Per job with any: `published_at`, `code_bytes`, `code_sha256` (None if unset)."""
        if not job_ids:
            return {}
        marks = ",".join("?" * len(job_ids))
        rows = self._all(f"SELECT * FROM job_board WHERE job IN ({marks})", job_ids)
        return {row.pop("job"): row for row in rows}

    def published_jobs(self, dataset: str) -> list[JobRow]:
        """Every owner's succeeded jobs on a dataset that were published, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT jobs.* FROM jobs JOIN job_board ON job_board.job = jobs.id"
                " WHERE jobs.state = 'succeeded' AND jobs.dataset = ?"
                " AND job_board.published_at IS NOT NULL ORDER BY finished_at, id",
                (dataset,),
            ).fetchall()
        return [JobRow.from_row(row) for row in rows]

    def wall_seconds(self, job_id: str) -> dict[str, float]:
        """Per protocol, wall time from its first shard's dispatch to its last shard's end
        (last dispatch + that run's elapsed_s): what the job took, not Σ shard seconds."""
        rows = self._all(
            "SELECT s.protocol, min(d.first) AS lo, max(d.last + s.elapsed_s) AS hi"
            " FROM shards s JOIN (SELECT job, protocol, shard, min(at) AS first,"
            " max(at) AS last FROM dispatches WHERE job = ? GROUP BY protocol, shard) d"
            " ON d.job = s.job AND d.protocol = s.protocol AND d.shard = s.shard"
            " WHERE s.job = ? AND s.state = 'done' GROUP BY s.protocol",
            (job_id, job_id),
        )
        return {row["protocol"]: max(0.0, row["hi"] - row["lo"]) for row in rows}


def _insert(db: sqlite3.Connection, table: str, rows: list[dict[str, Any]], verb: str) -> None:
    """Insert row dicts (column names from the snapshot, which this schema wrote)."""
    known = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
    for row in rows:
        cols = [c for c in row if c in known]
        db.execute(
            f"INSERT {verb} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [row[c] for c in cols],
        )


def _check_sums(
    what: str, records: list[WindowRecord], sums: tuple[int, int | None, int, float]
) -> None:
    """IntegrityError unless stored running sums (windows, tokens or None, bytes, NLL)
    match the records. Counts must match exactly; the NLL sum was accumulated batch by
    batch in floating point, so it may differ from the exact sum by at most n·u·Σ|x|
    (u = 2⁻⁵³, n additions of nonnegative terms), and by nothing more."""
    windows, tokens, n_bytes, nll = sums
    exact = math.fsum(r.nll_sum for r in records)
    bound = (len(records) + 1) * 2.0**-53 * math.fsum(abs(r.nll_sum) for r in records)
    found = (
        len(records),
        None if tokens is None else sum(r.tokens for r in records),
        sum(r.bytes for r in records),
    )
    if (windows, tokens, n_bytes) != found or abs(nll - exact) > bound:
        raise IntegrityError(
            f"{what} (windows, tokens, bytes, nll) = {(windows, tokens, n_bytes, nll)} do not "
            f"match the stored records {(*found, exact)}; the report is withheld"
        )


def _check_shards(
    protocol: str,
    records: list[WindowRecord],
    checksums: list[str],
    owners: list[int | None],
    shards: list[sqlite3.Row],
) -> None:
    """Each shard's rows (in window order) against its digest and sums. A row names the
    shard that sent it (a document batch's documents are not consecutive); rows stored
    before rows kept their shard are the shards' consecutive runs, as they were then."""
    if all(owner is not None for owner in owners):
        groups: dict[int, list[int]] = {}
        for i, owner in enumerate(owners):
            groups.setdefault(owner, []).append(i)  # type: ignore[arg-type]
        parts = [groups.get(shard["shard"], []) for shard in shards]
        if sum(map(len, parts)) != len(records):
            raise IntegrityError(
                f"{protocol}: stored window records name shards the job does not have; "
                "the report is withheld"
            )
    else:
        ends = list(itertools.accumulate(shard["windows_total"] for shard in shards))
        parts = [
            list(range(end - shard["windows_total"], end))
            for shard, end in zip(shards, ends, strict=True)
        ]
    for shard, part in zip(shards, parts, strict=True):
        if shard["digest"] is None or not hmac.compare_digest(
            shard["digest"], shard_digest(checksums[i] for i in part)
        ):
            raise IntegrityError(
                f"{protocol}#{shard['shard']}: stored window records do not match the "
                "shard digest its worker sent; the report is withheld"
            )
        _check_sums(
            f"{protocol}#{shard['shard']}: the shard sums",
            [records[i] for i in part],
            (shard["windows_done"], shard["tokens"], shard["bytes"], shard["nll_sum"]),
        )


def _close_shards(db: sqlite3.Connection, job_id: str, state: str) -> None:
    """A job that ends without a report ends its unfinished shards too: waiting ones at
    once, running ones as `stopping` until their worker has let go (they still count
    against the owner's budget and show as busy until then)."""
    db.execute(
        "UPDATE shards SET state = CASE state WHEN 'running' THEN 'stopping' ELSE ? END"
        " WHERE job = ? AND state NOT IN ('done', 'stopping')",
        (state, job_id),
    )
