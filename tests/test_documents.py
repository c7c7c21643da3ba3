"""Documents and document-bounded evaluation: documents own the next BOS, segments start at
every BOS, attention never crosses one, and the window plan still scores each target once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from golf.data.shards import Dataset
from golf.engine.engine import prepare
from golf.engine.evaluate import evaluate, summarize
from golf.models import attention
from golf.models.attention import AttentionContext, segment_ids
from golf.protocols.base import Batch
from golf.protocols.sliding import Sliding
from golf.spec.documents import find_documents
from golf.spec.errors import ConfigError, DataError
from golf.spec.params import EvalParams
from golf.spec.plan import make_plan


def test_documents_own_the_next_bos() -> None:
    docs = find_documents(np.array([7, 1, 5, 6, 1, 8, 1, 9, 9]))
    assert docs.starts.tolist() == [1, 4, 6]
    assert docs.lengths.tolist() == [4, 3, 3]  # [1 5 6 1], [1 8 1], [1 9 9]
    assert docs.targets.sum() == 9 - 1 - 1  # every target from the first BOS on


def test_a_trailing_bos_opens_no_document_and_none_is_an_error() -> None:
    assert find_documents(np.array([1, 2, 3, 1])).lengths.tolist() == [4]
    with pytest.raises(DataError, match="no BOS"):
        find_documents(np.array([2, 3, 4]))


def test_segments_start_at_zero_at_each_bos_and_every_max_len() -> None:
    ids = torch.tensor([[5, 5, 1, 5, 5, 5, 5, 1, 5]])
    assert segment_ids(ids.clone(), 1).tolist() == [[1, 1, 2, 2, 2, 2, 2, 3, 3]]
    split = segment_ids(ids.clone(), 1, max_len=3)[0].tolist()
    starts = [i for i in range(len(split)) if i == 0 or split[i] != split[i - 1]]
    assert starts == [0, 2, 5, 7]


def _qkv(seed: int, b: int = 2, t: int = 12, h: int = 4, hkv: int = 2, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, t, n, d, generator=g) for n in (h, hkv, hkv))


def test_segmented_attention_equals_attention_per_document(monkeypatch) -> None:
    q, k, v = _qkv(0)
    ids = torch.tensor([[3, 3, 3, 1, 3, 3, 3, 3, 1, 3, 3, 3], [1, 3, 3, 3, 3, 3, 3, 1, 3, 3, 3, 3]])
    seg = segment_ids(ids, 1)
    ctx = AttentionContext().for_call(segments=seg)
    y = attention.causal_attention(q, k, v, None, ctx)
    for row in range(2):
        edges = [0, *[i for i in range(1, 12) if seg[row, i] != seg[row, i - 1]], 12]
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            part = attention.causal_attention(
                q[row : row + 1, lo:hi], k[row : row + 1, lo:hi], v[row : row + 1, lo:hi],
                None, AttentionContext(),
            )  # fmt: skip
            torch.testing.assert_close(y[row : row + 1, lo:hi], part, rtol=1e-5, atol=1e-6)
    # the long-row path (SDPA per segment) and the pruned rows agree with the mask
    monkeypatch.setattr(attention, "MASK_ELEMENTS", 1)
    torch.testing.assert_close(attention.causal_attention(q, k, v, None, ctx), y)
    rows = torch.tensor([[2, 5, 11], [0, 7, 9]])
    picked = attention.causal_attention(
        q.gather(1, rows[..., None, None].expand(-1, -1, 4, 8)), k, v, rows, ctx
    )
    torch.testing.assert_close(picked, y.gather(1, rows[..., None, None].expand(-1, -1, 4, 8)))


def test_doc_bounded_sliding_scores_each_target_once_and_stops_at_bos(
    model, demo_data: Path
) -> None:
    dataset = Dataset.open(demo_data)
    tokens = np.asarray(dataset.val_tokens(64))[:1201]
    lut = dataset.byte_lut(1024)
    params = EvalParams(seq_len=64, stride=16, precision="fp32", doc_bounded=True)
    records = evaluate(model, tokens, lut, "sliding", params)
    assert sum(r.tokens for r in records) == 1200
    bounded = summarize(records)["val_bpb"]
    plain = summarize(
        evaluate(model, tokens, lut, "sliding", params.model_copy(update={"doc_bounded": False}))
    )
    assert bounded != plain
    # attention stops at the BOS: changing tokens of the previous document (all but the
    # two just before it, which the smear gate reads through the bigram) moves no
    # NLL from the BOS on under doc_bounded, and does move them without it
    plan = make_plan(1200, 64, 16)
    bos = int(np.flatnonzero(tokens[200:] == 1)[0]) + 200
    w = int(np.flatnonzero((plan.starts + 16 < bos) & (plan.starts + plan.lengths > bos + 4))[0])
    start = int(plan.starts[w])
    changed = tokens.astype(np.int64).copy()
    changed[start : bos - 2] = (changed[start : bos - 2] + 7) % 1024
    changed[start : bos - 2][changed[start : bos - 2] == 1] = 2
    em = prepare(model, params)
    for bounded in (True, False):
        p = params.model_copy(update={"doc_bounded": bounded})
        a, b = (
            Sliding().nll(em, Batch.from_plan(torch.from_numpy(t), plan, range(w, w + 1)), p)
            for t in (tokens.astype(np.int64), changed)
        )
        after = slice(bos - start, int(plan.lengths[w]))
        assert torch.equal(a[0, after], b[0, after]) is bounded


def test_protocols_without_a_document_mode_refuse_it(model, demo_data: Path) -> None:
    dataset = Dataset.open(demo_data)
    tokens = np.asarray(dataset.val_tokens(64))[:300]
    with pytest.raises(ConfigError, match="no document-bounded mode"):
        evaluate(
            model, tokens, dataset.byte_lut(1024), "slot", EvalParams(seq_len=64, doc_bounded=True)
        )
