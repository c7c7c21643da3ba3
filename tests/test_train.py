"""Training core: Muon, the LR schedule, EMA, late QAT, depth recurrence, determinism,
and (slow) two-process training and TTT equal to one process at the same global batch."""

import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from golf.data.shards import Dataset
from golf.formats.quant import Scheme, quantize
from golf.models.gpt import GPT, CastedLinear
from golf.models.roles import Role
from golf.spec.config import preset as model_preset
from trainer.config import preset
from trainer.dist import Dist
from trainer.muon import Muon, newton_schulz
from trainer.qat import QATLinear, disable_qat, enable_qat, fake_quant_int6
from trainer.train import lr_scale, muon_momentum, param_groups, train
from trainer.ttt import ttt

CPU = Dist(0, 1, torch.device("cpu"))
# A few-millisecond step: tiny model, 8 sequences of 64 tokens.
FAST = preset("tiny").replace(
    seq_len=64,
    batch_tokens=512,
    iterations=40,
    warmup_steps=2,
    warmdown_steps=10,
    muon_momentum_warmup_steps=10,
    log_every=10,
)


@pytest.fixture(scope="module")
def tokens(demo_data: Path) -> np.ndarray:
    return np.asarray(Dataset.open(demo_data).train_tokens())


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- Muon ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(32, 128), (96, 32), (16, 128)])
def test_newton_schulz_is_near_orthogonal(shape):
    torch.manual_seed(0)
    g = torch.randn(shape) * 3.0
    s = torch.linalg.svdvals(newton_schulz(g, steps=5))
    # Not converged to 1: five quintic steps land a well-conditioned spectrum in a band.
    assert s.min() > 0.55 and s.max() < 1.25, (s.min(), s.max())
    assert newton_schulz(g).shape == g.shape


def test_muon_step_equals_the_literal_update():
    torch.manual_seed(0)
    p0 = torch.randn(8, 4)
    grads = [torch.randn(8, 4), torch.randn(8, 4)]
    lr, mom, wd = 0.05, 0.9, 0.1
    p = torch.nn.Parameter(p0.clone())
    opt = Muon([p], lr=lr, momentum=mom, backend_steps=5, weight_decay=wd)
    for g in grads:
        p.grad = g.clone()
        opt.step()

    expected, buf = p0.clone(), torch.zeros(8, 4)
    for g in grads:
        buf = mom * buf + g
        update = newton_schulz(g + mom * buf, 5) * math.sqrt(8 / 4)  # nesterov, tall scale
        expected = expected * (1 - lr * wd) - lr * update
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-6)


def test_parameter_groups_cover_every_parameter_once():
    model = GPT(model_preset("tiny"))
    names = {id(p): n for n, p in model.named_parameters()}
    matrices, embeddings, scalars = ({names[id(p)] for p in g} for g in param_groups(model))
    assert len(matrices) + len(embeddings) + len(scalars) == len(names)
    assert {"blocks.0.attn.c_q.weight", "blocks.3.mlp.proj.weight", "bigram.proj.weight"} <= (
        matrices
    )
    assert embeddings == {"tok_emb.weight", "bigram.embed.weight", "ve_shared.embed.weight"}
    assert {"skip_weights", "blocks.0.resid_mix", "blocks.1.attn.q_gain", "smear.gate"} <= scalars


@pytest.mark.parametrize("name", ["tiny", "seed"])
def test_parameter_groups_are_the_declared_roles(name: str) -> None:
    """Muon gets exactly the MATRIX tensors, AdamW embed_lr the EMBEDDING ones and
    scalar_lr the CONTROL ones, in parameter order (tests/test_roles.py checks the same
    grouping against the former name rule for every variant)."""
    with torch.device("meta"):
        model = GPT(model_preset(name))
    names = {id(p): n for n, p in model.named_parameters()}
    roles = model.parameter_roles()
    groups = [[names[id(p)] for p in g] for g in param_groups(model)]
    for group, want in zip(groups, (Role.MATRIX, Role.EMBEDDING, Role.CONTROL), strict=True):
        assert group == [n for n, _ in model.named_parameters() if roles[n] is want]
    assert groups[1] == ["tok_emb.weight", "bigram.embed.weight", "ve_shared.embed.weight"]


# --- schedules ----------------------------------------------------------------------


def test_lr_schedule_by_iterations():
    cfg = FAST.replace(iterations=100, warmup_steps=10, warmdown_steps=20, max_wallclock_s=None)
    got = [lr_scale(cfg, s) for s in (0, 4, 9, 50, 80, 90, 99)]
    assert got == pytest.approx([0.1, 0.5, 1.0, 1.0, 1.0, 0.5, 0.05])


def test_lr_schedule_by_wall_clock():
    cfg = FAST.replace(iterations=10_000, warmup_steps=0, warmdown_steps=20, max_wallclock_s=100)
    # At 1 s a step the warm-down spans the last 20 s of the budget.
    got = [lr_scale(cfg, s, elapsed_s=float(s)) for s in (0, 50, 80, 90, 95, 100, 120)]
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.25, 0.0, 0.0])
    # At 2 s a step the same 20 steps take 40 s.
    assert lr_scale(cfg, 40, elapsed_s=80.0) == pytest.approx(0.5)


def test_muon_momentum_warmup():
    cfg = FAST.replace(muon_momentum_warmup_steps=100)
    assert muon_momentum(cfg, 0) == pytest.approx(cfg.muon_momentum_warmup_start)
    assert muon_momentum(cfg, 50) == pytest.approx(0.955)
    assert muon_momentum(cfg, 100) == muon_momentum(cfg, 5000) == cfg.muon_momentum


def test_wall_clock_budget_stops_training(tokens):
    ticks = iter(range(1000))
    cfg = FAST.replace(iterations=1000, warmdown_steps=4, max_wallclock_s=6, log_every=1)
    res = train(cfg, tokens, CPU, clock=lambda: float(next(ticks)))
    assert res.steps == 6  # one fake second per step
    # Warm-up, then the last 4 s of the 6 s budget: step s starts at s seconds.
    assert [r["lr_scale"] for r in res.log] == pytest.approx([0.5, 1, 1, 0.75, 0.5, 0.25])


# --- training runs ------------------------------------------------------------------


def test_short_run_learns_and_is_deterministic(tokens):
    calls = []
    res = train(FAST, tokens, CPU, progress=lambda s, n, r: calls.append((s, n, r["loss"])))
    again = train(FAST, tokens, CPU)
    other = train(FAST.replace(seed=FAST.seed + 1), tokens, CPU)

    assert (res.steps, res.tokens) == (40, 40 * 512)
    assert [r["step"] for r in res.log] == [10, 20, 30, 40]
    assert set(res.log[0]) == {"stage", "step", "loss", "lr_scale", "tok_s", "elapsed_s", "qat"} | {
        "recur"
    }
    assert [c[:2] for c in calls] == [(s, 40) for s in range(1, 41)]
    assert calls[0][2] > 6.5 and res.log[-1]["loss"] < calls[0][2] - 1.0
    assert not res.model.training
    a, b, c = state(res.model), state(again.model), state(other.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(res.ema_state[k], again.ema_state[k]) for k in a)
    assert not torch.equal(a["blocks.0.attn.c_q.weight"], c["blocks.0.attn.c_q.weight"])


def test_ema_is_the_running_average_of_the_weights(tokens):
    # No warm-up or warm-down: a run of k steps is the prefix of a longer one.
    cfg = FAST.replace(warmup_steps=0, warmdown_steps=0, ema_decay=0.5)
    torch.manual_seed(cfg.seed)
    weights = [state(GPT(cfg.model))]
    weights += [state(train(cfg.replace(iterations=k), tokens, CPU).model) for k in (1, 2, 3)]
    res = train(cfg.replace(iterations=3), tokens, CPU)
    for name, w0 in weights[0].items():
        ema = w0.float()
        for w in weights[1:]:
            ema = ema * 0.5 + w[name].float() * 0.5
        torch.testing.assert_close(res.ema_state[name], ema, rtol=0, atol=1e-7)
        assert res.ema_state[name].dtype == torch.float32


def test_late_qat_and_recurrence_switch_on_at_their_steps(tokens):
    cfg = FAST.replace(
        model=model_preset("tiny").replace(recur_layers=(1,)),
        iterations=20,
        warmup_steps=0,
        warmdown_steps=10,
        qat_threshold=0.25,
        recur_start_step=5,
        log_every=1,
    )
    res = train(cfg, tokens, CPU)
    assert [r["qat"] for r in res.log] == [r["lr_scale"] < 0.25 for r in res.log]
    assert [r["qat"] for r in res.log].count(True) == 2  # scales 0.2 and 0.1
    assert [r["recur"] for r in res.log] == [r["step"] > 5 for r in res.log]
    # The returned model is plain again and runs its config's full schedule.
    assert not any(isinstance(m, QATLinear) for m in res.model.modules())
    assert res.model.recur_active


# --- QAT ----------------------------------------------------------------------------


def test_fake_quant_forward_is_int6_and_backward_is_identity():
    torch.manual_seed(0)
    w = torch.randn(48, 80, requires_grad=True)
    with torch.no_grad():
        w[3] = 0.0  # an all-zero row keeps scale 1 and stays zero
    q = fake_quant_int6(w)
    assert torch.equal(q.detach(), quantize(w, Scheme.INT6).dequantize())
    assert not torch.equal(q.detach(), w.detach())
    upstream = torch.randn(48, 80)
    (q * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)


def test_qat_swaps_only_int6_linears(model):
    gpt = GPT(model_preset("tiny").replace(attn_gate=True))
    gpt.load_state_dict(model.state_dict(), strict=False)
    keys = list(gpt.state_dict())
    assert enable_qat(gpt) == []  # the reference threshold keeps tiny matrices fp16
    names = enable_qat(gpt, passthrough_max_numel=0)
    assert "blocks.0.attn.c_q" in names and "blocks.3.mlp.fc" in names
    assert not any("attn_gate" in n or "tok_emb" in n for n in names)
    assert list(gpt.state_dict()) == keys
    lin = gpt.blocks[0].mlp.fc
    assert isinstance(lin, QATLinear)
    x = torch.randn(2, 5, lin.in_features)
    deq = quantize(lin.weight, Scheme.INT6).dequantize()
    gpt.train()
    torch.testing.assert_close(lin(x), F.linear(x, deq), rtol=0, atol=1e-6)
    gpt.eval()  # evaluation sees the float weights
    torch.testing.assert_close(lin(x), F.linear(x, lin.weight), rtol=0, atol=0)
    disable_qat(gpt)
    assert type(lin) is CastedLinear


# --- depth recurrence switch (golf/model.py's recur_active) ---------------------------


def test_inactive_recurrence_runs_the_physical_layers_once():
    cfg = model_preset("tiny").replace(xsa_last_n=0)
    torch.manual_seed(0)
    recur = GPT(cfg.replace(recur_layers=(1,)))
    with torch.no_grad():  # zero-init projections would make the repeated layer an identity
        for p in recur.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    plain = GPT(cfg)
    n_skips = plain.skip_weights.size(0)
    shared = {k: v for k, v in recur.state_dict().items() if k in plain.state_dict()}
    plain.load_state_dict(shared | {"skip_weights": recur.skip_weights[:n_skips]})
    ids = torch.randint(0, cfg.vocab_size, (2, 32))
    recur.recur_active = False
    torch.testing.assert_close(recur.forward_hidden(ids), plain.forward_hidden(ids))
    recur.recur_active = True
    assert not torch.allclose(recur.forward_hidden(ids), plain.forward_hidden(ids))


# --- two processes --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, cfg, tokens, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank)
    )
    torch.set_num_threads(1)
    dist = Dist.from_env("cpu")
    res = train(cfg, tokens, dist)
    trained = state(res.model)
    adapted = ttt(res.model, tokens, cfg, dist)
    if dist.is_main:
        torch.save({"state": trained, "loss": res.log[-1]["loss"], "ttt": adapted}, out)
    dist.close()


@pytest.mark.slow
def test_two_processes_match_one(tokens, tmp_path):
    # 17 TTT sequences in batches of 8: the last batch leaves rank 0 nothing.
    cfg = FAST.replace(
        iterations=8, warmdown_steps=4, log_every=4, ttt_tokens=17 * 64 + 1, ttt_batch_seqs=8
    )
    single = train(cfg.replace(micro_batch_seqs=2), tokens, CPU)  # accumulation, too
    single_state = state(single.model)
    single_ttt = ttt(single.model, tokens, cfg, CPU)
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_rank_main, args=(2, _free_port(), cfg, tokens, out), nprocs=2, join=True)
    pair = torch.load(out, weights_only=False)
    assert pair["loss"] == pytest.approx(single.log[-1]["loss"], abs=1e-4)
    # Summation order differs; Adam's normalisation magnifies that on tiny gradients.
    for name, w in single_state.items():
        torch.testing.assert_close(pair["state"][name], w, rtol=1e-3, atol=3e-4)
    assert pair["ttt"].loss_before == pytest.approx(single_ttt.loss_before, abs=1e-4)
    assert pair["ttt"].loss_after == pytest.approx(single_ttt.loss_after, abs=1e-3)


@pytest.mark.slow
def test_tiny_preset_beats_the_unigram_entropy(tmp_path):
    from rich.console import Console

    from golf.data.demo import build_demo
    from golf.engine.evaluate import evaluate, summarize
    from golf.spec.params import EvalParams

    build_demo(tmp_path, console=Console(quiet=True))
    data = Dataset.open(tmp_path)
    cfg = preset("tiny")
    res = train(cfg, np.asarray(data.train_tokens()), CPU)
    val = data.val_tokens(cfg.seq_len)
    counts = np.bincount(np.asarray(val[1:]), minlength=data.vocab_size)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    with torch.no_grad():
        records = evaluate(
            res.model, val, data.byte_lut(), "plain", EvalParams(seq_len=cfg.seq_len)
        )
    assert summarize(records)["val_loss"] < entropy - 0.5
