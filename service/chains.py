"""Where running chains keep their checkpoints: one file per chain shard in the state dir.

A chain (`ttt`, `ttt-phased`) trains as it scores, so a lost worker would otherwise cost
the whole run. Every `chain_every_s` seconds (or `chain_every` steps) its rank 0 sends the
state it can resume from (weights, optimizer, position, scores so far:
golf.protocols.chain); the scheduler keeps the latest here, written atomically, and a
re-run of the shard starts from it. The file is the service's own (never an upload) and
is read back through the restricted loader.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from service.store import ShardKey


class ChainCheckpoints:
    def __init__(self, root: Path):
        self.root = root

    def path(self, key: ShardKey) -> Path:
        return self.root / key.job / f"{key.protocol}-{key.shard}.chain"

    def save(self, key: ShardKey, data: bytes) -> None:
        """Replace the shard's checkpoint, atomically (a crash leaves the old one)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def latest(self, key: ShardKey) -> bytes | None:
        """The shard's checkpoint, if one was saved."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def drop(self, job: str) -> None:
        """Forget a finished, failed or cancelled job's checkpoints."""
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.root / job)
