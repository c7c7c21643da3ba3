"""Per-record driver table: what differs between records when the harness runs them.

Every record runs its own `main()` (or the entry named here) with a tiny configuration
set through its own environment variables. `TINY_ENV` is the shared base (names the
early board reads; a name a record does not read is ignored by it); an entry adds or
overrides variables, names the vocabulary, the artifact file its code writes and the
printed lines that carry the numbers. A record with no entry runs with the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TINY_ENV = {
    "NUM_LAYERS": "2",
    "MODEL_DIM": "64",
    "NUM_HEADS": "2",
    "NUM_KV_HEADS": "1",
    "TRAIN_SEQ_LEN": "128",
    "EVAL_SEQ_LEN": "128",
    "TRAIN_BATCH_TOKENS": "2048",
    "VAL_BATCH_SIZE": "4096",
    "ITERATIONS": "6",
    "WARMUP_STEPS": "1",
    "WARMDOWN_ITERS": "3",
    "VAL_LOSS_EVERY": "0",
    "TRAIN_LOG_EVERY": "1",
    "MAX_WALLCLOCK_SECONDS": "0",
    "SEED": "1337",
    "RUN_ID": "harness",
    "EVAL_STRIDE": "64",
    "EVAL_BATCH_SEQS": "8",
    "EVAL_BATCH_SIZE": "8",
    "SW_EVAL_BATCH": "8",
    "BIGRAM_VOCAB_SIZE": "256",
    "BIGRAM_HASH_BUCKETS": "256",
    "BIGRAM_DIM": "32",
    "BIGRAM_HASH_DIM": "32",
    "XSA_LAST_N": "1",
    "VE_DIM": "32",
    "VE_LAYERS": "1",
    "SWA_EVERY": "2",
    "TTT_EVAL_SEQ_LEN": "128",
}
"""Two layers of width 64 (head dim 32, GQA 2:1), 128-token sequences, six steps; the
block-specific knobs (bigram table, XSA, value embeddings, SWA) shrunk so that each
record's own variant is still switched on and exercised."""


SCALE_EDITS = (
    (r"INT8_KEEP_FLOAT_MAX_NUMEL = 65_536", "INT8_KEEP_FLOAT_MAX_NUMEL = 1024"),
    (r"numel\(\) <= 65536", "numel() <= 1024"),
    (r"numel\(\) > 65536", "numel() > 1024"),
    (r"numel\(\) <= 8192", "numel() <= 128"),
)
"""Size thresholds written as literals in the records' quantizers ("keep tensors of at
most 65,536 elements in fp16"), scaled by the width ratio squared (64/512)^2 = 1/64, so
the tiny model's matrices take the quantized path and its control vectors stay float,
as in the full-size record. Applied to the source text; record.json lists those that
matched."""


@dataclass(frozen=True)
class Driver:
    """How to run one record folder's script tiny."""

    vocab: int = 512  # the sp1024 family at a 512-piece tokenizer: a 4x smaller embedding
    env: dict[str, str] = field(default_factory=dict)
    script: str = "train_gpt.py"
    entry: str = "main"
    artifact: str = ""  # empty: the one final_model*.ptz its code wrote
    edits: tuple[tuple[str, str], ...] = SCALE_EDITS
    notes: str = ""


DRIVERS: dict[str, Driver] = {
    "2026-03-17_NaiveBaseline": Driver(),
}


def driver(folder: str) -> Driver:
    return DRIVERS.get(folder, Driver())
