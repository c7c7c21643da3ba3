"""Peak host memory of one evaluation batch on CPU, measured in a fresh process.

Prints one JSON object: the batch's peak resident-set growth (`ru_maxrss` after the
batch minus before it, the model and tokens already loaded and a small batch run once
so that lazy allocations are not counted) beside `golf.spec.jobplan.batch_bytes`'s
estimate for the same settings. tests/test_batch_memory.py holds the estimate to it.

    python scripts/batch_memory.py PROTOCOL PARAMS_JSON [CONFIG_JSON]
"""

from __future__ import annotations

import json
import resource
import sys

import torch

from golf.engine.engine import Engine
from golf.engine.evaluate import batch_nll
from golf.models.gpt import GPT
from golf.spec.config import preset
from golf.spec.jobplan import batch_bytes
from golf.spec.params import EvalParams
from golf.spec.registry import get_protocol


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main() -> None:
    protocol_name, params_doc = sys.argv[1], json.loads(sys.argv[2])
    overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = preset("tiny").replace(**overrides)
    model = Engine.resolve(EvalParams(), "cpu").prepare(GPT(config).eval())
    protocol = get_protocol(protocol_name)
    params = protocol.resolve(EvalParams.parse(params_doc))
    n = params.seq_len * (params.batch_windows + 2) + 1
    tokens = torch.randint(0, config.vocab_size, (n,))
    plan = protocol.plan(n - 1, params)
    small = protocol.resolve(EvalParams.parse(params_doc | {"batch_windows": 1}))
    batch_nll(model, tokens, protocol.plan(n - 1, small), protocol, small, 0)  # warm-up
    before = peak_bytes()
    batch_nll(model, tokens, plan, protocol, params, 0)
    measured = peak_bytes() - before
    estimate = batch_bytes(
        params,
        model_dim=config.model_dim,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        vocab_size=config.vocab_size,
        protocol=protocol_name,
    )
    print(json.dumps({"measured": measured, "estimate": estimate, "ratio": estimate / measured}))


if __name__ == "__main__":
    main()
