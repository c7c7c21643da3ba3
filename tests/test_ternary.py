"""The ternary record (2026-03-24): its base-3 / bitmask / fp8 container and its U-Net family.

The golden sliding number is checked with the rest of the board (tests/test_board_golden.py
reads this record's facts.json); here: the reader against an independent packer, the
record's plain line (which adds its z-loss to the cross-entropy), and that each feature of
the family moves the score (so the golden match is not luck).
"""

from __future__ import annotations

import json
import lzma
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.engine.runner import EvalInputs, run_protocol
from golf.formats.board import RecordFacts, import_artifact, to_qtensor
from golf.formats.detect import read_reference
from golf.formats.quant import Scheme
from golf.models.ternary import TernaryConfig, config_from_record, softcap
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from tests.formats_corpus import pack_trits, ternary, torch_save

FOLDER = "2026-03-24_74M_Ternary_UNet_FP8_10L_8192BPE_YaRN_NeoMuon"
FIXTURE = Path(__file__).parent / "fixtures" / "records" / FOLDER
DATA = FIXTURE.parent / "_data" / "sp512"
TOKENIZER = DATA / "fineweb_512_bpe.model"
TOLERANCE = 1e-5


def _expected(trits: np.ndarray, scale: np.ndarray, group: int) -> np.ndarray:
    """q · (s / mean|q|) per group in float32: mean|q| is the non-zero count over the group
    (an exact integer sum, one rounded division), 1e-8 when the group is all zeros."""
    q = trits.reshape(-1, group).astype(np.float32)
    frac = np.abs(q).sum(1, keepdims=True) / np.float32(group)
    frac = np.maximum(frac, np.float32(1e-8))
    return q * (scale.astype(np.float32)[:, None] / frac)


def test_base3_and_bitmask_read_back_the_records_dequantized_values():
    obj = ternary(rows=4, cols=20, group=8)
    ref = read_reference(lzma.compress(torch_save(obj)))
    assert ref.description == "ternary {type} + xz"
    a, b = ref.entries["a.weight"], ref.entries["b.weight"]
    trits = np.zeros((4, 24), dtype=np.int8)
    # the base-3 digits, decoded here by hand from the packed bytes
    digits = np.frombuffer(obj["a.weight"]["packed"], dtype=np.uint8).astype(np.int64)
    digits = np.stack([(digits // 3**i) % 3 for i in range(5)], 1).reshape(-1)[:96] - 1
    trits[:] = digits.reshape(4, 24)
    want = _expected(trits, obj["a.weight"]["scale"].numpy(), 8).reshape(4, 24)[:, :20]
    assert a.values.shape == (4, 20) and np.array_equal(a.values.numpy(), want)
    assert b.values.shape == (4, 2, 10)  # orig_shape restored
    assert np.array_equal(b.values.reshape(4, 20).numpy(), want)  # the same trits, bitmask
    assert a.restore == b.restore == torch.bfloat16
    assert torch.equal(ref.entries["emb.weight"].values, obj["emb.weight"]["data"].float())
    assert ref.entries["gain"].values.dtype == torch.float16
    # golf stores them as the record loads them: float32 after its bf16 cast
    qt = to_qtensor("a.weight", a)  # bf16 values in fp16's range: stored as fp16, exactly
    assert qt.scheme == Scheme.FP16 and torch.equal(qt.dequantize(), a.values.bfloat16().float())


def test_restored_bf16_values_outside_fp16_stay_float32():
    from golf.formats.containers import Entry

    values = torch.tensor([1e-30, 0.5, 3e5])  # bf16 holds them, fp16 does not
    qt = to_qtensor("w", Entry(values, None, None, torch.bfloat16))
    assert qt.scheme == Scheme.FP32 and torch.equal(qt.dequantize(), values.bfloat16().float())
    fits = to_qtensor("w", Entry(torch.tensor([0.1, -2.0]), None, None, torch.bfloat16))
    assert fits.scheme == Scheme.FP16


def test_all_zero_groups_and_every_trit_value():
    group = 5
    trits = np.array([[0] * 5 + [1, -1, 0, 1, 1]], dtype=np.int8)
    scale = torch.tensor([0.5, 0.25]).half()
    obj = {
        "w": {
            "type": "ternary",
            "packed": pack_trits(trits),
            "scale": scale,
            "shape": [1, 10],
            "padded_cols": 10,
            "group_size": group,
            "n_trits": 10,
        }
    }
    got = read_reference(lzma.compress(torch_save(obj))).entries["w"].values
    # zero group: 0; the other: ±0.25 / (4/5)
    assert got.tolist() == [[0.0] * 5 + [0.3125, -0.3125, 0.0, 0.3125, 0.3125]]


def test_fp4_entries_unpack_low_nibble_first():
    codes = torch.tensor([[-7, 7, 0], [1, -1, 3], [2, 0, -2]])  # 9 codes: the last byte half
    flat = (codes.reshape(-1) + 8).to(torch.uint8)
    flat = torch.cat([flat, torch.tensor([8], dtype=torch.uint8)])
    packed = flat[0::2] | (flat[1::2] << 4)
    scale = torch.tensor([0.5, 2.0, 0.25]).half()
    obj = {"w": {"type": "fp4", "packed": packed, "scale": scale, "shape": [3, 3]}}
    got = read_reference(lzma.compress(torch_save(obj))).entries["w"].values
    assert got.tolist() == [[-3.5, 3.5, 0.0], [2.0, -2.0, 6.0], [0.5, 0.0, -0.5]]


def test_poly_softcap_is_tanhs_degree_5_series_clipped():
    z = torch.tensor([0.0, 1.0, -3.0, 9.0, 25.0, -40.0])
    u = (z / 10).clamp(-2, 2)
    want = 10 * (u - u**3 / 3 + 2 * u**5 / 30).clamp(-1, 1)
    assert torch.allclose(softcap(z, 10.0, "poly"), want, rtol=0, atol=1e-6)
    assert softcap(torch.tensor([25.0]), 10.0, "poly").item() == 10.0  # clipped at the cap


def _facts(**blind) -> RecordFacts:
    doc = json.loads((FIXTURE / "facts.json").read_text())
    doc["blind"] |= blind
    return RecordFacts.from_json(doc)


def _score(tmp_path: Path, facts: RecordFacts, protocol: str, plan: str) -> tuple[float, object]:
    record = json.loads((FIXTURE / "record.json").read_text())
    out = tmp_path / "a.golf"
    import_artifact(FIXTURE / record["artifact"]["file"], facts, out, tokenizer=TOKENIZER)
    inputs = EvalInputs.load(str(out), str(DATA), str(TOKENIZER))
    params = EvalParams(
        seq_len=128,
        stride=64 if protocol == "sliding" else None,
        plan=plan,
        precision="fp32",
        batch_windows=64,
    )
    return run_protocol(inputs, protocol, params), inputs


def test_plain_line_is_golfs_cross_entropy_plus_the_records_z_loss(tmp_path):
    """The record's roundtrip eval averages its training loss, CE + 1e-4·lse²; golf's plain
    val_bpb is the cross-entropy alone. Adding the z-term golf's model gives for the same
    128-token chunks reproduces the printed line; without it the gap is the z-term."""
    record = json.loads((FIXTURE / "record.json").read_text())
    printed = record["printed"]["final_ternary_roundtrip"]["val_bpb"]
    report, inputs = _score(tmp_path, _facts(), "plain", "canonical")
    tokens = torch.from_numpy(inputs.dataset.val_tokens(128).astype(np.int64))
    with torch.inference_mode():
        hidden = inputs.model.forward_hidden(tokens[:-1].reshape(-1, 128))
        z = inputs.model.z_loss(hidden).double().mean().item()
    with_z = report.val_bpb * (1 + z / report.val_loss)  # same tokens/bytes ratio
    assert abs(with_z - printed) <= TOLERANCE, (with_z, printed)
    assert abs(report.val_bpb - printed) > 100 * TOLERANCE  # the z-term is real
    assert report.val_loss / math.log(2) > 1  # a trained, non-trivial model


@pytest.mark.parametrize(
    "change",
    [
        {"softcap_type": "tanh"},
        {"rope_type": "rope"},
        {"yarn_max_len": 512},
        {"bitnet_group_size": 48},
        {"eval_depth_recurrence": 2},
        {"fp_storage": False},
    ],
)
def test_each_feature_moves_the_score(tmp_path, change):
    """Flip one fact and the sliding number leaves the golden value by more than the
    tolerance (so each is exercised; the golden |Δ| is ~1e-9; YaRN vs plain RoPE, the
    smallest, moves this barely trained tiny model by ~6e-5).
    fp_storage off leaves the fp8-stored weights as they are: no change is expected."""
    record = json.loads((FIXTURE / "record.json").read_text())
    printed = record["printed"]["final_sliding"]["val_bpb"]
    report, _ = _score(tmp_path, _facts(**change), "sliding", "full-strict")
    if change == {"fp_storage": False}:
        assert abs(report.val_bpb - printed) <= TOLERANCE  # fp8 STE is exact on fp8 values
    else:
        assert abs(report.val_bpb - printed) > 3 * TOLERANCE, (change, report.val_bpb)


def test_the_records_sliding_plan_is_full_strict(tmp_path):
    """Its starts are range(0, N - L, S): golf's `full` plan runs one more window (ending on
    the last target) and misses the printed number; `full-strict` gives it."""
    record = json.loads((FIXTURE / "record.json").read_text())
    printed = record["printed"]["final_sliding"]["val_bpb"]
    strict, _ = _score(tmp_path, _facts(), "sliding", "full-strict")
    full, _ = _score(tmp_path, _facts(), "sliding", "full")
    assert abs(strict.val_bpb - printed) <= TOLERANCE
    assert full.windows == strict.windows + 1 and full.tokens == strict.tokens + 64
    assert abs(full.val_bpb - printed) > 3 * TOLERANCE, full.val_bpb


def _shapes(cfg: TernaryConfig) -> dict[str, tuple[int, ...]]:
    from golf.models.registry import expected_shapes

    return expected_shapes(cfg, "ternary-unet")


BASE = {
    "activation_type": "relu2",
    "bitnet_group_size": 16,
    "fp_storage": True,
    "logit_softcap": 10.0,
    "softcap_type": "poly",
    "rope_base": 5000.0,
    "rope_type": "yarn",
    "yarn_max_len": 256,
    "train_seq_len": 128,
    "qk_gain_init": 2.25,
    "tie_embeddings": 1,
    "training_depth_recurrence": 0,
    "eval_depth_recurrence": 0,
}


def test_config_from_record_reads_sizes_and_refuses_other_variants():
    cfg = TernaryConfig(
        vocab_size=64,
        num_layers=3,
        model_dim=32,
        embedding_dim=8,
        num_heads=4,
        num_kv_heads=2,
        mlp_hidden=128,
        group_size=16,
    )
    shapes = _shapes(cfg)
    got = config_from_record(dict(BASE), shapes)
    assert (got.num_layers, got.num_heads, got.num_kv_heads, got.embedding_dim) == (3, 4, 2, 8)
    assert got.mlp_hidden == 128 and got.fp_storage == "fp8" and got.depth_recurrence == 1
    assert got.num_skips == 1 and got.num_encoder == 1
    for bad in (
        {"bigram_hash": True},
        {"smear": True},
        {"attn_proj_type": "tversky"},
        {"tie_embeddings": 0},
        {"mlp_groups": 4},
        {"fp_storage": "fp2"},
        {"bitnet_group_size": 7},  # 32x32 is not whole groups of 7
    ):
        with pytest.raises(ConfigError):
            config_from_record(BASE | bad, shapes)
    with pytest.raises(ConfigError, match="activation_type"):
        config_from_record({k: v for k, v in BASE.items() if k != "activation_type"}, shapes)


def test_the_element_cap_counts_every_tensor(monkeypatch):
    import golf.formats.ternary as tern
    from golf.formats.artifact import TooLarge

    blob = lzma.compress(torch_save(ternary(rows=4, cols=20, group=8)))
    assert read_reference(blob).entries  # 80 + 80 + 24 + 4 elements
    monkeypatch.setattr(tern, "MAX_ELEMENTS", 180)  # each fits, not all four
    with pytest.raises(TooLarge, match="more than 180 elements by emb.weight"):
        read_reference(blob)


def test_full_size_config_holds_the_logs_ternary_and_fp_parameter_counts():
    """The record's run (10L, d 768, 8/4 heads, MLP 3072, embed 254, vocab 8192): its log's
    artifact line counts 64,880,640 ternary and 2,513,744 fp parameters (lm_head dropped)."""
    shapes = _shapes(TernaryConfig())
    ternary_names = [n for n in shapes if n.endswith(("c_qkv.weight", "proj.weight", "fc.weight"))]
    ternary_names = [n for n in ternary_names if n.startswith("blocks.")]
    n_ternary = sum(math.prod(shapes[n]) for n in ternary_names)
    n_fp = sum(math.prod(s) for n, s in shapes.items() if n not in ternary_names)
    assert (n_ternary, n_fp) == (64_880_640, 2_513_744)
    # imported, every weight is a restored bf16 value: as float32 the .golf would inflate past
    # the 256 MiB read cap; as fp16 (exact in range) it fits with room
    from golf.formats.artifact import DEFAULT_MAX_DECOMPRESSED

    n = n_ternary + n_fp
    assert 4 * n > DEFAULT_MAX_DECOMPRESSED and 2 * n < 0.6 * DEFAULT_MAX_DECOMPRESSED


def test_slot_refuses_the_biased_poly_head(tmp_path):
    from golf.spec.errors import ConfigError as Refused

    with pytest.raises(Refused, match="tanh_head=False"):
        _score(tmp_path, _facts(), "slot", "canonical")
