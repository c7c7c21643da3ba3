"""Golden fixtures of the looped and varlen families: each record's own code, run tiny on
CPU in fp32 by scripts/record_harness, wrote an artifact and printed its quantized plain
and sliding val_bpb; golf reads that artifact into the family's model and must print the
same numbers within 1e-5 bpb.

The tolerance: both sides sum the same per-token losses of the same weights in fp32, in a
different order and batching (the record averages per batch of sequences, golf sums per
window with fsum) and with the record's printed 8 decimals; that is well under 1e-6 bpb
on 4,096 tokens. A wrong block, gate or lane weight moves these near-random models by
1e-3 or more (checked below by breaking one weight).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from golf.data.bytes import bits_per_byte
from golf.data.shards import Dataset
from golf.engine.evaluate import evaluate, summarize
from golf.formats.artifact import load_model, read_artifact, write_artifact
from golf.formats.board import to_qtensor
from golf.formats.detect import read_reference
from golf.formats.families import family_config, family_of, traits
from golf.models import varlen
from golf.spec.params import EvalParams

FIXTURES = Path(__file__).parent / "fixtures" / "records"
OFFICIAL = Path("/work/pg/official/records/track_10min_16mb")
TOLERANCE = 1e-5

SEQ, GPTJ, LANES = ({"parallel_mode": m} for m in ("none", "gptj", "lanes"))
# folder -> (family, what its code fixes beyond the hyperparameters, printed tag prefix)
CASES = {
    "2026-04-05_SP8192_GPTQ-Embeddings_SDClip_Loop45x2": ("looped-sp8192", SEQ, ""),
    "2026-04-06_SP8192_HessianSDClip_ProgressiveRecurrence": ("looped-sp8192", GPTJ, ""),
    "2026-04-06_SP8192_QK5_LegalTTT_1.0828": ("looped-sp8192", SEQ, ""),
    "2026-04-08_SP8192_ParallelResid_ScoreFirstTTT": ("looped-sp8192", LANES, ""),
    "2026-04-09_A2_Muon097_3Seed": ("looped-sp8192", GPTJ, ""),
    "2026-04-09_SP8192_3LayerRecur_ParResid_QK525_LegalTTT": ("looped-sp8192", GPTJ, ""),
}


def _fixture(folder: str) -> tuple[dict, bytes]:
    path = FIXTURES / folder
    doc = json.loads((path / "record.json").read_text())
    return doc, (path / doc["artifact"]["file"]).read_bytes()


@pytest.fixture(scope="module")
def sp512(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The harness's tiny sp512 dataset (tokenizer + the 4,097-token val shard)."""
    root = tmp_path_factory.mktemp("sp512")
    for f in (FIXTURES / "_data" / "sp512").iterdir():
        shutil.copyfile(f, root / f.name.replace("fineweb_val", "tiny_val"))
    return Dataset.open(root, root / "fineweb_512_bpe.model")


def _import(folder: str, out: Path, dataset: Dataset):
    """The fixture's artifact as a .golf of its family, read back and loaded."""
    doc, blob = _fixture(folder)
    arch, code_traits, _ = CASES[folder]
    hparams = code_traits | doc["hparams"]
    env = doc["env"]
    if "parallel_start_layer" not in doc["hparams"] and "PARALLEL_START_LAYER" in env:
        # 04-08 reads it from the environment inside GPT.__init__, not as a hyperparameter
        hparams["parallel_start_layer"] = int(env["PARALLEL_START_LAYER"])
    ref = read_reference(blob)
    shapes = {name: tuple(e.values.shape) for name, e in ref.entries.items()}
    config = family_config(arch, hparams, shapes)
    tensors = {name: to_qtensor(name, e) for name, e in ref.entries.items()}
    write_artifact(
        out,
        tensors,
        config,
        tokenizer_sha256=dataset.tokenizer_sha256,
        vocab_size=config.vocab_size,
        arch=arch,
    )
    return doc, load_model(read_artifact(out))


def _bpb(model, dataset: Dataset, protocol: str, seq_len: int, stride: int) -> float:
    params = EvalParams(seq_len=seq_len, stride=stride, precision="fp32", batch_windows=32)
    tokens = dataset.val_tokens(seq_len)
    records = evaluate(model, tokens, dataset.byte_lut(), protocol, params)
    return summarize(records)["val_bpb"]


BOS = 1

# The document-bounded records (04-10 on): their evaluation, re-stated here until golf's
# `doc_bounded` protocols land. As the records do, the windows of a batch are packed into
# one row and attention is masked to the document pieces (cut at every BOS and at the
# window starts; the plain eval also every eval_seq_len inside a document); RoPE runs over
# the packed positions and SmearGate over the packed row, as theirs.
NO_FIX, BOS_FIX = {"smear_bos_fix": False}, {"smear_bos_fix": True}
VARLEN_CASES = {
    "2026-04-10_VarLenAttn": ("varlen-sp8192", NO_FIX, "diagnostic "),
    "2026-04-14_MultiPhaseGlobalSGD_PhasedTTT": ("varlen-sp8192", NO_FIX, "diagnostic "),
    "2026-04-16_SmearGate_AttentionOutputGate_ScoreFirstTTT": (
        "varlen-sp8192",
        NO_FIX,
        "diagnostic ",
    ),
    "2026-04-19_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT": (
        "varlen-sp8192",
        NO_FIX,
        "diagnostic ",
    ),
    "2026-04-23_SP8192_CaseOps_SparseGate_QuantGate_Loop45_PhasedTTT_PolarNS_MinLR_FusedCE": (
        "varlen-sp8192",
        NO_FIX,
        "diagnostic ",
    ),
    "2026-04-29_SmearGateBOSFix_3Seed_1.06141": ("varlen-sp8192", BOS_FIX, "diagnostic "),
}
CASES |= VARLEN_CASES


def _packed_nll(model, x: torch.Tensor, y: torch.Tensor, starts: list[int], monkeypatch):
    """Per-position NLL over one packed row, attention inside [start, next start)."""
    seg = torch.zeros(len(x), dtype=torch.long)
    for a in starts[1:]:
        seg[a:] += 1
    pos = torch.arange(len(x))
    mask = (seg[:, None] == seg[None, :]) & (pos[None, :] <= pos[:, None])

    def masked(q, k, v, rows, ctx):
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return y.transpose(1, 2)

    monkeypatch.setattr(varlen, "causal_attention", masked)
    with torch.no_grad():
        logits = model.logits(model.forward_hidden(x[None]))[0]
    monkeypatch.undo()
    return F.cross_entropy(logits.float(), y, reduction="none").double()


def _doc_starts(x: torch.Tensor, max_len: int = 0) -> list[int]:
    """Starts of the pieces: 0, every BOS, and (max_len > 0) every max_len into a document."""
    docs = sorted({0, *(x == BOS).nonzero().flatten().tolist()})
    if not max_len:
        return docs
    out = []
    for a, b in zip(docs, [*docs[1:], len(x)], strict=False):
        out.extend(range(a, b, max_len))
    return out


def _record_varlen_bpb(model, dataset, seq_len: int, stride: int | None, monkeypatch) -> float:
    """The record's doc-bounded plain (stride None: the val set as one packed batch, cut at
    BOS and every seq_len inside a document) or sliding (canonical windows, 32 a batch)."""
    tokens = torch.as_tensor(dataset.val_tokens(seq_len).astype("int64"))
    lut = dataset.byte_lut()
    n = len(tokens) - 1
    if stride is None:
        x, y = tokens[:-1], tokens[1:]
        nll = _packed_nll(model, x, y, _doc_starts(x, seq_len), monkeypatch)
        return bits_per_byte(math.fsum(nll.tolist()), int(lut.count(x, y).sum()))
    ctx = seq_len - stride
    windows = [w for w in range(0, n, stride) if w + ctx < n]
    sums: list[float] = []
    n_bytes = 0
    for b in range(0, len(windows), 32):
        xs, ys, starts, scored = [], [], [], []
        offset = 0
        for ws in windows[b : b + 32]:
            end = min(ws + seq_len, n)
            x = tokens[ws:end]
            starts += [offset + p for p in _doc_starts(x)]
            xs.append(x)
            ys.append(tokens[ws + 1 : end + 1])
            scored.append((offset + (0 if ws == 0 else ctx), offset + len(x)))
            offset += len(x)
        x, y = torch.cat(xs), torch.cat(ys)
        nll = _packed_nll(model, x, y, starts, monkeypatch)
        for lo, hi in scored:
            sums.append(math.fsum(nll[lo:hi].tolist()))
            n_bytes += int(lut.count(x[lo:hi], y[lo:hi]).sum())
    return bits_per_byte(math.fsum(sums), n_bytes)


@pytest.mark.parametrize("folder", sorted(VARLEN_CASES))
def test_varlen_family_matches_record(
    folder: str, sp512: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc, model = _import(folder, tmp_path / "a.golf", sp512)
    prefix = CASES[folder][2]
    h, printed = doc["hparams"], doc["printed"]
    plain = _record_varlen_bpb(model, sp512, h["eval_seq_len"], None, monkeypatch)
    assert plain == pytest.approx(printed[f"{prefix}quantized"]["val_bpb"], abs=TOLERANCE)
    if f"{prefix}quantized_sliding_window" in printed:  # 04-19 on print no sliding
        sliding = _record_varlen_bpb(model, sp512, h["eval_seq_len"], h["eval_stride"], monkeypatch)
        want = printed[f"{prefix}quantized_sliding_window"]["val_bpb"]
        assert sliding == pytest.approx(want, abs=TOLERANCE)


@pytest.mark.parametrize("folder", sorted(VARLEN_CASES))
def test_varlen_doc_bounded_sliding_matches_record(
    folder: str, sp512: Dataset, tmp_path: Path
) -> None:
    """golf's own `sliding` with doc_bounded (windows masked per document, each window at
    its own positions) scores the record's artifact as the record's sliding eval does."""
    doc, model = _import(folder, tmp_path / "a.golf", sp512)
    h = doc["hparams"]
    tag = f"{CASES[folder][2]}quantized_sliding_window"
    if tag not in doc["printed"]:
        pytest.skip("the record prints no sliding number")
    params = EvalParams(
        seq_len=h["eval_seq_len"], stride=h["eval_stride"], precision="fp32", doc_bounded=True
    )
    tokens = sp512.val_tokens(h["eval_seq_len"])
    bpb = summarize(evaluate(model, tokens, sp512.byte_lut(), "sliding", params))["val_bpb"]
    assert bpb == pytest.approx(doc["printed"][tag]["val_bpb"], abs=TOLERANCE)


LOOPED_CASES = sorted(set(CASES) - set(VARLEN_CASES))


@pytest.mark.parametrize("folder", LOOPED_CASES)
def test_family_matches_record(folder: str, sp512: Dataset, tmp_path: Path) -> None:
    doc, model = _import(folder, tmp_path / "a.golf", sp512)
    prefix = CASES[folder][2]
    h = doc["hparams"]
    plain = _bpb(model, sp512, "plain", h["eval_seq_len"], h["eval_seq_len"])
    sliding = _bpb(model, sp512, "sliding", h["eval_seq_len"], h["eval_stride"])
    printed = doc["printed"]
    assert plain == pytest.approx(printed[f"{prefix}quantized"]["val_bpb"], abs=TOLERANCE)
    want = printed[f"{prefix}quantized_sliding_window"]["val_bpb"]
    assert sliding == pytest.approx(want, abs=TOLERANCE)


def test_a_wrong_lane_weight_is_caught(sp512: Dataset, tmp_path: Path) -> None:
    """The fixtures can fail: one control weight of one block changed moves val_bpb by
    far more than the tolerance."""
    folder = "2026-04-08_SP8192_ParallelResid_ScoreFirstTTT"
    doc, model = _import(folder, tmp_path / "a.golf", sp512)
    with torch.no_grad():
        model.lane_merge.fill_(0.5 if float(model.lane_merge) != 0.5 else 0.7)
    h = doc["hparams"]
    plain = _bpb(model, sp512, "plain", h["eval_seq_len"], h["eval_seq_len"])
    assert abs(plain - doc["printed"]["quantized"]["val_bpb"]) > 100 * TOLERANCE


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="the official records are not on this machine")
@pytest.mark.parametrize("folder", sorted(CASES))
def test_family_read_from_the_record_code(folder: str) -> None:
    """The family and the code-fixed traits the fixtures use are what golf reads from the
    record's own (decoded) source."""
    from golf.record import read_record

    source = read_record(OFFICIAL / folder).source
    assert source is not None
    arch, code_traits, _ = CASES[folder]
    assert family_of(source.code) == arch
    assert traits(source.code).items() >= code_traits.items()


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="the official records are not on this machine")
@pytest.mark.parametrize(
    "folder",
    [
        "2026-04-09_SP8192_3LayerRecur_ParResid_QK525_LegalTTT",
        "2026-04-14_MultiPhaseGlobalSGD_PhasedTTT",
    ],
)
def test_golf_import_record_dir(folder: str, sp512: Dataset, tmp_path: Path) -> None:
    """`golf import RECORD_DIR --artifact F` (the Python equivalent) needs no hand-written
    config: hyperparameters from the record (code < log < --set, here the harness's env),
    the family from its code; the result scores as the record printed."""
    from golf.formats.board import import_record
    from golf.record import read_record

    doc, _ = _fixture(folder)
    read = set(read_record(OFFICIAL / folder).code_hparams().env.values())
    sets = {k: v for k, v in doc["env"].items() if k in read}  # what the run's env changed
    path = FIXTURES / folder / doc["artifact"]["file"]
    tokenizer = FIXTURES / "_data" / "sp512" / "fineweb_512_bpe.model"
    out = tmp_path / "imported.golf"
    imported = import_record(OFFICIAL / folder, path, out, tokenizer=tokenizer, overrides=sets)
    assert imported.arch == CASES[folder][0]
    assert imported.format == "{w,m} + brotli (BSHF 1-byte, stride 2)"
    model = load_model(imported.artifact)
    h = doc["hparams"]
    params = EvalParams(
        seq_len=h["eval_seq_len"],
        stride=h["eval_stride"],
        precision="fp32",
        doc_bounded=imported.arch == "varlen-sp8192",
    )
    tokens = sp512.val_tokens(h["eval_seq_len"])
    bpb = summarize(evaluate(model, tokens, sp512.byte_lut(), "sliding", params))["val_bpb"]
    want = doc["printed"][f"{CASES[folder][2]}quantized_sliding_window"]["val_bpb"]
    assert bpb == pytest.approx(want, abs=TOLERANCE)
