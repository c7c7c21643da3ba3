"""The engine on a CUDA device: fp32 gives the CPU's numbers, bf16 stays close and runs a
flash kernel, reruns are bitwise identical, the Triton SLOT step equals the torch one.

Skipped without a GPU; CI never depends on one.
"""

import copy

import numpy as np
import pytest
import torch

from golf.data.bytes import ByteLUT
from golf.engine.engine import prepare
from golf.engine.evaluate import evaluate, summarize
from golf.models.gpt import GPT
from golf.spec.config import preset
from golf.spec.params import EvalParams

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PROTOCOLS = ["sliding", "slot", "slot-causal"]
FLASH = {"flash-attn-3", "flash-attn-2", "sdpa-flash", "sdpa-cudnn"}


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 1024, (1200,), generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def lut() -> ByteLUT:
    return ByteLUT(np.full(1024, 2), np.zeros(1024, bool), np.zeros(1024, bool))


@pytest.fixture(scope="module")
def seed_model() -> GPT:
    """The seed architecture at full width (jittered: no block is an identity)."""
    torch.manual_seed(1)
    gpt = GPT(preset("seed")).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return gpt.requires_grad_(False)


def run(model, tokens, lut, name, params) -> tuple[float, list]:
    records = evaluate(model, tokens, lut, name, params)
    return summarize(records)["val_bpb"], records


@pytest.mark.parametrize("name", PROTOCOLS)
def test_cuda_fast_path_matches_the_cpu_reference(model, tokens, lut, name):
    params = EvalParams(seq_len=64, stride=16, batch_windows=4, precision="fp32")
    reference = params.model_copy(update={"reference": True})
    cpu, _ = run(model, tokens[:600], lut, name, reference)
    gpu, _ = run(copy.deepcopy(model).cuda(), tokens[:600], lut, name, params)
    assert abs(gpu - cpu) < 1e-5


@pytest.mark.parametrize("name", PROTOCOLS)
def test_fp32_on_the_gpu_is_the_cpu_at_seed_width(seed_model, tokens, lut, name):
    params = EvalParams(
        seq_len=128, stride=64, batch_windows=4, max_windows=8, slot_steps=4, precision="fp32"
    )
    cpu, _ = run(seed_model, tokens, lut, name, params)
    gpu_model = prepare(copy.deepcopy(seed_model).cuda(), params)
    gpu, _ = run(gpu_model, tokens, lut, name, params)
    assert gpu_model.info().precision == "fp32"
    assert abs(gpu - cpu) <= 1e-6


@pytest.mark.parametrize("name", PROTOCOLS)
def test_bf16_is_close_to_fp32_reruns_are_identical_and_attention_is_flash(
    seed_model, tokens, lut, name
):
    params = EvalParams(seq_len=128, stride=64, batch_windows=4, max_windows=8, slot_steps=4)
    cuda_model = copy.deepcopy(seed_model).cuda()
    fp32, _ = run(cuda_model, tokens, lut, name, params.model_copy(update={"precision": "fp32"}))
    bf16_model = prepare(cuda_model, params)  # auto: bf16 on CUDA
    bf16, first = run(bf16_model, tokens, lut, name, params)
    _, again = run(bf16_model, tokens, lut, name, params)
    info = bf16_model.info()
    assert info.precision == "bf16" and info.device == "cuda"
    assert abs(bf16 - fp32) <= 5e-3
    assert again == first  # bitwise: every window's nll_sum
    assert info.attention.split("+")[0] in FLASH, info.attention


def test_forced_sdpa_reports_an_sdpa_kernel(seed_model, tokens, lut):
    params = EvalParams(seq_len=128, stride=64, batch_windows=4, max_windows=4, attention="sdpa")
    model = prepare(copy.deepcopy(seed_model).cuda(), params)
    run(model, tokens, lut, "sliding", params)
    backends = model.info().attention.split("+")
    assert backends[0] in {"sdpa-flash", "sdpa-cudnn"}, backends
    assert all(b.startswith("sdpa-") and b != "sdpa-math" for b in backends)


@pytest.mark.parametrize("name", ["sliding", "slot"])
def test_compiled_cuda_graphs_match_eager(model, tokens, lut, name):
    params = EvalParams(
        seq_len=64, stride=32, batch_windows=4, max_windows=10, slot_steps=4, precision="fp32"
    )
    cuda_model = copy.deepcopy(model).cuda()
    eager, _ = run(cuda_model, tokens, lut, name, params)
    compiled_params = params.model_copy(update={"compile": True})
    compiled_model = prepare(cuda_model, compiled_params)
    compiled, records = run(compiled_model, tokens, lut, name, compiled_params)
    assert compiled_model.info().compiled and len(records) == 10
    assert abs(compiled - eager) <= 1e-5


def test_triton_slot_step_matches_torch(seed_model, tokens, lut):
    pytest.importorskip("triton")
    pytest.importorskip("golf.protocols.slot_triton")
    from golf.protocols.slot_core import fast_slot
    from golf.protocols.slot_triton import triton_slot

    params = EvalParams(seq_len=128, stride=64, batch_windows=4, max_windows=8, slot_steps=6)
    cuda_model = copy.deepcopy(seed_model).cuda()
    torch_bpb, _ = run(
        cuda_model, tokens, lut, "slot", params.model_copy(update={"slot_kernel": "torch"})
    )
    triton_bpb, _ = run(
        cuda_model, tokens, lut, "slot", params.model_copy(update={"slot_kernel": "triton"})
    )
    assert abs(triton_bpb - torch_bpb) <= 1e-6

    generator = torch.Generator(device="cuda").manual_seed(0)
    b, t, d, v = 3, 48, 64, 1024
    hidden = torch.randn(b, t, d, device="cuda", generator=generator)
    weight = torch.randn(v, d, device="cuda", generator=generator) * 0.05
    targets = torch.randint(0, v, (b, t), device="cuda", generator=generator)
    offsets = torch.arange(t, device="cuda")
    scored = offsets[None, :] >= torch.tensor([[0], [16], [32]], device="cuda")
    adapt = scored.clone()
    want = fast_slot(hidden, weight, 30.0, targets, adapt, scored, params)
    got = triton_slot(hidden, weight, 30.0, targets, adapt, scored, params)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
