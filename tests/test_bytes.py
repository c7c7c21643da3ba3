"""Byte accounting: the tables, the vectorised count, and bits per byte."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from golf.data.bytes import ByteLUT, PieceKind, bits_per_byte, load_tokenizer, piece_kinds
from golf.data.shards import Dataset
from golf.spec.errors import DataError

PIECES = [
    ("<unk>", PieceKind.UNKNOWN),  # 0
    ("<s>", PieceKind.CONTROL),  # 1
    ("</s>", PieceKind.CONTROL),  # 2
    ("<0x41>", PieceKind.BYTE),  # 3
    ("▁the", PieceKind.NORMAL),  # 4
    ("cat", PieceKind.NORMAL),  # 5
    ("▁", PieceKind.NORMAL),  # 6
    ("é", PieceKind.NORMAL),  # 7: 2 UTF-8 bytes
    ("▁日本", PieceKind.NORMAL),  # 8: 6 bytes + space
    ("<unused>", PieceKind.UNUSED),  # 9
    ("<0xE2>", PieceKind.BYTE),  # 10
    ("a▁b", PieceKind.NORMAL),  # 11: only a leading ▁ is a space; an inner one is 3 bytes
]
UNK, BOS, EOS, BYTE_A, THE, CAT, SPACE, E_ACUTE, NIHON, UNUSED, BYTE_E2, INNER = range(12)


@pytest.fixture(scope="module")
def lut() -> ByteLUT:
    return ByteLUT.from_pieces(PIECES)


def test_tables(lut):
    assert lut.base_bytes.tolist() == [0, 0, 0, 1, 3, 3, 0, 2, 6, 0, 1, 5]
    assert np.flatnonzero(lut.leading_space).tolist() == [THE, SPACE, NIHON]
    assert np.flatnonzero(lut.boundary).tolist() == [UNK, BOS, EOS, UNUSED]


@pytest.mark.parametrize(
    ("prev", "target", "expected"),
    [
        (CAT, THE, 4),  # "cat" + " the"
        (BOS, THE, 3),  # a leading ▁ right after a boundary writes no space
        (UNK, THE, 3),
        (UNUSED, THE, 3),
        (EOS, NIHON, 6),
        (THE, NIHON, 7),
        (THE, CAT, 3),
        (BOS, CAT, 3),
        (CAT, SPACE, 1),  # a lone ▁ is one space, or nothing after a boundary
        (BOS, SPACE, 0),
        (THE, E_ACUTE, 2),
        (SPACE, BYTE_A, 1),  # byte pieces count 1 whatever precedes them
        (BOS, BYTE_E2, 1),
        (THE, BOS, 0),  # control, unknown and unused targets write nothing
        (THE, UNK, 0),
        (THE, UNUSED, 0),
        (THE, INNER, 5),
    ],
)
def test_count_pairs(lut, prev, target, expected):
    assert lut.count(np.array([prev]), np.array([target])).tolist() == [expected]
    out = lut.count(torch.tensor([prev]), torch.tensor([target]))
    assert out.dtype == torch.long and out.tolist() == [expected]


def scalar_bytes(prev: int, target: int) -> int:
    piece, kind = PIECES[target]
    if kind in (PieceKind.CONTROL, PieceKind.UNKNOWN, PieceKind.UNUSED):
        return 0
    if kind is PieceKind.BYTE:
        return 1
    space = piece.startswith("▁")
    after_text = PIECES[prev][1] in (PieceKind.NORMAL, PieceKind.BYTE)
    return len(piece.removeprefix("▁").encode()) + (space and after_text)


ids = st.integers(0, len(PIECES) - 1)


@given(st.data())
def test_count_is_elementwise_in_any_shape(lut, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    n = math.prod(shape)
    prev = np.array(data.draw(st.lists(ids, min_size=n, max_size=n))).reshape(shape)
    target = np.array(data.draw(st.lists(ids, min_size=n, max_size=n))).reshape(shape)
    expected = [scalar_bytes(p, t) for p, t in zip(prev.flat, target.flat, strict=True)]
    out = lut.count(prev, target)
    assert isinstance(out, np.ndarray) and out.shape == shape
    assert out.reshape(-1).tolist() == expected
    as_torch = lut.count(torch.from_numpy(prev).int(), torch.from_numpy(target).short())
    assert as_torch.dtype == torch.long and as_torch.shape == shape
    assert as_torch.reshape(-1).tolist() == expected


def test_ids_past_the_tokenizer_are_zero_byte_boundaries():
    lut = ByteLUT.from_pieces(PIECES, size=16)
    assert len(lut) == 16 and lut.boundary[12:].all() and not lut.base_bytes[12:].any()
    assert lut.count(np.array([14, CAT]), np.array([THE, 15])).tolist() == [3, 0]


def test_demo_tokenizer_tables(demo_data):
    path = demo_data / "tokenizer.model"
    lut = ByteLUT.from_model(path)
    pieces = piece_kinds(load_tokenizer(path))
    assert len(lut) == 1024 and [kind for _, kind in pieces[:4]] == [
        PieceKind.CONTROL,
        PieceKind.CONTROL,
        PieceKind.CONTROL,
        PieceKind.UNKNOWN,
    ]  # pad, bos, eos, unk
    assert lut.boundary[:4].all() and not lut.boundary[4:].any()
    byte_ids = [i for i, (_, kind) in enumerate(pieces) if kind is PieceKind.BYTE]
    assert len(byte_ids) == 256 and (lut.base_bytes[byte_ids] == 1).all()


def test_bytes_sum_to_the_decoded_text(demo_data):
    """Σ bytes over every val target = Σ UTF-8 bytes of each document's decoded text.

    Each document is BOS + its pieces (no dummy prefix, no leading whitespace), so: a BOS
    target adds 0; a document's first piece follows BOS, a boundary, and has no ▁ to
    lose; every later piece follows a normal or byte piece, so its ▁ is the space the
    decoder writes; byte pieces of valid UTF-8 text decode to exactly themselves. The
    stream's first token (a BOS) is no target and would add 0 anyway.
    """
    dataset = Dataset.open(demo_data)
    tokens = np.asarray(dataset.val_tokens(), dtype=np.int64)
    tokenizer = load_tokenizer(dataset.tokenizer_path)
    lut = dataset.byte_lut()
    per_target = lut.count(tokens[:-1], tokens[1:])
    starts = np.flatnonzero(tokens == tokenizer.bos_id())
    assert starts[0] == 0 and len(starts) > 100
    decoded = 0
    for lo, hi in zip(starts, [*starts[1:], len(tokens)], strict=True):
        doc = tokens[lo + 1 : hi].tolist()
        assert not tokenizer.id_to_piece(doc[0]).startswith("▁")
        text_bytes = len(tokenizer.decode(doc).encode("utf-8"))
        assert per_target[lo : hi - 1].sum() == text_bytes  # targets lo+1 .. hi-1
        decoded += text_bytes
    assert per_target.sum() == decoded
    assert len(tokenizer.decode(tokens.tolist()).encode("utf-8")) == decoded
    torch_total = lut.count(torch.from_numpy(tokens[:-1]), torch.from_numpy(tokens[1:])).sum()
    assert int(torch_total) == decoded


def test_bits_per_byte():
    assert bits_per_byte(8 * math.log(2), 4) == pytest.approx(2.0, rel=1e-15)
    assert bits_per_byte(0.0, 10) == 0.0
    with pytest.raises(DataError, match="0 bytes"):
        bits_per_byte(1.0, 0)


def test_unreadable_tokenizer_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ByteLUT.from_model(tmp_path / "missing.model")
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a SentencePiece model"):
        ByteLUT.from_model(tmp_path / "junk.model")
