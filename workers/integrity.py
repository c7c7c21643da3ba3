"""Checksums that make stored inputs and results tamper-evident end to end.

An artifact is named by its sha256, so every load re-hashes the bytes against the
name (service and worker). Each window record carries a checksum the worker computes
over its identity and values, and each shard a digest over its records; the service
verifies both before it declares a report, so an edited or torn row fails the report
instead of moving it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


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
    job: str, protocol: str, window: int, nll_sum: float, tokens: int, n_bytes: int
) -> str:
    """Hex checksum of one window record; `float.hex` keeps every bit of the NLL sum."""
    text = f"{job}|{protocol}|{window}|{float(nll_sum).hex()}|{tokens}|{n_bytes}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def shard_digest(checksums: Iterable[str]) -> str:
    """Digest of a shard's record checksums in window order."""
    return hashlib.sha256("".join(checksums).encode()).hexdigest()
