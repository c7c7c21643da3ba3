"""Peak host memory of one evaluation batch on CPU, measured in a fresh process.

Prints one JSON object: the batch's peak resident-set growth beside
`golf.spec.jobplan.batch_bytes`'s estimate for the same settings. The model and tokens
are loaded and a small batch is run first (lazy allocations are not the batch's); then
the kernel's peak counter is reset (`5` to /proc/self/clear_refs), and the growth is
VmHWM after the batch minus VmRSS before it, so an earlier, higher peak (imports) cannot
hide the batch's. Run it with MALLOC_MMAP_THRESHOLD_=65536 (as tests/test_batch_memory.py
does, holding the estimate to it) or glibc's adaptive threshold keeps freed buffers in the
heap and the peak depends on what ran before. Linux only.

    python scripts/batch_memory.py PROTOCOL PARAMS_JSON [CONFIG_JSON]
"""

from __future__ import annotations

import json
import sys

import torch

from golf.engine.engine import Engine
from golf.engine.evaluate import batch_nll
from golf.models.gpt import GPT
from golf.spec.config import preset
from golf.spec.jobplan import batch_bytes
from golf.spec.params import EvalParams
from golf.spec.registry import get_protocol


def status_bytes(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS now, VmHWM the peak), in bytes."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


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
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = status_bytes("VmRSS")
    batch_nll(model, tokens, plan, protocol, params, 0)
    measured = status_bytes("VmHWM") - before
    estimate = batch_bytes(
        params,
        model_dim=config.model_dim,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        vocab_size=config.vocab_size,
        protocol=protocol_name,
    )
    ratio = estimate / measured if measured > 0 else None
    print(json.dumps({"measured": measured, "estimate": estimate, "ratio": ratio}))


if __name__ == "__main__":
    main()
