"""The engine on CPU: fp32 untouched, bf16 close, pruning exact, static shapes, reports."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_model import TINY, VARIANTS

from golf.data.bytes import ByteLUT
from golf.data.shards import Dataset
from golf.engine.engine import Engine, EngineInfo, EngineModel, prepare
from golf.engine.evaluate import batch_nll, evaluate, summarize, window_records
from golf.models.gpt import GPT
from golf.protocols.base import Batch
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.registry import get_protocol

PROTOCOLS = ["plain", "sliding", "slot", "slot-causal"]
BF16_TOLERANCE = 5e-3


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 1024, (700,), generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def byte_lut() -> ByteLUT:
    vocab = 1024
    return ByteLUT(np.arange(vocab) % 4 + 1, np.arange(vocab) % 3 == 0, np.arange(vocab) % 50 == 0)


def params(**changes) -> EvalParams:
    base = {"seq_len": 64, "stride": 16, "batch_windows": 5, "slot_steps": 4}
    return EvalParams(**(base | changes))


def bpb(model, tokens, byte_lut, name, run) -> float:
    return summarize(evaluate(model, tokens, byte_lut, name, run))["val_bpb"]


def test_engine_fields_are_eval_params_with_cpu_defaults():
    run = EvalParams()
    assert (run.precision, run.attention, run.compile, run.slot_kernel) == (
        "auto",
        "auto",
        False,
        "auto",
    )
    engine = Engine.resolve(run, "cpu")
    assert (engine.precision, engine.slot_kernel, engine.compile) == ("fp32", "torch", False)
    assert Engine.resolve(EvalParams(precision="bf16"), "cpu").precision == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        EvalParams.parse({"precision": "fp16"})
    with pytest.raises(ConfigError, match="flash-attn"):
        Engine.resolve(EvalParams(attention="flash"), "cpu")


def test_fp32_engine_is_the_model_itself(model, tokens, byte_lut):
    prepared = prepare(model, params())
    assert isinstance(prepared, EngineModel) and prepared.model is model
    assert prepared.head_weight.data_ptr() == model.head_weight.data_ptr()
    ids = tokens[:64].view(2, 32)
    assert torch.equal(prepared.forward_hidden(ids), model.forward_hidden(ids))
    info = prepared.info()
    assert (info.device, info.precision, info.attention) == ("cpu", "fp32", "sdpa-cpu")
    assert (info.compiled, info.slot_kernel, info.torch) == (False, "torch", torch.__version__)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_protocol_runs_in_bf16_close_to_fp32(model, tokens, byte_lut, name):
    fp32 = bpb(model, tokens, byte_lut, name, params())
    bf16 = bpb(model, tokens, byte_lut, name, params(precision="bf16"))
    assert fp32 != bf16 and abs(bf16 - fp32) < BF16_TOLERANCE


def test_bf16_keeps_the_embedding_tables_bf16_on_a_copy(model):
    prepared = Engine.resolve(params(precision="bf16"), "cpu").prepare(model)
    assert prepared.model is not model and model.tok_emb.weight.dtype == torch.float32
    assert prepared.model.tok_emb.weight.dtype == torch.bfloat16
    assert prepared.model.bigram.embed.weight.dtype == torch.bfloat16
    assert prepared.model.ve_shared.embed.weight.dtype == torch.bfloat16
    assert prepared.model.blocks[0].attn.c_q.weight.dtype == torch.float32
    head = prepared.head_weight
    assert head.dtype == torch.float32 and torch.equal(
        head, model.tok_emb.weight.bfloat16().float()
    )
    hidden = prepared.forward_hidden(torch.arange(32).view(1, 32))
    assert hidden.dtype == torch.float32


@pytest.mark.parametrize("name", ["slot", "slot-causal"])
def test_bf16_fast_slot_matches_the_reference(model, tokens, name):
    """Same forward (bf16), fp32 fits: the fp32 tolerance of tests/test_slot.py holds."""
    run = params(precision="bf16", slot_steps=6)
    prepared = prepare(model, run)
    protocol = get_protocol(name)
    plan = protocol.plan(tokens.numel() - 1, run)
    for k in range(plan.n_batches(run.batch_windows)):
        batch = Batch.from_plan(tokens, plan, plan.batch(k, run.batch_windows))
        got = protocol.nll(prepared, batch, run)
        want = protocol.nll(prepared, batch, run.model_copy(update={"reference": True}))
        assert (got == 0).equal(want == 0)
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5)


def test_slot_fast_path_runs_inside_an_autocast_region(model, tokens):
    run = params()
    protocol = get_protocol("slot")
    plan = protocol.plan(tokens.numel() - 1, run)
    batch = Batch.from_plan(tokens, plan, plan.batch(0, run.batch_windows))
    want = protocol.nll(model, batch, run)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = protocol.nll(model, batch, run)
    assert got.dtype == torch.float32 and (got != 0).equal(want != 0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_pruned_last_layer_equals_the_full_forward(variant):
    torch.manual_seed(0)
    gpt = GPT(TINY.replace(**VARIANTS[variant])).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        ids = torch.randint(0, gpt.config.vocab_size, (3, 40))
        rows = torch.tensor([[0, 5, 39, 39], [10, 11, 12, 0], [39, 2, 2, 7]])
        full = gpt.forward_hidden(ids)
        pruned = gpt.forward_hidden(ids, rows)
    want = full.gather(1, rows[..., None].expand(-1, -1, full.size(-1)))
    assert pruned.shape == (3, 4, gpt.config.model_dim)
    torch.testing.assert_close(pruned, want, rtol=0, atol=1e-6)


def test_window_records_read_only_the_scored_rows(model, tokens, byte_lut):
    run = params()
    protocol = get_protocol("sliding")
    plan = protocol.plan(tokens.numel() - 1, run)
    batch, nll = batch_nll(model, tokens, plan, protocol, run, 1)
    outside = ~batch.scored
    noisy = nll + outside * 1e6  # unscored positions must not be read
    assert window_records(batch, noisy, byte_lut) == window_records(batch, nll, byte_lut)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_static_padded_batches_give_the_same_records(model, tokens, byte_lut, name):
    """The compiled engine's shapes (B windows of L tokens; the last batch padded with
    empty windows), run through Dynamo with the eager backend: same records."""
    run = params(max_windows=13, compile=True)  # 13 windows: the last batch has 3
    eager = evaluate(model, tokens, byte_lut, name, run.model_copy(update={"compile": False}))
    engine = dataclasses.replace(Engine.resolve(run, "cpu"), compile_backend="eager")
    static = evaluate(engine.prepare(model), tokens, byte_lut, name, run)
    assert [r.window for r in static] == [r.window for r in eager]
    assert [(r.tokens, r.bytes) for r in static] == [(r.tokens, r.bytes) for r in eager]
    np.testing.assert_allclose(
        [r.nll_sum for r in static], [r.nll_sum for r in eager], rtol=0, atol=1e-4
    )
    assert abs(summarize(static)["val_bpb"] - summarize(eager)["val_bpb"]) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sliding", "slot"])
def test_inductor_compiled_forward_matches_eager(model, tokens, byte_lut, name):
    run = params(seq_len=32, stride=16, batch_windows=4, max_windows=7, compile=True)
    eager = bpb(model, tokens, byte_lut, name, run.model_copy(update={"compile": False}))
    prepared = prepare(model, run)
    compiled = bpb(prepared, tokens, byte_lut, name, run)
    assert prepared.info().compiled
    assert abs(compiled - eager) <= 1e-5


def test_triton_slot_kernel_is_a_config_error_without_triton(model, tokens):
    pytest.importorskip("torch")
    try:
        import triton  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("triton is installed here")
    run = params(slot_kernel="triton")
    protocol = get_protocol("slot")
    plan = protocol.plan(tokens.numel() - 1, run)
    batch = Batch.from_plan(tokens, plan, plan.batch(0, run.batch_windows))
    with pytest.raises(ConfigError, match="triton"):
        protocol.nll(model, batch, run)
    assert Engine.resolve(EvalParams(), "cpu").slot_kernel == "torch"


def test_reports_carry_the_engine(demo_data: Path, tmp_path: Path):
    from service_support import make_artifact

    from golf.engine.runner import EvalInputs, run_protocol

    artifact = make_artifact(demo_data, tmp_path / "tiny.golf")
    inputs = EvalInputs.load(str(artifact), str(demo_data))
    run = EvalParams(seq_len=64, batch_windows=8, max_windows=8)
    fp32 = run_protocol(inputs, "sliding", run)
    bf16 = run_protocol(inputs, "sliding", run.model_copy(update={"precision": "bf16"}))
    assert fp32.engine.precision == "fp32" and bf16.engine.precision == "bf16"
    doc = bf16.model_dump(mode="json")
    assert doc["engine"]["precision"] == "bf16" and doc["engine"]["attention"] == "sdpa-cpu"
    assert doc["params"]["precision"] == "bf16"
    assert abs(fp32.val_bpb - bf16.val_bpb) < BF16_TOLERANCE
    assert Dataset.open(demo_data).sha256 == fp32.dataset_sha256


def test_service_digest_includes_the_precision_that_ran():
    from service.reports import digest

    run = EvalParams(seq_len=64).model_copy(update={"stride": 16})
    job = SimpleNamespace(
        artifact="a" * 64,
        dataset_sha256="d" * 64,
        protocols=("sliding",),
        plans={"sliding": SimpleNamespace(params=run)},
    )
    info = dict(
        device="cpu",
        device_name="cpu",
        attention="sdpa-cpu",
        compiled=False,
        slot_kernel="torch",
        torch="x",
    )
    fp32 = digest(job, {"sliding": EngineInfo(precision="fp32", **info)})
    bf16 = digest(job, {"sliding": EngineInfo(precision="bf16", **info)})
    assert fp32 != bf16 and len(fp32) == 64


def _trained_tiny(demo_data: Path, **changes):
    from trainer.config import preset
    from trainer.dist import Dist
    from trainer.train import train

    cfg = preset("tiny").replace(**changes)
    tokens = np.asarray(Dataset.open(demo_data).train_tokens())
    return train(cfg, tokens, Dist(0, 1, torch.device("cpu"))).model.requires_grad_(False)


def _bf16_delta_on_val(model, demo_data: Path, name: str, run: EvalParams) -> float:
    data = Dataset.open(demo_data)
    val = data.val_tokens(run.seq_len)
    lut = data.byte_lut()
    fp32 = bpb(model, val, lut, name, run)
    bf16 = bpb(model, val, lut, name, run.model_copy(update={"precision": "bf16"}))
    return abs(bf16 - fp32)


@pytest.mark.parametrize("name", ["sliding", "slot"])
def test_bf16_close_on_a_briefly_trained_model(demo_data, name):
    """40 steps of training: far from uniform, still fast."""
    model = _trained_tiny(
        demo_data,
        seq_len=64,
        batch_tokens=512,
        iterations=40,
        warmup_steps=2,
        warmdown_steps=10,
        muon_momentum_warmup_steps=10,
        log_every=10,
    )
    run = EvalParams(seq_len=64, stride=32, batch_windows=16, max_windows=64, slot_steps=8)
    delta = _bf16_delta_on_val(model, demo_data, name, run)
    print(f"{name}: |Δ val_bpb| bf16 vs fp32 = {delta:.3e}")
    assert delta < BF16_TOLERANCE


@pytest.fixture(scope="module")
def trained_tiny(demo_data):
    """`golf train --preset tiny`'s model (about two minutes on CPU)."""
    return _trained_tiny(demo_data)


@pytest.mark.slow
@pytest.mark.parametrize("name", PROTOCOLS)
def test_bf16_close_on_the_trained_tiny_preset(trained_tiny, demo_data, name):
    model = trained_tiny
    run = EvalParams(seq_len=256, batch_windows=16, max_windows=64, slot_steps=8)
    delta = _bf16_delta_on_val(model, demo_data, name, run)
    print(f"{name}: |Δ val_bpb| bf16 vs fp32 = {delta:.3e}")
    assert delta < BF16_TOLERANCE


def test_two_engines_in_one_process_keep_their_own_attention_state(model, monkeypatch):
    """Attention settings travel with each EngineModel, not through module state: two
    engines over the same model, with different attention modes, called interleaved and
    from two threads, each sees its own mode and reports only the backends it ran."""
    import threading

    from golf.models import gpt as gpt_module

    real, calls = gpt_module.causal_attention, []

    def probe(q, k, v, q_pos, ctx):  # what each attention call was handed
        calls.append(ctx.mode)
        ctx.seen[f"probe-{ctx.mode}"] = None
        return real(q, k, v, q_pos, ctx)

    monkeypatch.setattr(gpt_module, "causal_attention", probe)
    ids = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator())
    engines = {
        mode: Engine.resolve(EvalParams(attention=mode), "cpu").prepare(model)
        for mode in ("sdpa", "auto")
    }
    layers = len(model.config.virtual_layers)
    for mode in ("sdpa", "auto", "sdpa", "auto"):
        calls.clear()
        engines[mode].forward_hidden(ids)
        assert calls == [mode] * layers
        assert engines[mode].attention == f"probe-{mode}+sdpa-cpu"

    calls.clear()
    barrier = threading.Barrier(2)

    def run(mode: str) -> None:
        barrier.wait()
        for _ in range(3):
            engines[mode].forward_hidden(ids)

    threads = [threading.Thread(target=run, args=(mode,)) for mode in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == sorted(["sdpa", "auto"] * 3 * layers)
    for mode, engine in engines.items():
        assert engine.attention_context.mode == mode
        assert set(engine.attention_context.seen) == {f"probe-{mode}", "sdpa-cpu"}
        assert engine.info().attention == f"probe-{mode}+sdpa-cpu"
