"""Shards, dataset folders, val truncation and dataset identity."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from golf.data.demo import collect_documents, train_tokenizer
from golf.data.shards import HEADER_BYTES, MAGIC, Dataset, read_shard, write_shard
from golf.spec.errors import ConfigError, DataError, MismatchError


def shard_bytes(tokens, magic=MAGIC, version=1, count=None) -> bytes:
    header = np.zeros(256, dtype="<i4")
    header[:3] = magic, version, len(tokens) if count is None else count
    return header.tobytes() + np.asarray(tokens, dtype="<u2").tobytes()


def make_dataset(root: Path, tokenizer: Path, val: list[list[int]], train=()) -> Path:
    root.mkdir(parents=True)
    shutil.copy(tokenizer, root / "tokenizer.model")
    for i, tokens in enumerate(val):
        write_shard(root / f"x_val_{i:06d}.bin", tokens)
    for i, tokens in enumerate(train):
        write_shard(root / f"x_train_{i:06d}.bin", tokens)
    return root


@pytest.fixture
def tokenizer(demo_data: Path) -> Path:
    return demo_data / "tokenizer.model"


@pytest.mark.parametrize("tokens", [[], [0], [65535, 0, 1, 2], np.arange(70_000) % 65536], ids=len)
def test_write_read_round_trip(tmp_path, tokens):
    path = tmp_path / "a_val_000000.bin"
    write_shard(path, tokens)
    assert path.stat().st_size == HEADER_BYTES + 2 * len(tokens)
    assert path.read_bytes() == shard_bytes(tokens)
    read = read_shard(path)
    assert read.dtype == np.uint16 and read.tolist() == list(np.asarray(tokens, dtype=np.int64))


def test_read_is_memory_mapped_and_read_only(tmp_path):
    write_shard(tmp_path / "s.bin", [1, 2, 3])
    tokens = read_shard(tmp_path / "s.bin")
    assert isinstance(tokens, np.memmap)
    with pytest.raises(ValueError):
        tokens[0] = 9


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (shard_bytes([1, 2], magic=20240521), "magic 20240521"),
        (shard_bytes([1, 2], version=2), "version 2"),
        (shard_bytes([1, 2], count=3), "truncated"),
        (shard_bytes([1, 2, 3])[:-1], "truncated"),
        (shard_bytes([1, 2], count=1), "token count is wrong"),
        (shard_bytes([1, 2], count=-1), "token count is wrong"),
        (shard_bytes([])[:100], "shorter than the 1024-byte shard header"),
        (b"", "shorter than"),
    ],
    ids=["magic", "version", "count>size", "cut", "count<size", "negative", "short", "empty"],
)
def test_bad_shards_are_one_line_data_errors_naming_the_file(tmp_path, data, reason):
    path = tmp_path / "bad_val_000000.bin"
    path.write_bytes(data)
    with pytest.raises(DataError, match=reason) as err:
        read_shard(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_shard(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_shard(tmp_path / "nope.bin")


@pytest.mark.parametrize("tokens", [[-1], [65536]])
def test_write_rejects_ids_outside_uint16(tmp_path, tokens):
    with pytest.raises(DataError, match="0..65535"):
        write_shard(tmp_path / "s.bin", tokens)


def test_shards_concatenate_in_sorted_order(tmp_path, tokenizer):
    root = tmp_path / "d"
    root.mkdir()
    shutil.copy(tokenizer, root / "tokenizer.model")
    for name, tokens in [
        ("b_val_000001", [4, 5]),
        ("b_val_000000", [1, 2, 3]),
        ("t_train_000001", [9]),
        ("t_train_000000", [7, 8]),
    ]:
        write_shard(root / f"{name}.bin", tokens)
    dataset = Dataset.open(root)
    assert dataset.val_tokens().tolist() == [1, 2, 3, 4, 5]
    assert dataset.train_tokens().tolist() == [7, 8, 9]
    assert dataset.name == "d" and dataset.vocab_size == 1024


@pytest.mark.parametrize(
    ("n", "seq_len", "kept"),
    [(10, 3, 10), (11, 3, 10), (12, 3, 10), (13, 3, 13), (5, 4, 5), (2, 1, 2)],
)
def test_val_truncation_keeps_whole_sequences_plus_one(tmp_path, tokenizer, n, seq_len, kept):
    assert kept == ((n - 1) // seq_len) * seq_len + 1
    dataset = Dataset.open(make_dataset(tmp_path / "d", tokenizer, [list(range(n))]))
    assert dataset.val_tokens(seq_len).tolist() == list(range(kept))
    assert dataset.val_tokens().tolist() == list(range(n))


def test_val_too_short_for_one_sequence(tmp_path, tokenizer):
    dataset = Dataset.open(make_dataset(tmp_path / "d", tokenizer, [[1, 2, 3]]))
    with pytest.raises(DataError, match="too few for seq_len=4"):
        dataset.val_tokens(4)
    with pytest.raises(ConfigError, match="seq_len"):
        dataset.val_tokens(0)


def test_open_errors_say_what_is_missing(tmp_path, tokenizer):
    with pytest.raises(DataError, match="not found"):
        Dataset.open(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no \\*_val_\\*.bin"):
        Dataset.open(tmp_path)
    write_shard(tmp_path / "x_val_000000.bin", [1])
    with pytest.raises(DataError, match="pass it with --tokenizer PATH"):
        Dataset.open(tmp_path)
    with pytest.raises(DataError, match="tokenizer not found"):
        Dataset.open(tmp_path, tokenizer=tmp_path / "missing.model")
    with pytest.raises(DataError, match="no \\*_train_\\*.bin"):
        Dataset.open(tmp_path, tokenizer=tokenizer).train_tokens()


def test_tokenizer_outside_the_folder(tmp_path, tokenizer):
    write_shard(tmp_path / "x_val_000000.bin", [1, 2])
    dataset = Dataset.open(tmp_path, tokenizer=tokenizer)
    assert dataset.tokenizer_path == tokenizer and dataset.vocab_size == 1024


def test_parameter_golf_layout_finds_its_tokenizer(tmp_path, tokenizer):
    data_dir = tmp_path / "data" / "datasets" / "fineweb10B_sp1024"
    data_dir.mkdir(parents=True)
    (tmp_path / "data" / "tokenizers").mkdir()
    shutil.copy(tokenizer, tmp_path / "data" / "tokenizers" / "fineweb_1024_bpe.model")
    write_shard(data_dir / "fineweb_val_000000.bin", [1, 5, 6])
    dataset = Dataset.open(data_dir)
    assert dataset.tokenizer_path.name == "fineweb_1024_bpe.model"
    assert dataset.tokenizer_sha256 == hashlib.sha256(tokenizer.read_bytes()).hexdigest()


def test_val_ids_beyond_the_tokenizer_are_an_error(tmp_path, tokenizer):
    dataset = Dataset.open(make_dataset(tmp_path / "d", tokenizer, [[1, 1024]]))
    with pytest.raises(DataError, match="id 1024 is outside"):
        dataset.val_tokens()


def test_identity_is_the_documented_hash_and_stable(demo_data):
    dataset = Dataset.open(demo_data)
    val = np.asarray(dataset.val_tokens(), dtype="<u2").tobytes()
    expected = hashlib.sha256(f"{dataset.tokenizer_sha256}\n".encode() + val).hexdigest()
    assert dataset.sha256 == expected == Dataset.open(demo_data).sha256


def test_identity_follows_the_tokenizer_and_the_val_tokens(tmp_path, demo_data):
    base = Dataset.open(demo_data)
    val = base.val_tokens().tolist()
    other_tokenizer = tmp_path / "other.model"
    other_tokenizer.write_bytes(train_tokenizer(collect_documents(400_000)[0][1::2], 1024))
    retokenized = Dataset.open(make_dataset(tmp_path / "a", other_tokenizer, [val]))
    assert retokenized.sha256 != base.sha256
    assert retokenized.tokenizer_sha256 != base.tokenizer_sha256
    changed = Dataset.open(make_dataset(tmp_path / "b", base.tokenizer_path, [val[:-1] + [0]]))
    assert changed.sha256 != base.sha256
    split = Dataset.open(make_dataset(tmp_path / "c", base.tokenizer_path, [val[:7], val[7:]]))
    assert split.sha256 == base.sha256  # shard boundaries are not part of the identity


def test_check_compatible(demo_data):
    dataset = Dataset.open(demo_data)
    dataset.check_compatible(dataset.tokenizer_sha256, 1024)
    with pytest.raises(MismatchError, match="vocab size 4096") as err:
        dataset.check_compatible(dataset.tokenizer_sha256, 4096)
    assert "\n" not in str(err.value)
    with pytest.raises(MismatchError, match="tokenizer sha256 0000") as err:
        dataset.check_compatible("0" * 64, 1024)
    assert "\n" not in str(err.value)


def test_byte_lut_matches_the_tokenizer(demo_data):
    lut = Dataset.open(demo_data).byte_lut(size=1100)
    assert len(lut) == 1100 and lut.boundary[1024:].all()


def test_a_file_given_as_the_data_folder_is_named_as_a_file(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not a dataset\n")
    with pytest.raises(DataError, match="README.md is a file; --data takes a dataset folder"):
        Dataset.open(readme)
