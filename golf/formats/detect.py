"""Read any of the board's artifact files and say in one line what it was.

compressor (by magic; brotli, which has none, is tried last) -> optional `BSHF` byte
unshuffle -> `torch.save` zip through the restricted loader (`torchzip`) -> container
reader (`containers`). The description reads like `int8_clean_per_row_v1 + zlib` or
`{w,m} + brotli (BSHF 1-byte, stride 2)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from golf.formats.artifact import (
    DEFAULT_MAX_DECOMPRESSED,
    ArtifactError,
    DecompressionBomb,
    NotAnArtifact,
    Truncated,
)
from golf.formats.compress import BSHF_MAGIC, Shuffle, decompress, sniff, unshuffle
from golf.formats.containers import Entry, container_of, read_entries
from golf.formats.torchzip import DEFAULT_MAX_TENSORS, load_weights

PER_GROUP_MAGIC = b"PGRP"


@dataclass(frozen=True)
class Reference:
    """A record's artifact, decoded: its tensors and how they were stored."""

    entries: dict[str, Entry]
    container: str
    compressor: str
    shuffle: Shuffle | None
    decompressed_bytes: int

    @property
    def description(self) -> str:
        extra = f" ({self.shuffle.describe()})" if self.shuffle else ""
        return f"{self.container} + {self.compressor}{extra}"


def read_reference(
    data: bytes,
    *,
    limit: int = DEFAULT_MAX_DECOMPRESSED,
    max_tensors: int = DEFAULT_MAX_TENSORS,
) -> Reference:
    """Decode a record's artifact bytes; every failure is one ArtifactError line."""
    if not data:
        raise NotAnArtifact("empty file")
    if data.startswith(PER_GROUP_MAGIC):
        from golf.formats.pergroup import read_pergroup

        obj = read_pergroup(data, limit=limit, max_tensors=max_tensors)
        return Reference(read_entries(obj), container_of(obj), "per-group lrzip + brotli", None, 0)
    compressor = sniff(data)
    if compressor is None:
        try:
            raw = decompress(data, "brotli", limit)
        except (Truncated, DecompressionBomb) as e:  # it decodes as brotli, up to a point
            raise type(e)(f"read as brotli (no magic): {e}") from None
        except ArtifactError as e:
            raise NotAnArtifact(
                f"unknown artifact format (starts with {data[:8].hex()}; not xz, zstd, zlib, "
                f"lrzip, a zip, and as brotli: {e})"
            ) from None
        compressor = "brotli"
    else:
        raw = decompress(data, compressor, limit)
    shuffle = None
    if raw.startswith(BSHF_MAGIC):
        raw, shuffle = unshuffle(raw)
    obj = load_weights(raw, limit=limit, max_tensors=max_tensors)
    container = container_of(obj)
    return Reference(read_entries(obj), container, compressor, shuffle, len(raw))
