"""Decode a record's train_gpt.py without running it.

Many records ship their script as a self-extracting shim: `exec(lzma.decompress(
b85decode("...")))`, usually a raw LZMA2 stream (`format=FORMAT_RAW`), one record as a
pointer to a sibling `train_gpt_decode.py`. The literal is found with `ast`, decoded with
a size cap, and the result is decoded again while it is still a shim. Nothing is executed.
"""

from __future__ import annotations

import ast
import base64
import lzma
import re
from pathlib import Path

MAX_SOURCE_BYTES = 4 << 20
_SIBLING = re.compile(
    r"""__file__\.replace\(\s*["']train_gpt\.py["']\s*,\s*["']([\w.]+)["']\s*\)"""
)


class ShimError(ValueError):
    """The file looks like a shim but cannot be decoded."""


def _b85_call(tree: ast.AST) -> tuple[str, bool] | None:
    """The b85 literal of the first `decompress(b85decode(LITERAL), ...)` call, raw or not."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        inner = node.args[0]
        if name != "decompress" or not isinstance(inner, ast.Call) or not inner.args:
            continue
        if getattr(inner.func, "attr", getattr(inner.func, "id", "")) != "b85decode":
            continue
        literal = inner.args[0]
        if not (isinstance(literal, ast.Constant) and isinstance(literal.value, str | bytes)):
            raise ShimError("b85decode argument is not a literal")
        raw = any(
            kw.arg == "format" and "FORMAT_RAW" in ast.unparse(kw.value) for kw in node.keywords
        )
        value = literal.value
        return (value.decode("ascii") if isinstance(value, bytes) else value), raw
    return None


def _lzma(data: bytes, raw: bool) -> bytes:
    if raw:
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
    else:
        dec = lzma.LZMADecompressor()
    out = dec.decompress(data, max_length=MAX_SOURCE_BYTES + 1)
    if len(out) > MAX_SOURCE_BYTES:
        raise ShimError(f"decoded source exceeds {MAX_SOURCE_BYTES} bytes")
    return out


def decode_source(path: Path, *, depth: int = 4) -> str:
    """The Python source a record's script runs, decoding shims (never executing them)."""
    text = path.read_text("utf-8")
    for _ in range(depth):
        if "exec(" not in text:
            return text
        sibling = _SIBLING.search(text)
        if sibling:
            text = (path.parent / sibling.group(1)).read_text("utf-8")
            continue
        found = _b85_call(ast.parse(text))
        if found is None:
            return text
        literal, raw = found
        text = _lzma(base64.b85decode(literal), raw).decode("utf-8")
    raise ShimError(f"{path}: still a shim after {depth} decodings")
