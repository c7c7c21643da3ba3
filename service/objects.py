"""Job inputs in the Ray object store, put once per content hash.

Workers cache by the same keys, so an artifact or a dataset crosses to a worker node
once however many shards it runs; nothing is read from the service's disk there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import ray

from golf.data.shards import Dataset
from workers.cache import LRU
from workers.integrity import verified
from workers.task import Blob


class ObjectCache:
    def __init__(self, artifacts_dir: Path, capacity: int = 32):
        self.artifacts_dir = artifacts_dir
        self._refs: LRU[Blob] = LRU(capacity)
        self._lock = threading.Lock()  # called from the scheduler's worker threads

    def artifact(self, sha256: str) -> Blob:
        """The stored artifact, re-hashed against its name before it is shared."""
        path = self.artifacts_dir / f"{sha256}.golf"
        return self._put(sha256, lambda: verified(path.read_bytes(), sha256, "stored artifact"))

    def tokens(self, dataset: Dataset, seq_len: int) -> Blob:
        """The N + 1 val tokens `golf eval` scores at this seq_len."""
        return self._put(
            f"{dataset.sha256}:{seq_len}",
            lambda: np.ascontiguousarray(dataset.val_tokens(seq_len)),
        )

    def byte_counter(self, dataset: Dataset, vocab_size: int) -> Blob:
        """What workers count target bytes with, as `golf eval` does: a CaseOps dataset's
        sidecar (part of its identity), else the tokenizer's tables."""
        key = f"{dataset.sha256}:sidecar" if dataset.sidecar_files else dataset.tokenizer_sha256
        return self._put(f"{key}:{vocab_size}", lambda: dataset.byte_counter(vocab_size))

    def _put(self, key: str, load: Callable[[], object]) -> Blob:
        with self._lock:
            return self._refs.get(key, lambda: Blob(key, ray.put(load())))
