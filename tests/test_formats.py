"""The board's artifact readers: every compressor x container decodes to the same tensors
and says what it found in one line; the hostile corpus gets one-line typed errors."""

from __future__ import annotations

import lzma
import shutil
import zlib

import brotli
import pytest
import torch

from golf.formats.compress import sniff, unshuffle
from golf.formats.detect import read_reference
from tests.formats_corpus import (
    COMPRESSORS,
    LIMIT,
    MAX_TENSORS,
    build_corpus,
    int8_clean,
    lrzip,
    shuffle,
    torch_save,
    wm,
    zstd,
)


@pytest.mark.parametrize("compressor", sorted(COMPRESSORS))
@pytest.mark.parametrize("container", ["int8_clean_per_row_v1", "{w,m}"])
def test_each_compressor_and_container_reads_back_exactly(compressor, container):
    obj = int8_clean() if container == "int8_clean_per_row_v1" else wm()
    ref = read_reference(COMPRESSORS[compressor](torch_save(obj)))
    assert ref.description == f"{container} + {compressor}"
    if container == "int8_clean_per_row_v1":
        w = ref.entries["w"]
        assert torch.equal(w.values, obj["quantized"]["w"]) and w.bits == 8
        expected = obj["quantized"]["w"].float() * obj["scales"]["w"].float()[:, None]
        assert torch.equal(w.dequantize(), expected)
        assert ref.entries["h"].restore == torch.float32  # fp16-stored, restored to fp32
        assert ref.entries["g"].restore == torch.float32 and ref.entries["g"].scale is None
    else:
        a = ref.entries["a"]
        assert a.bits == 6 and torch.equal(a.values, obj["w"]["a.q"])
        assert torch.equal(ref.entries["b"].values, obj["w"]["b"])


@pytest.mark.parametrize("header_bytes", [1, 2])
def test_bshf_brotli_both_header_sizes(header_bytes):
    raw = torch_save(wm())
    ref = read_reference(brotli.compress(shuffle(raw, 2, header_bytes), quality=11))
    assert ref.description == f"{{w,m}} + brotli (BSHF {header_bytes}-byte, stride 2)"
    assert torch.equal(ref.entries["a"].values, wm()["w"]["a.q"])


def test_unshuffle_inverts_odd_lengths_and_strides():
    data = bytes(range(7)) * 3 + b"PK\x03\x04"
    for stride in (2, 3, 4):
        blob = b"PK\x03\x04" + data
        assert unshuffle(shuffle(blob, stride, 1))[0] == blob


def test_sniff_names_magic_and_leaves_brotli_unnamed():
    raw = torch_save(wm())
    assert sniff(zlib.compress(raw)) == "zlib"
    assert sniff(lzma.compress(raw)) == "xz"
    assert sniff(zstd(raw)) == "zstd"
    assert sniff(raw) == "none"
    assert sniff(brotli.compress(raw)) is None


@pytest.mark.skipif(shutil.which("lrzip") is None, reason="Debian lrzip binary not installed")
def test_lrzip_reads_through_the_binary():
    ref = read_reference(lrzip(torch_save(int8_clean())))
    assert ref.description == "int8_clean_per_row_v1 + lrzip"
    assert torch.equal(ref.entries["w"].values, int8_clean()["quantized"]["w"])


def test_hostile_corpus_gets_one_line_typed_errors(tmp_path):
    marker = tmp_path / "pwned"
    cases = build_corpus(marker)
    assert len(cases) >= 30
    for case in cases:
        with pytest.raises(case.error) as info:
            read_reference(case.data, limit=LIMIT, max_tensors=MAX_TENSORS)
        message = str(info.value)
        assert "\n" not in message and message, case.name
        assert type(info.value) is case.error, (
            f"{case.name}: {type(info.value).__name__}: {message}"
        )
    assert not marker.exists(), "a pickle payload ran"


def test_banks_are_unbanked_into_per_block_matrices():
    from golf.formats.board import to_qtensor, unbank
    from golf.formats.containers import Entry

    q = torch.arange(4 * 3 * 2, dtype=torch.int8).reshape(4, 3, 2)
    out = unbank({"qo_bank": Entry(q, torch.tensor(0.5), 6), "x": Entry(torch.ones(2))})
    assert torch.equal(out["blocks.1.attn.c_q.weight"].values, q[1])
    assert torch.equal(out["blocks.0.attn.proj.weight"].values, q[2])
    assert set(out) == {"x"} | {
        f"blocks.{i}.attn.{m}.weight" for i in (0, 1) for m in ("c_q", "proj")
    }
    qt = to_qtensor("blocks.1.attn.c_q.weight", out["blocks.1.attn.c_q.weight"])
    assert torch.equal(qt.dequantize(), q[1].float() * 0.5)  # a scalar scale: exact fp32


@pytest.mark.skipif(shutil.which("lrzip") is None, reason="Debian lrzip binary not installed")
def test_per_group_streams_read_back_to_the_same_tensors():
    from tests.formats_corpus import pergroup

    g = torch.Generator().manual_seed(2)
    w = {
        "tok_emb.weight.q": torch.randint(-31, 32, (6, 4), generator=g, dtype=torch.int8),
        "tok_emb.weight.scale": torch.rand(6, generator=g).half(),
        "smear.gate": torch.ones(4).half(),
    }
    m = {"tok_emb.weight": {"type": "int6"}, "smear.gate": "passthrough"}
    for i in range(2):
        for key, shape in (("attn.c_q.weight", (4, 4)), ("mlp.proj.weight", (4, 8))):
            w[f"blocks.{i}.{key}.q"] = torch.randint(-31, 32, shape, generator=g, dtype=torch.int8)
            w[f"blocks.{i}.{key}.scale"] = torch.rand(shape[0], generator=g).half()
            m[f"blocks.{i}.{key}"] = {"type": "int6"}
    ref = read_reference(pergroup(dict(w), m))
    assert ref.description == "{w,m} + per-group lrzip + brotli"
    for name in m:
        if name != "smear.gate":
            assert torch.equal(ref.entries[name].values, w[f"{name}.q"]), name
    assert torch.equal(ref.entries["smear.gate"].values, w["smear.gate"])
