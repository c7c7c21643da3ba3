"""Checksums that make stored inputs and results tamper-evident end to end.

An artifact is named by its sha256, so every load re-hashes the bytes against the
name (service and worker). Each window record carries a checksum the worker computes
over its identity and values, keyed (HMAC-SHA256) with a secret the service keeps
outside its database, so whoever can edit rows cannot recompute their checksums; each
shard carries a digest over its records' checksums in window order, so a row that is
deleted, added or moved between shards is caught as well. The service verifies both
before it declares a report: an edited or torn row fails the report instead of moving it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

KEY_BYTES = 32


class IntegrityError(Exception):
    """Stored bytes or records do not match their checksum."""


def verified(data: bytes, sha256: str, what: str) -> bytes:
    """`data` if it hashes to `sha256`; IntegrityError naming `what` otherwise."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"{what} {sha256[:12]}… fails its checksum (the bytes hash to {actual[:12]}…)"
        )
    return data


def record_checksum(
    key: bytes, job: str, protocol: str, window: int, nll_sum: float, tokens: int, n_bytes: int
) -> str:
    """Hex HMAC of one window record under `key`; `float.hex` keeps every bit of the NLL."""
    text = f"{job}|{protocol}|{window}|{float(nll_sum).hex()}|{tokens}|{n_bytes}"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def shard_digest(checksums: Iterable[str]) -> str:
    """Digest of a shard's record checksums in window order."""
    return hashlib.sha256("".join(checksums).encode()).hexdigest()


class ShardDigest:
    """`shard_digest` computed as a shard's batches stream out."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, checksums: Iterable[str]) -> str:
        """Add a batch's checksums; the digest of everything added so far."""
        self._hash.update("".join(checksums).encode())
        return self._hash.hexdigest()


def load_record_key(path: Path) -> bytes:
    """The service's record key from `path`, made (random, mode 600) if it is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(KEY_BYTES) + "\n")
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 16:
        raise IntegrityError(f"record key {path} is shorter than 16 bytes")
    return key


class RunningDigest:
    """`shard_digest` of a chain's records so far in window order: running while they
    arrive in window order (`ttt`), recomputed from the sorted list otherwise."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.running: ShardDigest | None = ShardDigest()
        self.current = shard_digest([])

    def add(self, records: list[dict[str, Any]]) -> None:
        last = self.records[-1]["window"] if self.records else -1
        for r in records:
            if r["window"] <= last:
                self.running = None
            last = r["window"]
        self.records.extend(records)
        if self.running is not None:
            self.current = self.running.update(r["checksum"] for r in records)
        else:
            ordered = sorted(self.records, key=lambda r: r["window"])
            self.current = shard_digest(r["checksum"] for r in ordered)

    def value(self) -> str:
        return self.current
