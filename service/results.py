"""Finished jobs kept as content-addressed files beside the database, and restored from them.

A succeeded job's report is the service's product; a damaged WAL must not silently take
it away. Before the database marks a job succeeded, the job's rows (job, shards, totals,
series, artifact) and every window record are written as one gzip'd JSON file named by
the sha256 of its bytes, and `jobs/<id>` names that file (written atomically, fsync'd).
At start, `reconcile` compares the index with the database and puts back, loudly, every
finished job the database lost or rolled back, verifying each file against its name.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from service.store import Store

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^j_[0-9a-f]{16}$")


def job_snapshot(store: Store, job_id: str, report: dict[str, Any]) -> dict[str, Any]:
    """Everything the database holds about a job, as it will be once it succeeded."""
    return store.snapshot(job_id, report)


class Results:
    def __init__(self, root: Path):
        self.root = root
        self.objects = root / "objects"
        self.index = root / "jobs"

    def save(self, job_id: str, snapshot: dict[str, Any]) -> str:
        """Write the snapshot (if no identical file exists) and point `jobs/<id>` at it."""
        data = gzip.compress(json.dumps(snapshot, sort_keys=True).encode(), 1, mtime=0)
        sha = hashlib.sha256(data).hexdigest()
        path = self.objects / f"{sha}.json.gz"
        if not path.exists():
            _write_durably(path, data)
        _write_durably(self.index / job_id, sha.encode())
        return sha

    def forget(self, job_id: str) -> None:
        """Drop a job from the index (it did not succeed after all); its file may stay."""
        (self.index / job_id).unlink(missing_ok=True)

    def load(self, job_id: str) -> dict[str, Any]:
        """The snapshot `jobs/<id>` names; ValueError if the file fails its name."""
        sha = (self.index / job_id).read_text().strip()
        data = (self.objects / f"{sha}.json.gz").read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise ValueError(f"results file {sha[:12]}… of {job_id} fails its checksum")
        return json.loads(gzip.decompress(data))

    def job_ids(self) -> list[str]:
        if not self.index.is_dir():
            return []
        return sorted(p.name for p in self.index.iterdir() if JOB_ID.match(p.name))

    def reconcile(self, store: Store) -> list[str]:
        """Restore every finished job the database lacks or no longer has as succeeded;
        returns their ids. Each restore (and each unreadable file) is logged as an error."""
        restored = []
        for job_id in self.job_ids():
            if store.job_state(job_id) == "succeeded":
                continue
            try:
                snapshot = self.load(job_id)
            except (OSError, ValueError) as e:
                log.error("finished job %s cannot be restored: %s", job_id, e)
                continue
            was = store.job_state(job_id)
            store.restore(snapshot)
            log.error(
                "the database lost finished job %s (it was %s there); restored it and its "
                "%d window records from %s",
                job_id,
                was or "missing",
                sum(len(rows) for rows in snapshot["windows"].values()),
                self.root,
            )
            restored.append(job_id)
        if restored:
            store.checkpoint()
        return restored


def _write_durably(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
