"""Compressors of the records' artifacts, each decoded under an output cap.

A record writes `compress(shuffle?(torch.save(...)))` with one of lzma (xz or the
legacy .lzma container), zlib, zstd (level 22), brotli (quality 11) or lrzip, the
brotli ones usually after a `BSHF` byte shuffle. Every decoder here stops past
`limit` output bytes (DecompressionBomb), and says Truncated or CorruptStream in one
line otherwise; none of them runs the payload. lrzip has no maintained Python binding
(PyPI `lrzip` 1.0.0 is from 2017), so Debian's `lrzip` binary runs as a subprocess
with its output file capped by RLIMIT_FSIZE and a timeout.
"""

from __future__ import annotations

import io
import lzma
import os
import resource
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass

from golf.formats.artifact import CorruptStream, DecompressionBomb, NotAnArtifact, Truncated

XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LRZIP_MAGIC = b"LRZI"
ZIP_MAGIC = b"PK\x03\x04"
BSHF_MAGIC = b"BSHF"
LZMA_MEMLIMIT = 256 * 2**20
LRZIP_TIMEOUT_S = 120

COMPRESSORS = ("xz", "lzma-alone", "zlib", "zstd", "brotli", "lrzip", "none")


def sniff(data: bytes) -> str | None:
    """The compressor a blob's magic bytes name, "brotli" left as the fallback (it has none)."""
    if data.startswith(XZ_MAGIC):
        return "xz"
    if data.startswith(ZSTD_MAGIC):
        return "zstd"
    if data.startswith(LRZIP_MAGIC):
        return "lrzip"
    if data.startswith(ZIP_MAGIC):
        return "none"
    if len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        return "zlib"
    if len(data) >= 13 and data[0] == 0x5D:  # .lzma: lc3 lp0 pb2, power-of-two dictionary
        dict_size = int.from_bytes(data[1:5], "little")
        if dict_size and dict_size & (dict_size - 1) == 0:
            return "lzma-alone"
    return None


def decompress(data: bytes, name: str, limit: int) -> bytes:
    """`data` decoded by compressor `name`, at most `limit` bytes out."""
    if name == "none":
        if len(data) > limit:
            raise DecompressionBomb(f"payload of {len(data)} bytes exceeds the limit of {limit}")
        return data
    decoder = {
        "xz": _xz,
        "lzma-alone": _lzma_alone,
        "zlib": _zlib,
        "zstd": _zstd,
        "brotli": _brotli,
        "lrzip": _lrzip,
    }.get(name)
    if decoder is None:
        raise NotAnArtifact(f"unknown compressor {name!r}; known: {', '.join(COMPRESSORS)}")
    return decoder(data, limit)


def _lzma(data: bytes, limit: int, fmt: int, what: str) -> bytes:
    dec = lzma.LZMADecompressor(format=fmt, memlimit=LZMA_MEMLIMIT)
    try:
        out = dec.decompress(data, max_length=limit + 1)
    except lzma.LZMAError as e:
        if "memory" in str(e).lower():
            raise DecompressionBomb(
                f"{what} stream needs over {LZMA_MEMLIMIT} bytes of memory"
            ) from None
        raise CorruptStream(f"{what} stream is corrupt: {e}") from None
    if len(out) > limit:
        raise DecompressionBomb(f"{what}: decompressed size exceeds the limit of {limit} bytes")
    if not dec.eof:
        raise Truncated(f"{what} stream ends early after {len(data)} bytes")
    if dec.unused_data.strip(b"\x00"):
        raise CorruptStream(f"{what}: {len(dec.unused_data)} trailing bytes after the stream")
    return out


def _xz(data: bytes, limit: int) -> bytes:
    return _lzma(data, limit, lzma.FORMAT_XZ, "xz")


def _lzma_alone(data: bytes, limit: int) -> bytes:
    return _lzma(data, limit, lzma.FORMAT_ALONE, "lzma")


def _zlib(data: bytes, limit: int) -> bytes:
    dec = zlib.decompressobj()
    try:
        out = dec.decompress(data, limit + 1)
    except zlib.error as e:
        raise CorruptStream(f"zlib stream is corrupt: {e}") from None
    if len(out) > limit:
        raise DecompressionBomb(f"zlib: decompressed size exceeds the limit of {limit} bytes")
    if not dec.eof:
        raise Truncated(f"zlib stream ends early after {len(data)} bytes")
    if dec.unused_data:
        raise CorruptStream(f"zlib: {len(dec.unused_data)} trailing bytes after the stream")
    return out


def _zstd(data: bytes, limit: int) -> bytes:
    import zstandard

    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as e:
        raise Truncated(f"zstd frame header unreadable ({len(data)} bytes): {e}") from None
    declared = params.content_size
    if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > limit:
        raise DecompressionBomb(f"zstd frame declares {declared} bytes, over the limit of {limit}")
    if params.window_size > LZMA_MEMLIMIT:
        raise DecompressionBomb(f"zstd window of {params.window_size} bytes is over the limit")
    dctx = zstandard.ZstdDecompressor(max_window_size=LZMA_MEMLIMIT)
    try:
        return dctx.decompress(data, max_output_size=limit)
    except zstandard.ZstdError as e:
        if declared == zstandard.CONTENTSIZE_UNKNOWN:
            with dctx.stream_reader(io.BytesIO(data)) as reader:
                try:
                    if len(reader.read(limit + 1)) > limit:
                        raise DecompressionBomb(
                            f"zstd: decompressed size exceeds the limit of {limit} bytes"
                        ) from None
                except zstandard.ZstdError:
                    pass
        if "full frame" in str(e):
            raise Truncated(f"zstd frame ends early after {len(data)} bytes") from None
        raise CorruptStream(f"zstd stream is corrupt: {e}") from None


def _brotli(data: bytes, limit: int) -> bytes:
    import brotli

    dec = brotli.Decompressor()
    out = bytearray()
    step = 1 << 20
    try:
        out += dec.process(data, output_buffer_limit=step)
        while not dec.is_finished() and not dec.can_accept_more_data():
            if len(out) > limit:
                break
            out += dec.process(b"", output_buffer_limit=step)
    except brotli.error as e:
        raise CorruptStream(f"brotli stream is corrupt: {e}") from None
    if len(out) > limit:
        raise DecompressionBomb(f"brotli: decompressed size exceeds the limit of {limit} bytes")
    if not dec.is_finished():
        raise Truncated(f"brotli stream ends early after {len(data)} bytes")
    return bytes(out)


def _lrzip(data: bytes, limit: int) -> bytes:
    binary = shutil.which("lrzip")
    if binary is None:
        raise NotAnArtifact(
            "an lrzip stream needs Debian's `lrzip` binary on PATH (apt install lrzip)"
        )
    if len(data) < 14:
        raise Truncated(f"lrzip header ends after {len(data)} bytes")
    declared = int.from_bytes(data[6:14], "little")
    if declared > limit:
        raise DecompressionBomb(
            f"lrzip header declares {declared} bytes, over the limit of {limit}"
        )

    def cap() -> None:  # in the child: its output file may not grow past the limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit + 1, limit + 1))

    with tempfile.TemporaryDirectory(prefix="golf-lrz-") as tmp:
        src, dst = os.path.join(tmp, "in.lrz"), os.path.join(tmp, "out.bin")
        with open(src, "wb") as f:
            f.write(data)
        try:
            proc = subprocess.run(
                [binary, "-d", "-q", "-f", "-o", dst, src],
                capture_output=True,
                timeout=LRZIP_TIMEOUT_S,
                preexec_fn=cap,  # noqa: PLW1509 (no threads are started around it)
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CorruptStream(f"lrzip did not finish within {LRZIP_TIMEOUT_S} s") from None
        size = os.path.getsize(dst) if os.path.exists(dst) else -1
        if size > limit or proc.returncode in (-25, 153):  # SIGXFSZ
            raise DecompressionBomb(f"lrzip: decompressed size exceeds the limit of {limit} bytes")
        if proc.returncode != 0 or size < 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            why = tail[-1][:160] if tail else f"exit status {proc.returncode}"
            raise CorruptStream(f"lrzip could not decode the stream: {why}")
        if size != declared:
            raise Truncated(f"lrzip wrote {size} bytes, its header declares {declared}")
        with open(dst, "rb") as f:
            return f.read()


@dataclass(frozen=True)
class Shuffle:
    """A `BSHF` byte-shuffle header: magic, stride in `header_bytes` bytes (1 or 2, LE)."""

    stride: int
    header_bytes: int

    def describe(self) -> str:
        return f"BSHF {self.header_bytes}-byte, stride {self.stride}"


def unshuffle(data: bytes, expect: tuple[bytes, ...] = (ZIP_MAGIC,)) -> tuple[bytes, Shuffle]:
    """Undo a `BSHF` shuffle: bytes `i ≡ s (mod stride)` were stored together, s = 0, 1, ….

    The stride takes 1 byte after the magic in most records and 2 (little-endian) in
    2026-03-31_ParallelResiduals_MiniDepthRecurrence; a 1-byte stride 2 followed by a 0
    byte reads the same as a 2-byte stride 2, so the header size whose result starts
    with one of `expect` (a zip: torch.save) wins.
    """
    if not data.startswith(BSHF_MAGIC) or len(data) < 5:
        raise NotAnArtifact("no BSHF byte-shuffle header")
    tried = []
    for header_bytes in (1, 2):
        head = data[4 : 4 + header_bytes]
        if len(head) < header_bytes:
            continue
        stride = int.from_bytes(head, "little")
        payload = data[4 + header_bytes :]
        out = _unshuffle(payload, stride)
        tried.append(stride)
        if out.startswith(expect):
            return out, Shuffle(stride, header_bytes)
    raise CorruptStream(f"BSHF payload does not unshuffle to a known container (strides {tried})")


def _unshuffle(payload: bytes, stride: int) -> bytes:
    import numpy as np

    if stride < 2:
        return payload
    src = np.frombuffer(payload, dtype=np.uint8)
    n = src.size
    out = np.empty(n, dtype=np.uint8)
    offset = 0
    for s in range(stride):
        count = n // stride + (1 if s < n % stride else 0)
        out[s::stride] = src[offset : offset + count]
        offset += count
    return out.tobytes()
