"""LQER factors and int8 gate rows in `{w,m}` archives: dequantized exactly as the records'
own dequantizer computes them, and malformed entries refused in one line."""

from __future__ import annotations

import pytest
import torch

from golf.formats.artifact import ArtifactError, MissingTensor, OutOfRange, ShapeMismatch
from golf.formats.containers import read_entries
from golf.formats.lqer import dequantize_lqer


def _asym_archive(g: torch.Generator) -> tuple[dict, torch.Tensor]:
    """A `{w,m}` archive with one +lqer_asym matrix, and its weight computed step by step
    as the records' dequantize_mixed does (q·s, then A = qA·sA, B grouped, W + A @ B)."""
    rows, cols, r, group = 16, 64, 4, 64
    q = torch.randint(-31, 32, (rows, cols), generator=g, dtype=torch.int8)
    s = (torch.rand(rows, generator=g) * 0.01 + 1e-3).half()
    qa = torch.randint(-2, 2, (rows, r), generator=g, dtype=torch.int8)
    sa = torch.tensor(0.0123, dtype=torch.float16)
    qb = torch.randint(-8, 8, (r, cols), generator=g, dtype=torch.int8)
    sb = (torch.rand(r * cols // group, generator=g) * 0.02 + 1e-3).half()
    w = {
        "m.q": q, "m.scale": s, "m.lqA_a": qa, "m.lqAs_a": sa, "m.lqB_a": qb, "m.lqBs_a": sb,
    }  # fmt: skip
    want = q.float() * s.float().view(rows, 1)
    a = qa.float() * float(sa)
    b = (qb.reshape(-1, group).float() * sb.float().view(-1, 1)).reshape(qb.shape)
    return {"w": w, "m": {"m": "gptq (int6)+lqer_asym"}}, want + a @ b


def test_asymmetric_lqer_is_the_records_weight() -> None:
    archive, want = _asym_archive(torch.Generator().manual_seed(0))
    entry = read_entries(archive)["m"]
    assert entry.scale is None and entry.values.dtype == torch.float32
    assert torch.equal(entry.values, want)


def test_symmetric_lqer_is_the_records_weight() -> None:
    g = torch.Generator().manual_seed(1)
    q = torch.randint(-31, 32, (8, 32), generator=g, dtype=torch.int8)
    s = (torch.rand(8, generator=g) * 0.01 + 1e-3).half()
    qa = torch.randint(-7, 8, (8, 2), generator=g, dtype=torch.int8)
    qb = torch.randint(-7, 8, (2, 32), generator=g, dtype=torch.int8)
    sa, sb = torch.rand(8, generator=g).half(), torch.rand(2, generator=g).half()
    w = {"m.q": q, "m.scale": s, "m.lqA": qa, "m.lqAs": sa, "m.lqB": qb, "m.lqBs": sb}
    got = dequantize_lqer("m", "gptq (int6)+lqer", w)
    a, b = qa.float() * sa.float().view(-1, 1), qb.float() * sb.float().view(-1, 1)
    assert torch.equal(got, q.float() * s.float().view(8, 1) + a @ b)


def test_gate_rows_are_int8_per_row() -> None:
    gq = torch.randint(-127, 128, (4, 12), dtype=torch.int8)
    gs = torch.rand(4).half() + 0.01
    entry = read_entries({"w": {"g.gq": gq, "g.gs": gs}, "m": {"g": "gate_int8_row"}})["g"]
    assert entry.bits == 8 and torch.equal(entry.values, gq) and torch.equal(entry.scale, gs)
    assert torch.equal(entry.dequantize(), gq.float() * gs.float().view(-1, 1))


@pytest.mark.parametrize(
    ("edit", "error", "words"),
    [
        (lambda w: w.pop("m.lqB_a"), MissingTensor, "m.lqB_a"),
        (lambda w: w.__setitem__("m.lqA_a", w["m.lqA_a"][:, :3]), ShapeMismatch, "LQER factors"),
        (lambda w: w.__setitem__("m.lqB_a", w["m.lqB_a"] * 2), OutOfRange, "-8..7"),
        (lambda w: w.__setitem__("m.lqBs_a", w["m.lqBs_a"][:3]), ShapeMismatch, "do not group"),
        (lambda w: w.__setitem__("m.lqA_a", w["m.lqA_a"].float()), ArtifactError, "int8"),
    ],
)
def test_malformed_lqer_is_one_line(edit, error, words: str) -> None:
    archive, _ = _asym_archive(torch.Generator().manual_seed(2))
    edit(archive["w"])
    with pytest.raises(error) as info:
        read_entries(archive)
    assert words in str(info.value) and "\n" not in str(info.value)
