"""Bytes per target token: the denominator of bits per byte.

A tokenizer-agnostic score charges each target token the UTF-8 bytes it adds to the
decoded text. That depends on the token and, for a leading space, on the token before
it, so it is read from three per-piece tables built from the SentencePiece model,
exactly as the reference `build_sentencepiece_luts` / `eval_val` do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from torch import Tensor

from golf.spec.errors import DataError

SPACE = "\u2581"
"""SentencePiece's visible space (▁), which stands for one space byte."""


class PieceKind(StrEnum):
    """What a piece is to the byte count; user-defined pieces count as normal ones."""

    NORMAL = "normal"
    BYTE = "byte"
    CONTROL = "control"
    UNKNOWN = "unknown"
    UNUSED = "unused"


def load_tokenizer(path: Path | str) -> spm.SentencePieceProcessor:
    """The SentencePiece model at `path`, or a DataError saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"tokenizer not found: {path}")
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(path.read_bytes())
    except (RuntimeError, OSError) as err:
        raise DataError(f"{path}: not a SentencePiece model ({err})") from None
    return processor


def piece_kinds(processor: spm.SentencePieceProcessor) -> list[tuple[str, PieceKind]]:
    """Every piece of a loaded model with its kind, in id order."""

    def kind(i: int) -> PieceKind:
        if processor.is_control(i):
            return PieceKind.CONTROL
        if processor.is_unknown(i):
            return PieceKind.UNKNOWN
        if processor.is_unused(i):
            return PieceKind.UNUSED
        if processor.is_byte(i):
            return PieceKind.BYTE
        return PieceKind.NORMAL

    return [(processor.id_to_piece(i), kind(i)) for i in range(processor.vocab_size())]


class ByteLUT:
    """Per-token byte tables: `base_bytes`, `leading_space` and `boundary`, indexed by id.

    A target t after token p adds `base_bytes[t] + (leading_space[t] and not boundary[p])`
    bytes: a leading ▁ is a real space only when something was written before it.
    """

    def __init__(self, base_bytes: np.ndarray, leading_space: np.ndarray, boundary: np.ndarray):
        self.base_bytes = np.asarray(base_bytes, dtype=np.int64)
        self.leading_space = np.asarray(leading_space, dtype=np.bool_)
        self.boundary = np.asarray(boundary, dtype=np.bool_)
        shapes = {self.base_bytes.shape, self.leading_space.shape, self.boundary.shape}
        if len(shapes) != 1 or self.base_bytes.ndim != 1:
            raise ValueError(f"byte tables must be three 1-D arrays of one length, got {shapes}")
        self._device_tables: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}

    @classmethod
    def from_pieces(
        cls, pieces: Sequence[tuple[str, PieceKind | str]], size: int | None = None
    ) -> ByteLUT:
        """Tables for `pieces` (id order); ids past them, up to `size`, are 0-byte boundaries.

        `size` lets a model whose embedding is wider than the tokenizer index its whole
        vocabulary, as the reference's `max(sp_vocab, vocab_size)` tables do.
        """
        size = max(len(pieces), size or 0)
        base_bytes = np.zeros(size, dtype=np.int64)
        leading_space = np.zeros(size, dtype=np.bool_)
        boundary = np.ones(size, dtype=np.bool_)
        for i, (piece, kind) in enumerate(pieces):
            kind = PieceKind(kind)
            if kind in (PieceKind.CONTROL, PieceKind.UNKNOWN, PieceKind.UNUSED):
                continue
            boundary[i] = False
            if kind is PieceKind.BYTE:
                base_bytes[i] = 1
                continue
            if piece.startswith(SPACE):
                leading_space[i] = True
                piece = piece[1:]
            base_bytes[i] = len(piece.encode("utf-8"))
        return cls(base_bytes, leading_space, boundary)

    @classmethod
    def from_model(cls, path: Path | str, size: int | None = None) -> ByteLUT:
        """Tables for the SentencePiece model at `path` (see `from_pieces` for `size`)."""
        return cls.from_pieces(piece_kinds(load_tokenizer(path)), size)

    source = "sentencepiece-luts"
    """What a report names as its byte source."""

    def __len__(self) -> int:
        return len(self.base_bytes)

    def batch_counts(self, inputs: Tensor, targets: Tensor, starts: Tensor) -> Tensor:
        """[B, T] bytes of a batch's targets (`starts` unused: the tables need only ids)."""
        del starts
        return self.count(inputs, targets)

    def at_positions(self, tokens: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Bytes of the val tokens predicted at `positions` (token p + 1, after token p)."""
        return self.count(tokens[positions], tokens[positions + 1])

    def count(
        self, prev_ids: Tensor | np.ndarray, target_ids: Tensor | np.ndarray
    ) -> Tensor | np.ndarray:
        """Bytes each target adds, given the token before it; any shape, ids as given.

        Torch in, int64 tensor out on the targets' device; anything else gives an int64
        ndarray.
        """
        if isinstance(target_ids, Tensor):
            base, space, boundary = self._tables(target_ids.device)
            target = target_ids.long()
            prev = torch.as_tensor(prev_ids, device=target_ids.device).long()
            return base[target] + (space[target] & ~boundary[prev]).long()
        target = np.asarray(target_ids).astype(np.intp, copy=False)
        prev = np.asarray(prev_ids).astype(np.intp, copy=False)
        return self.base_bytes[target] + (self.leading_space[target] & ~self.boundary[prev])

    def _tables(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """The tables as tensors on `device`, made once per device."""
        if device not in self._device_tables:
            self._device_tables[device] = (
                torch.tensor(self.base_bytes, device=device),
                torch.tensor(self.leading_space, device=device),
                torch.tensor(self.boundary, device=device),
            )
        return self._device_tables[device]


class SidecarBytes:
    """Bytes per val token read from a CaseOps sidecar: target j of a window starting at
    s adds `per_token[s + 1 + j]` (BOS entries are 0), whatever the ids."""

    source = "sidecar"

    def __init__(self, per_token: np.ndarray):
        self.per_token = np.asarray(per_token, dtype=np.int64)
        self._device: dict[torch.device, Tensor] = {}

    def batch_counts(self, inputs: Tensor, targets: Tensor, starts: Tensor) -> Tensor:
        """[B, T] bytes of a batch's targets by their positions in val (0 past its end)."""
        del inputs
        table = self._device.get(targets.device)
        if table is None:
            table = self._device[targets.device] = torch.tensor(
                self.per_token, device=targets.device
            )
        positions = (
            starts.long()[:, None] + 1 + torch.arange(targets.size(1), device=targets.device)
        )
        inside = positions < table.numel()
        return torch.where(inside, table[positions.clamp(max=table.numel() - 1)], 0)

    def at_positions(self, tokens: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Bytes of the val tokens predicted at `positions` (token p + 1), whatever the ids."""
        del tokens
        return self.per_token[np.asarray(positions, dtype=np.intp) + 1]


def bits_per_byte(nll_sum_nats: float, n_bytes: int) -> float:
    """Summed NLL in nats over the text's bytes, as bits per byte."""
    if n_bytes <= 0:
        raise DataError(f"cannot score {n_bytes} bytes: the scored targets decode to no text")
    return nll_sum_nats / math.log(2.0) / n_bytes
