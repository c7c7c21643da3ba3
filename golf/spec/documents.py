"""Documents of a token stream: BOS (id 1) starts a document, which owns the next BOS.

The records that score per document (from 2026-04-10 on) cut the val stream at every BOS:
document j spans tokens `[b_j, b_{j+1}]`, so it predicts the next document's BOS as its
last target, and the last document runs to the end of the stream. Tokens before the first
BOS belong to no document and are not scored by the per-document protocols. Numpy only:
the job planner prices per-document work without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golf.spec.errors import DataError

BOS_ID = 1


@dataclass(frozen=True, eq=False)
class Documents:
    """Document j reads tokens `starts[j] : starts[j] + lengths[j]` (its targets are the
    same slice shifted by one: `lengths[j] - 1` of them, target indices
    `[starts[j], starts[j] + lengths[j] - 1)`)."""

    starts: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def targets(self) -> np.ndarray:
        """Targets (predictions) per document: length − 1."""
        return self.lengths - 1


def find_documents(tokens: np.ndarray, bos: int = BOS_ID) -> Documents:
    """The documents of a stream of n tokens (DataError when it holds no BOS)."""
    tokens = np.asarray(tokens)
    at = np.flatnonzero(tokens == bos).astype(np.int64)
    if len(at) == 0:
        raise DataError(f"no document boundary: the token stream holds no BOS (id {bos})")
    ends = np.append(at[1:] + 1, len(tokens))
    lengths = ends - at
    if lengths[-1] < 2:  # a BOS as the very last token opens an empty document
        at, lengths = at[:-1], lengths[:-1]
    if len(at) == 0:
        raise DataError("no document with a target: the stream is a single trailing BOS")
    for array in (at, lengths):
        array.flags.writeable = False
    return Documents(at, lengths)


@dataclass(frozen=True)
class DocBatch:
    """Documents of one batch (indices into `Documents`), shortest first; `order` is the
    batch's index among the length-sorted batches (the records' `orig_batch_idx`)."""

    order: int
    docs: np.ndarray


def doc_batches(docs: Documents, size: int) -> list[DocBatch]:
    """Batches in processing order: documents sorted by length (stable), cut into `size`s,
    batches ordered by their longest document, longest first (stable)."""
    by_length = np.argsort(docs.lengths, kind="stable")
    batches = [
        DocBatch(i, by_length[lo : lo + size])
        for i, lo in enumerate(range(0, len(by_length), size))
    ]
    longest = [-int(docs.lengths[b.docs].max()) for b in batches]
    return [batches[i] for i in np.argsort(longest, kind="stable")]
