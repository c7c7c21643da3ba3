"""Reading a file of a record folder: inside the folder, a regular file, under a cap.

A record folder is untrusted: a symlink may point anywhere on the machine, a log may be
gigabytes, a "text" file may be binary. `read_bytes` refuses links that leave the folder
(any symlink at all, in fact: the official records have none), non-regular files and
files over `limit` bytes, each with a one-line RecordError naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from golf.record.errors import RecordError


def inside(folder: Path, path: Path) -> Path:
    """`path` checked to be a regular, non-symlinked file directly or deeper in `folder`."""
    name = _name(folder, path)
    try:
        st = os.lstat(path)
    except OSError as e:
        raise RecordError(f"{name}: cannot read ({e.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise RecordError(f"{name}: is a symbolic link (refused: it may leave the folder)")
    if not stat.S_ISREG(st.st_mode):
        raise RecordError(f"{name}: is not a regular file")
    real_folder = folder.resolve()
    real = path.resolve()
    if real_folder != real and real_folder not in real.parents:
        raise RecordError(f"{name}: lies outside the record folder")
    return real


def read_bytes(folder: Path, path: Path, limit: int) -> bytes:
    """The bytes of `path` (a file in `folder`), refused above `limit` bytes."""
    real = inside(folder, path)
    name = _name(folder, path)
    with open(real, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise RecordError(f"{name}: larger than the {limit:,}-byte limit")
    return data


def read_text(folder: Path, path: Path, limit: int) -> str:
    """`read_bytes` decoded as UTF-8; a file with NUL bytes or invalid UTF-8 is refused."""
    data = read_bytes(folder, path, limit)
    name = _name(folder, path)
    if b"\x00" in data:
        raise RecordError(f"{name}: is binary, not text (NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(f"{name}: is not UTF-8 text (byte {e.start})") from None


def _name(folder: Path, path: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return path.name
