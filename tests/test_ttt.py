"""Pre-quant AdamW TTT: it lowers the loss on its own tokens, leaves frozen blocks and
an epoch-less run alone, and measures the loss it reports."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.data.shards import Dataset
from trainer.config import preset
from trainer.dist import Dist
from trainer.ttt import sequences, ttt

CPU = Dist(0, 1, torch.device("cpu"))
CFG = preset("tiny").replace(
    seq_len=64,
    batch_tokens=512,
    ttt_tokens=2048 + 5,  # 32 sequences; the 5 extra tokens are dropped
    ttt_batch_seqs=8,
    ttt_epochs=2,
    ttt_lr=3e-3,
    ttt_freeze_blocks=2,
)


@pytest.fixture(scope="module")
def tokens(demo_data: Path) -> np.ndarray:
    return np.asarray(Dataset.open(demo_data).train_tokens())


def test_sequences_cover_the_first_tokens(tokens):
    rows = sequences(tokens, CFG)
    assert rows.shape == (32, 65)
    assert torch.equal(rows[1], torch.from_numpy(tokens[64:129].astype(np.int64)))


def test_ttt_lowers_its_loss_and_keeps_frozen_blocks(model, tokens):
    gpt = copy.deepcopy(model)
    before = {k: v.clone() for k, v in gpt.state_dict().items()}
    logs, steps, batches = [], [], []
    res = ttt(
        gpt, tokens, CFG, CPU, on_log=logs.append, progress=lambda s, n, r: steps.append(s),
        step_progress=lambda done, total: batches.append((done, total)),
    )  # fmt: skip

    rows = sequences(tokens, CFG)
    with torch.no_grad():
        expected = model(rows[:, :-1], rows[:, 1:]).item()
    assert res.loss_before == pytest.approx(expected, rel=1e-5)
    assert res.loss_after < res.loss_before - 0.2
    assert (res.epochs, res.tokens) == (2, 2048)
    assert [r["epoch"] for r in logs] == [1, 2] and logs == res.log
    assert logs[0]["lr"] == pytest.approx(3e-3) and logs[1]["lr"] == pytest.approx(1.65e-3)
    assert steps == [1, 2]
    per_epoch = -(-32 // CFG.ttt_batch_seqs)  # 32 sequences in batches of ttt_batch_seqs
    assert batches == [(k, 2 * per_epoch) for k in range(1, 2 * per_epoch + 1)]

    after = gpt.state_dict()
    for name, w in before.items():
        if name.startswith(("blocks.0.", "blocks.1.")):
            assert torch.equal(after[name], w), name
    assert not torch.equal(after["blocks.2.attn.c_q.weight"], before["blocks.2.attn.c_q.weight"])
    assert not torch.equal(after["tok_emb.weight"], before["tok_emb.weight"])
    assert not any(p.requires_grad for p in gpt.parameters())  # as the fixture had them
    assert not gpt.training


def test_ttt_without_epochs_is_a_no_op(model, tokens):
    gpt = copy.deepcopy(model)
    res = ttt(gpt, tokens, CFG.replace(ttt_epochs=0), CPU)
    assert res.loss_after == res.loss_before and res.epochs == 0 and res.log == []
    assert all(torch.equal(gpt.state_dict()[k], v) for k, v in model.state_dict().items())
