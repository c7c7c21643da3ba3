"""Token shards and dataset folders in the Parameter Golf layout.

A shard is a 256-int32 little-endian header (magic, version, token count) followed by
uint16 tokens. A dataset is a folder of `*_val_*.bin` and `*_train_*.bin` shards,
concatenated in sorted order, plus the SentencePiece model that made them; its identity
hashes both, so a score always names exactly the text and tokenizer it was taken on.

CaseOps datasets add a byte sidecar per val shard, `*_val_bytes_*.bin` in the same shard
format: entry i is the raw-text bytes token i stands for (BOS 0). The `*_val_*.bin` glob
also matches those names, so sidecars are set apart by name before any shard is read as
tokens; each must pair with the token shard of the same name minus `bytes_` and hold as
many entries, else the dataset is refused. `byte_source` names where the bpb
denominator comes from: `sentencepiece-luts` or `sidecar`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from golf.data.bytes import ByteLUT, SidecarBytes, load_tokenizer
from golf.spec.errors import ConfigError, DataError, MismatchError

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")
TOKENIZER_FILE = "tokenizer.model"
_HASH_CHUNK = 1 << 22  # tokens hashed per update: 8 MiB, whatever the size of val
_PG_DATASET = re.compile(r"_sp(\d+)$")  # data/datasets/fineweb10B_sp1024
SIDECAR_MARK = "_val_bytes_"  # fineweb_val_bytes_000000.bin pairs with fineweb_val_000000.bin
BYTE_SOURCES = ("sentencepiece-luts", "sidecar")


def write_shard(path: Path | str, tokens: Sequence[int] | np.ndarray) -> None:
    """Write `tokens` as one shard; ids must fit in uint16."""
    tokens = np.asarray(tokens).reshape(-1)
    if tokens.size and (tokens.min() < 0 or tokens.max() > np.iinfo(np.uint16).max):
        raise DataError(f"{path}: token ids must lie in 0..65535 to be stored as uint16")
    if tokens.size >= 2**31:
        raise DataError(f"{path}: {tokens.size} tokens do not fit one shard; split them")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = MAGIC, VERSION, tokens.size
    with open(path, "wb") as f:
        header.tofile(f)
        tokens.astype(TOKEN_DTYPE, copy=False).tofile(f)


def read_shard(path: Path | str) -> np.ndarray:
    """The tokens of one shard, memory-mapped read-only, after checking its header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"shard not found: {path}")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise DataError(
            f"{path}: {size} bytes is shorter than the {HEADER_BYTES}-byte shard header; "
            "the file is truncated or not a shard"
        )
    magic, version, count = (int(v) for v in np.fromfile(path, dtype="<i4", count=3))
    if magic != MAGIC:
        raise DataError(f"{path}: magic {magic} is not {MAGIC}; not a Parameter Golf shard")
    if version != VERSION:
        raise DataError(f"{path}: shard version {version} is not supported (expected {VERSION})")
    expected = HEADER_BYTES + count * TOKEN_DTYPE.itemsize
    if count < 0 or size > expected:
        raise DataError(
            f"{path}: header declares {count} tokens ({expected} bytes) but the file has "
            f"{size} bytes; the token count is wrong"
        )
    if size < expected:
        raise DataError(
            f"{path}: truncated: header declares {count} tokens ({expected} bytes) but the "
            f"file has only {size} bytes; copy it again"
        )
    if count == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(count,))


def shard_length(path: Path | str) -> int:
    """Entries in a shard, its header checked against its size (read_shard's checks)."""
    return int(read_shard(path).size)


def _concat(shards: list[np.ndarray]) -> np.ndarray:
    """One array of the shards in order; a lone shard stays memory-mapped."""
    return shards[0] if len(shards) == 1 else np.concatenate(shards)


class Dataset:
    """A folder of val/train shards and the tokenizer they were made with.

    Open it with `Dataset.open`. Token arrays are uint16, memory-mapped where possible;
    hashes are computed once, in chunks.
    """

    def __init__(
        self,
        root: Path,
        tokenizer_path: Path,
        val_files: Sequence[Path],
        train_files: Sequence[Path],
        sidecar_files: Sequence[Path] = (),
    ):
        self.root = root
        self.tokenizer_path = tokenizer_path
        self.val_files = tuple(val_files)
        self.train_files = tuple(train_files)
        self.sidecar_files = tuple(sidecar_files)

    @classmethod
    def open(cls, data_dir: Path | str, tokenizer: Path | str | None = None) -> Dataset:
        """The dataset in `data_dir`, its tokenizer being `tokenizer` if given.

        Without one, `data_dir/tokenizer.model` is used, or, in the Parameter Golf layout
        (`data/datasets/<name>_sp<V>/`), the one `data/tokenizers/*_<V>_bpe.model`.
        """
        root = Path(data_dir)
        if root.is_file():
            raise DataError(
                f"{root} is a file; --data takes a dataset folder (with *_val_*.bin shards)"
            )
        if not root.is_dir():
            raise DataError(f"dataset folder not found: {root}")
        matched = sorted(root.glob("*_val_*.bin"))
        val_files = [p for p in matched if SIDECAR_MARK not in p.name]
        sidecars = [p for p in matched if SIDECAR_MARK in p.name]
        if not val_files:
            raise DataError(f"{root}: no *_val_*.bin shards; is this a dataset folder?")
        _check_sidecars(val_files, sidecars)
        if tokenizer is None:
            tokenizer_path = _find_tokenizer(root)
        else:
            tokenizer_path = Path(tokenizer)
            if not tokenizer_path.is_file():
                raise DataError(f"tokenizer not found: {tokenizer_path}")
        train = sorted(root.glob("*_train_*.bin"))
        return cls(root, tokenizer_path, val_files, train, sidecars)

    @property
    def byte_source(self) -> str:
        """Where bytes per token come from: "sidecar" (CaseOps) or "sentencepiece-luts"."""
        return "sidecar" if self.sidecar_files else "sentencepiece-luts"

    def val_bytes(self, seq_len: int | None = None) -> np.ndarray:
        """The sidecar's bytes of each val token, aligned with `val_tokens(seq_len)`."""
        if not self.sidecar_files:
            raise DataError(
                f"{self.name}: no *{SIDECAR_MARK}*.bin sidecar; bytes come from the LUTs"
            )
        return _concat([read_shard(path) for path in self.sidecar_files])[
            : self.val_tokens(seq_len).size
        ]

    @property
    def name(self) -> str:
        return self.root.name

    @cached_property
    def tokenizer_sha256(self) -> str:
        """sha256 of the tokenizer file's bytes, as artifacts record it."""
        return hashlib.sha256(self.tokenizer_path.read_bytes()).hexdigest()

    @cached_property
    def vocab_size(self) -> int:
        return int(load_tokenizer(self.tokenizer_path).vocab_size())

    def byte_lut(self, size: int | None = None) -> ByteLUT:
        """Byte tables of this dataset's tokenizer (see `ByteLUT.from_pieces` for `size`)."""
        return ByteLUT.from_model(self.tokenizer_path, size)

    def byte_counter(self, size: int | None = None) -> ByteLUT | SidecarBytes:
        """What scoring counts bytes with: the sidecar when there is one, else the LUTs."""
        if self.sidecar_files:
            return SidecarBytes(np.asarray(self.val_bytes()))
        return self.byte_lut(size)

    def val_tokens(self, seq_len: int | None = None) -> np.ndarray:
        """All val tokens, or with `seq_len` the reference's prefix of whole sequences + 1."""
        tokens = self._val
        if seq_len is None:
            return tokens
        if seq_len < 1:
            raise ConfigError(f"seq_len must be a positive number of tokens, got {seq_len}")
        usable = (tokens.size - 1) // seq_len * seq_len
        if usable <= 0:
            raise DataError(
                f"{self.name}: {tokens.size} val tokens are too few for seq_len={seq_len}"
            )
        return tokens[: usable + 1]

    def train_tokens(self) -> np.ndarray:
        """All train tokens in shard order."""
        if not self.train_files:
            raise DataError(f"{self.root}: no *_train_*.bin shards to train on")
        return _concat([read_shard(path) for path in self.train_files])

    @cached_property
    def sha256(self) -> str:
        """Dataset identity: sha256 of the tokenizer's sha256 (hex, then a newline) followed
        by every val token as little-endian uint16 bytes."""
        digest = hashlib.sha256(f"{self.tokenizer_sha256}\n".encode())
        for chunk in self._val_chunks():
            digest.update(chunk)
        for path in self.sidecar_files:  # CaseOps: the byte counts are part of the identity
            digest.update(b"sidecar\n")
            digest.update(memoryview(np.ascontiguousarray(read_shard(path))))
        return digest.hexdigest()

    def check_compatible(self, tokenizer_sha256: str, vocab_size: int) -> None:
        """Raise MismatchError unless an artifact with this tokenizer can be scored here."""
        if vocab_size != self.vocab_size:
            raise MismatchError(
                f"artifact vocab size {vocab_size} differs from the {self.vocab_size} of "
                f"dataset {self.name}'s tokenizer; evaluate on the dataset it was trained for"
            )
        if tokenizer_sha256 != self.tokenizer_sha256:
            raise MismatchError(
                f"artifact tokenizer sha256 {tokenizer_sha256[:12]}… differs from dataset "
                f"{self.name}'s {self.tokenizer_sha256[:12]}…; evaluate on the dataset it was "
                "trained for"
            )

    @cached_property
    def _val(self) -> np.ndarray:
        tokens = _concat([read_shard(path) for path in self.val_files])
        if tokens.size and int(tokens.max()) >= self.vocab_size:
            raise DataError(
                f"{self.name}: val token id {int(tokens.max())} is outside the tokenizer's "
                f"{self.vocab_size} ids; shards and tokenizer do not belong together"
            )
        return tokens

    def _val_chunks(self) -> Iterator[memoryview]:
        tokens = self._val
        for start in range(0, tokens.size, _HASH_CHUNK):
            yield memoryview(np.ascontiguousarray(tokens[start : start + _HASH_CHUNK]))


def _check_sidecars(val_files: Sequence[Path], sidecars: Sequence[Path]) -> None:
    """Every sidecar pairs with a token shard of as many entries; all shards or none."""
    if not sidecars:
        return
    by_name = {p.name: p for p in val_files}
    for sidecar in sidecars:
        twin = by_name.get(sidecar.name.replace(SIDECAR_MARK, "_val_"))
        if twin is None:
            raise DataError(f"byte sidecar {sidecar.name} has no token shard beside it")
        n_bytes, n_tokens = shard_length(sidecar), shard_length(twin)
        if n_bytes != n_tokens:
            raise DataError(
                f"byte sidecar {sidecar.name} has {n_bytes} entries, its token shard "
                f"{twin.name} {n_tokens}: they do not belong together"
            )
    if len(sidecars) != len(val_files):
        paired = {s.name.replace(SIDECAR_MARK, "_val_") for s in sidecars}
        lonely = next(p.name for p in val_files if p.name not in paired)
        raise DataError(f"val shard {lonely} has no byte sidecar while others do")


def _find_tokenizer(root: Path) -> Path:
    """`root/tokenizer.model`, else the Parameter Golf tokenizer for `root`'s vocab size."""
    if (root / TOKENIZER_FILE).is_file():
        return root / TOKENIZER_FILE
    match = _PG_DATASET.search(root.name)
    tokenizers = root.resolve().parent.parent / "tokenizers"
    if match and tokenizers.is_dir():
        found = sorted(tokenizers.glob(f"*_{match.group(1)}_bpe.model"))
        if len(found) == 1:
            return found[0]
    raise DataError(
        f"{root}: no {TOKENIZER_FILE} here or in a Parameter Golf data/tokenizers folder; "
        "pass it with --tokenizer PATH"
    )
