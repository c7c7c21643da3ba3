"""On a CUDA device the engine must give the CPU's numbers (fp32, tiny model).

Skipped without a GPU; CI never depends on one.
"""

import copy

import numpy as np
import pytest
import torch

from golf.bytes import ByteLUT
from golf.evaluate import evaluate, summarize
from golf.protocols import EvalParams

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("name", ["sliding", "slot", "slot-causal"])
def test_cuda_fast_path_matches_the_cpu_reference(model, name):
    tokens = torch.randint(0, 1024, (600,), generator=torch.Generator().manual_seed(4))
    lut = ByteLUT(np.full(1024, 2), np.zeros(1024, bool), np.zeros(1024, bool))
    params = EvalParams(seq_len=64, stride=16, batch_windows=4)
    reference = params.model_copy(update={"reference": True})
    cpu = summarize(evaluate(model, tokens, lut, name, reference))["val_bpb"]
    gpu_model = copy.deepcopy(model).cuda()
    gpu = summarize(evaluate(gpu_model, tokens, lut, name, params))["val_bpb"]
    assert abs(gpu - cpu) < 1e-5
