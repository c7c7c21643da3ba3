"""A record's code: the file as submitted, what it decodes to, and what the rules count.

The rules count the code bytes of `train_gpt.py` as submitted. Records submit it three ways:

- `plain`: the script itself.
- `shim`: a self-extracting wrapper, `exec(lzma.decompress(base64.b85decode("…"), …))`,
  the payload either an `.xz` stream or a raw LZMA2 stream (`format=FORMAT_RAW,
  filters=[{"id": FILTER_LZMA2}]`, as most records write it). The wrapper is read by AST
  (the b85 text is the first argument of the `b85decode` call, adjacent literals joined),
  decoded, and decompressed with an output cap (`MAX_DECODED_BYTES`); the container is
  chosen by the payload's magic bytes (`.xz` starts `FD 37 7A 58 5A 00`), not by what the
  wrapper claims. Never executed.
- `stub`: a tiny file that runs another file of the folder,
  `exec(open(__file__.replace("train_gpt.py", "X.py")).read())` (as
  2026-04-06_SP8192_HessianSDClip_ProgressiveRecurrence does): the code is X.py, and both
  sizes are reported, since the rules count the submitted file and the stub hides X.py's
  bytes. A stub's target must be a file of the same folder.

`read_source(folder)` picks the script (`train_gpt.py`, else the one `train_gpt*.py`),
refusing files over `MAX_SUBMITTED_BYTES`.
"""

from __future__ import annotations

import ast
import base64
import lzma
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from golf.record.errors import RecordError
from golf.record.files import read_text
from golf.record.parse import parse_python

MAX_SUBMITTED_BYTES = 2_000_000
"""train_gpt.py as submitted; the largest record is 158 KB (the budget is 16 MB in all)."""
MAX_DECODED_BYTES = 4_000_000
"""A shim's decompressed output; the largest decodes to 61 KB."""
XZ_MAGIC = b"\xfd7zXZ\x00"
SourceKind = Literal["plain", "shim", "stub"]


@dataclass(frozen=True)
class Source:
    """The code of a record.

    `path`: the submitted file; `submitted_bytes`: its size (what the rules count);
    `kind`: plain, shim or stub; `code`: the Python that runs (decoded for a shim, the
    target's text for a stub); `code_name`: the file `code` comes from (for findings:
    `train_gpt.py` for plain, `train_gpt.py (decoded)` for a shim, the target for a stub);
    `target`, `target_bytes`: a stub's target file and its size (None otherwise);
    `container`: a shim's payload container, `xz` or `lzma2-raw` (None otherwise).
    """

    path: Path
    submitted_bytes: int
    kind: SourceKind
    code: str
    code_name: str
    target: Path | None = None
    target_bytes: int | None = None
    container: str | None = None

    @property
    def code_bytes(self) -> int:
        """UTF-8 bytes of the code that runs (the decoded script, or the stub's target)."""
        return len(self.code.encode("utf-8"))

    def tree(self) -> ast.Module:
        """The code parsed with golf.record.parse's limits."""
        return parse_python(self.code, self.code_name)


def script_path(folder: Path) -> Path:
    """The record's training script: `train_gpt.py`, else the only `train_gpt*.py`."""
    main = folder / "train_gpt.py"
    if main.exists() or main.is_symlink():
        return main
    found = sorted(p for p in folder.glob("train_gpt*.py") if "decode" not in p.name)
    if len(found) == 1:
        return found[0]
    if not found:
        raise RecordError(f"{folder.name}: no train_gpt.py")
    names = ", ".join(p.name for p in found)
    raise RecordError(f"{folder.name}: no train_gpt.py and several candidates ({names})")


def read_source(folder: Path, path: Path | None = None) -> Source:
    """The record's code (see the module doc), decoded, never executed."""
    path = path or script_path(folder)
    text = read_text(folder, path, MAX_SUBMITTED_BYTES)
    submitted = len(text.encode("utf-8"))
    name = path.name
    payload = shim_payload(text, name)
    if payload is not None:
        code, container = decode_payload(payload, name)
        return Source(path, submitted, "shim", code, f"{name} (decoded)", container=container)
    target = stub_target(text)
    if target is not None:
        target_path = folder / target
        if Path(target).name != target or target_path == path:
            raise RecordError(f"{name}: a stub loading {target!r}, not another file here")
        code = read_text(folder, target_path, MAX_SUBMITTED_BYTES)
        return Source(
            path,
            submitted,
            "stub",
            code,
            target,
            target=target_path,
            target_bytes=len(code.encode("utf-8")),
        )
    return Source(path, submitted, "plain", text, name)


def shim_payload(text: str, name: str) -> bytes | None:
    """The b85-decoded payload of a self-extracting shim, or None when `text` is none.

    A shim is short and calls `b85decode` on string literals; anything that calls
    `b85decode` on something else is not treated as a shim (it is plain code).
    """
    if "b85decode" not in text or "decompress" not in text or len(text) > MAX_SUBMITTED_BYTES:
        return None
    try:
        tree = parse_python(text, name)
    except RecordError:
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and _called(node.func) == "b85decode"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str | bytes)
        ):
            raw = node.args[0].value
            raw = raw.encode("ascii", "replace") if isinstance(raw, str) else raw
            try:
                return base64.b85decode(raw)
            except ValueError as e:
                raise RecordError(f"{name}: its b85 payload does not decode ({e})") from None
    return None


def decode_payload(payload: bytes, name: str, limit: int = MAX_DECODED_BYTES) -> tuple[str, str]:
    """A shim's payload decompressed (xz or raw LZMA2, by its magic) under `limit` bytes,
    as UTF-8 text, and the container's name."""
    if payload.startswith(XZ_MAGIC):
        container, dec = "xz", lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    else:
        container = "lzma2-raw"
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
    try:
        out = dec.decompress(payload, max_length=limit + 1)
    except lzma.LZMAError as e:
        raise RecordError(f"{name}: its {container} payload does not decompress ({e})") from None
    if len(out) > limit:
        raise RecordError(f"{name}: its payload decompresses past the {limit:,}-byte limit")
    if not dec.eof:
        raise RecordError(f"{name}: its {container} payload is truncated")
    if not out.strip():
        raise RecordError(f"{name}: its {container} payload decompresses to nothing")
    try:
        code = out.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError(f"{name}: its payload is not UTF-8 text") from None
    if "\x00" in code:
        raise RecordError(f"{name}: its payload is binary, not text")
    return code, container


_STUB = re.compile(
    r"""^\s*exec\(\s*open\(\s*__file__\.replace\(\s*(['"])train_gpt\.py\1\s*,\s*(['"])([^'"]+)\2\s*\)\s*\)\.read\(\)\s*\)\s*$"""
)
_OPEN_LITERAL = re.compile(r"""^\s*exec\(\s*open\(\s*(['"])([^'"]+)\1\s*\)\.read\(\)\s*\)\s*$""")


def stub_target(text: str) -> str | None:
    """The file a one-line `exec(open(…).read())` stub runs, or None for any other text."""
    if len(text) > 1000:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1:
        return None
    if m := _STUB.match(lines[0]):
        return m.group(3)
    if m := _OPEN_LITERAL.match(lines[0]):
        return m.group(2)
    return None


def _called(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""
