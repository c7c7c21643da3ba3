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


LOOPED_ENV = {
    "NUM_LAYERS": "3",
    "LOOP_START": "1",
    "LOOP_END": "1",
    "NUM_LOOPS": "2",
    "EMBEDDING_DIM": "64",
    "MLP_MULT": "2",
    "TIED_EMBED_INIT_STD": "0.1",
    "ITERATIONS": "40",
    "MATRIX_LR": "0.1",
    "SCALAR_LR": "0.1",
    "TIED_EMBED_LR": "0.1",
    "MATRIX_CLIP_SIGMAS": "40",
    "EMBED_CLIP_SIGMAS": "60",
    "ENABLE_LOOPING_AT": "0.5",
    "VAL_BATCH_TOKENS": "32768",
    "GPTQ_CALIBRATION_BATCHES": "2",
    "GPTQ_RESERVE_SECONDS": "0",
    "WARMDOWN_FRAC": "0.5",
    "TTT_ENABLED": "0",
    "ETLB_ENABLED": "0",
    "NGRAM_TILT_ENABLED": "0",
}
"""The looped SP8192 stack (04-05 … 04-09) at three layers: block 1 runs three times
(virtual layers 0,1,1,1,2: encoder 0,1, decoder 1,1,2), so the loop, the encoder/decoder
cut over virtual indices and the skip count all differ from the plain stack; the parallel
residual (GPT-J or two lanes) starts at layer 1, inside the loop. TTT and the n-gram
tilt are off: the fixture checks the pre-TTT numbers. MLP ×2 and wide GPTQ clips (few
distinct integers) keep each artifact at tens of KB; a wide tied-embedding init gives
logits far from uniform, so a wrong block changes the loss well past the tolerance."""


MINIFIED_SCALE_EDITS = (
    (r"numel\(\)\s*<=\s*65536", "numel()<=1024"),
    (r"numel\(\)\s*>\s*65536", "numel()>1024"),
)
"""SCALE_EDITS for minified sources (the shims of the SP8192 lineage drop the spaces)."""


def _looped(**env: str) -> Driver:
    return Driver(
        vocab=512,
        env=LOOPED_ENV | env,
        edits=MINIFIED_SCALE_EDITS,
        notes="looped family (golf/models/looped.py)",
    )


VARLEN_ENV = LOOPED_ENV | {
    "PARALLEL_START_LAYER": "1",
    "SLIDING_WINDOW_ENABLED": "1",
    "VAL_BATCH_TOKENS": "32768",
    "TTT_ENABLED": "0",
    "FUSED_CE_ENABLED": "0",
    "GATE_WINDOW": "12",
    "LQER_ENABLED": "0",
}
"""The document-bounded stack (04-10 … 04-29) at the looped tiny shape, two residual lanes
from layer 1 (inside the loop); sliding eval on (04-14 and later leave it off by
default), TTT and the Triton fused CE off; LQER only where a driver turns it on."""

VARLEN_EDITS = (
    *MINIFIED_SCALE_EDITS,
    (r"self\.use_fused = True", "self.use_fused = False"),
    (r"\.pin_memory\(\)", ""),
)
"""The fused LeakyReLU² MLP is a Triton (CUDA) kernel used only while training: the
unfused path computes the same function; pinned host memory needs a CUDA driver."""


GATED = {
    "NUM_HEADS": "4",
    "NUM_KV_HEADS": "2",
    "EMBED_BITS": "7",
    "CASEOPS_ENABLED": "0",
    "GATED_ATTN_QUANT_GATE": "1",
}
"""The gated CaseOps records at four heads, so that even the sparse gate (heads × 12)
has the 32+ elements their int8 gate-row quantizer takes; CaseOps off: the model is the
same, the byte sidecar is a dataset matter (golf.data)."""

LQER = GATED | {
    "GATED_ATTN_QUANT_GATE": "0",
    "SPARSE_ATTN_GATE_ENABLED": "1",
    "SMEAR_GATE_ENABLED": "1",
    "LQER_ENABLED": "1",
    "LQER_ASYM_ENABLED": "1",
    "LQER_RANK": "4",
    "LQER_TOP_K": "3",
    "LQER_ASYM_GROUP": "64",
}
"""The BOS-fixed SmearGate + sparse gate + asymmetric LQER records, as their logs run."""


def _varlen(**env: str) -> Driver:
    return Driver(
        vocab=512,
        env=VARLEN_ENV | env,
        edits=VARLEN_EDITS,
        notes="varlen family (golf/models/varlen.py)",
    )


TTT_ENV = {
    "TTT_ENABLED": "1",
    "EVAL_STRIDE": "32",
    "TTT_CHUNK_TOKENS": "1024",
    "TTT_EPOCHS": "2",
    "TTT_LR": "0.02",
    "TTT_FREEZE_BLOCKS": "1",
    "TTT_BATCH_SEQS": "3",
}
"""Score-first TTT at the tiny shape: 4 chunks over the 4,096 val targets, a learning rate
large enough that the adapted score differs clearly from sliding, one frozen block."""

DRIVERS: dict[str, Driver] = {
    "2026-03-17_NaiveBaseline": Driver(),
    "2026-03-23_LeakyReLU_LegalTTT_ParallelMuon": Driver(
        env=TTT_ENV, notes="golden fixture of the `ttt` protocol (legal_ttt_exact)"
    ),
    "2026-04-05_SP8192_GPTQ-Embeddings_SDClip_Loop45x2": _looped(),
    "2026-04-06_SP8192_HessianSDClip_ProgressiveRecurrence": _looped(PARALLEL_RESIDUAL_START="1"),
    "2026-04-06_SP8192_QK5_LegalTTT_1.0828": _looped(),
    "2026-04-08_SP8192_ParallelResid_ScoreFirstTTT": _looped(PARALLEL_START_LAYER="1"),
    "2026-04-09_A2_Muon097_3Seed": _looped(PARALLEL_RESIDUAL_START="1"),
    "2026-04-09_SP8192_3LayerRecur_ParResid_QK525_LegalTTT": _looped(PARALLEL_RESIDUAL_START="1"),
    "2026-04-10_VarLenAttn": _varlen(),
    "2026-04-13_VarLenAttn_PhasingTTT2000": _varlen(),
    "2026-04-14_MultiPhaseGlobalSGD_PhasedTTT": _varlen(EMBED_BITS="7"),
    "2026-04-16_SmearGate_AttentionOutputGate_ScoreFirstTTT": _varlen(
        SMEAR_GATE_ENABLED="1", GATE_ATTN_OUT="1", EMBED_BITS="7"
    ),
    "2026-04-19_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT": _varlen(
        **GATED, GATED_ATTN_ENABLED="1"
    ),
    "2026-04-22_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT_MLPClip12": _varlen(
        **GATED, GATED_ATTN_ENABLED="1"
    ),
    "2026-04-23_SP8192_CaseOps_SparseGate_QuantGate_Loop45_PhasedTTT_PolarNS_MinLR_FusedCE": (
        _varlen(**GATED, SPARSE_ATTN_GATE_ENABLED="1")
    ),
    "2026-04-27_SmearGateBOSFix_PR1787Base_LQERAsym_PhasedTTT": _varlen(**LQER),
    "2026-04-29_SmearGateBOSFix_3Seed_1.06141": _varlen(**LQER),
}


def driver(folder: str) -> Driver:
    import os

    if os.environ.get("HARNESS_TTT"):  # the records' own TTT evals (ttt_table.py)
        from ttt_table import TTT_DRIVERS

        if folder in TTT_DRIVERS:
            return TTT_DRIVERS[folder]
    return DRIVERS.get(folder, Driver())
