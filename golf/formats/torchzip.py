"""The one way golf reads a `torch.save` archive: checked zip layout, then weights-only.

Before `torch.load(weights_only=True)` sees a byte, the zip's directory is read: only
stored (uncompressed) members, at most `max_tensors` storages, their declared sizes
summing to at most `limit`. The weights-only unpickler then refuses any global that is
not a tensor rebuild or a plain container, and a tensor whose shape does not fit its
storage fails inside it; every failure is one NotAnArtifact line. No other unpickling
happens anywhere in golf.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from golf.formats.artifact import DecompressionBomb, NotAnArtifact
from golf.spec.errors import ArtifactError

DEFAULT_MAX_TENSORS = 4096


class TooManyTensors(ArtifactError):
    """The archive holds more tensors (or storages) than the reader accepts."""


def load_weights(raw: bytes, *, limit: int, max_tensors: int = DEFAULT_MAX_TENSORS) -> Any:
    """The object a `torch.save` zip archive holds, read with the weights-only loader."""
    if not raw.startswith(b"PK\x03\x04"):
        raise NotAnArtifact(
            f"not a torch.save zip archive (starts with {raw[:8].hex()}); legacy pickles "
            "are not read"
        )
    try:
        members = zipfile.ZipFile(io.BytesIO(raw)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise NotAnArtifact(f"torch.save archive has a broken zip directory: {e}") from None
    storages = 0
    total = 0
    for m in members:
        if m.compress_type != zipfile.ZIP_STORED:
            raise NotAnArtifact(f"torch.save member {m.filename[:80]} is compressed inside the zip")
        total += m.file_size
        storages += "/data/" in m.filename and not m.filename.endswith(".pkl")
    if total > limit:
        raise DecompressionBomb(f"zip members declare {total} bytes, over the limit of {limit}")
    if storages > max_tensors:
        raise TooManyTensors(f"archive holds {storages} storages, more than {max_tensors}")
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # hostile input reaches many error types; none may escape
        text = str(e).strip()
        first = text.splitlines()[0][:200] if text else type(e).__name__
        raise NotAnArtifact(f"not a weights-only torch.save archive: {first}") from None
    n = sum(1 for _ in _tensors(obj, depth=0))
    if n > max_tensors:
        raise TooManyTensors(f"archive holds {n} tensors, more than {max_tensors}")
    return obj


def _tensors(obj: Any, depth: int) -> Iterator[Tensor]:
    if depth > 8:
        raise NotAnArtifact("torch.save archive nests containers more than 8 deep")
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v, depth + 1)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _tensors(v, depth + 1)
