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
    "MODEL_DIM": "48",
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
"""Two layers of width 48 (head dim 24, GQA 2:1), 128-token sequences, six steps; the
block-specific knobs (bigram table, XSA, value embeddings, SWA) shrunk so that each
record's own variant is still switched on and exercised."""


SCALE_EDITS = (
    (r"INT8_KEEP_FLOAT_MAX_NUMEL = 65_536", "INT8_KEEP_FLOAT_MAX_NUMEL = 576"),
    (r"numel\(\) <= 65536", "numel() <= 576"),
    (r"numel\(\) > 65536", "numel() > 576"),
    (r"numel\(\) <= 8192", "numel() <= 72"),
)
"""Size thresholds written as literals in the records' quantizers ("keep tensors of at
most 65,536 elements in fp16"), scaled by the width ratio squared (48/512)^2 ≈ 1/114, so
the tiny model's matrices take the quantized path and its control vectors stay float,
as in the full-size record. Applied to the source text; record.json lists those that
matched."""


@dataclass(frozen=True)
class Driver:
    """How to run one record folder's script tiny."""

    vocab: int = 384  # the sp1024 family at 384 pieces (256 bytes, the text's ~100 chars, merges)
    env: dict[str, str] = field(default_factory=dict)
    script: str = "train_gpt.py"
    entry: str = "main"
    artifact: str = ""  # empty: the one final_model*.ptz its code wrote
    edits: tuple[tuple[str, str], ...] = SCALE_EDITS
    # (printed tag, golf protocol, window plan): which printed number golf must reproduce.
    checks: tuple[tuple[str, str, str], ...] = ()
    notes: str = ""


PLAIN_INT8 = ("final_int8_zlib_roundtrip_exact", "plain", "canonical")
PLAIN_INT6 = ("final_int6_roundtrip_exact", "plain", "canonical")
SLIDING_AS_INT8 = ("final_int8_zlib_roundtrip_exact", "sliding", "legacy")
"""Records whose final "int8_zlib_roundtrip" line carries the sliding number when
EVAL_STRIDE < TRAIN_SEQ_LEN (their code replaces the plain result)."""

DRIVERS: dict[str, Driver] = {
    "2026-03-17_NaiveBaseline": Driver(checks=(PLAIN_INT8,)),
    "2026-03-17_LoRA_TTT": Driver(checks=(PLAIN_INT8,), notes="TTT-LoRA number: ttt helper"),
    "2026-03-18_FP16Embed_WD3600": Driver(env={"MLP_HIDDEN": "93"}, checks=(PLAIN_INT8,)),
    "2026-03-18_LongContextSeq2048": Driver(checks=(PLAIN_INT8,)),
    "2026-03-18_LowerLR": Driver(checks=(PLAIN_INT8,)),
    "2026-03-19_10L_MixedPrecision": Driver(checks=(PLAIN_INT8,)),
    "2026-03-19_MLP3x_QAT_Int6_SlidingWindow": Driver(
        env={"MLP_MULT": "3", "QAT_ENABLED": "1"},
        checks=(PLAIN_INT8, ("final_sliding_window_exact", "sliding", "full-last")),
    ),
    "2026-03-19_MixedQuant_Int6Int8_SlidingWindow": Driver(
        env={"MLP_MULT": "3"},
        checks=(PLAIN_INT6, ("final_sliding_window_eval_exact", "sliding", "full-last")),
    ),
    "2026-03-19_Seq2048_FP16Emb_TunedLR": Driver(
        env={"MLP_HIDDEN": "126"},
        checks=(PLAIN_INT8,),
        notes="its sliding plan (0, L-S, L, L+S, ...) is not one of golf's plans",
    ),
    "2026-03-19_SlidingWindowEval": Driver(
        env={"NUM_LOOPS": "1", "LORA_RANK": "0", "QAT": "0"}, checks=(SLIDING_AS_INT8,)
    ),
    "2026-03-19_SlidingWindow_FP16Emb_10L_MuonWD_OvertoneInit": Driver(
        checks=(("final_int8_zlib_roundtrip_exact", "sliding", "full"),)
    ),
    "2026-03-19_TrainingOptSeq4096": Driver(checks=(PLAIN_INT8,)),
    "2026-03-19_WarmdownQuantization": Driver(
        checks=(PLAIN_INT8, ("final_sliding_window_exact", "sliding", "full"))
    ),
    "2026-03-19_smeargate_orthoinit_muonwd": Driver(
        script="train_gpt_v5.py",
        checks=(PLAIN_INT6, ("final_sliding_window_eval_exact", "sliding", "full-last")),
    ),
    "2026-03-20_10L_Int5MLP_MuonWD04_SWA50": Driver(
        checks=(("final_int8_zlib_roundtrip_exact", "sliding", "legacy-stride"),)
    ),
    "2026-03-20_Int6_MLP3x_SmearGate_BigramHash_MuonWD_SWA": Driver(checks=(SLIDING_AS_INT8,)),
    "2026-03-20_11L_EfficientPartialXSA_FA3_SWA120": Driver(
        checks=(PLAIN_INT6, ("final_int6_sliding_window_exact", "sliding", "legacy"))
    ),
    "2026-03-20_11L_XSA4_EMA_Int6_MLP3x_WD04_1.1271": Driver(
        env={"EMA_ENABLED": "1"},
        checks=(PLAIN_INT6, ("final_int6_sliding_window_exact", "sliding", "legacy")),
    ),
    "2026-03-21_11L_XSA4_EMA_PartialRoPE_LateQAT_1.1248": Driver(
        env={"EMA_ENABLED": "1", "ROPE_DIMS": "16", "LN_SCALE": "1", "LATE_QAT": "1"},
        checks=(PLAIN_INT6, ("final_int6_sliding_window_exact", "sliding", "legacy")),
        notes="README: partial RoPE 16/64, LN scale, XSA on the last 4 (env, not defaults)",
    ),
    "2026-03-22_11L_EMA_GPTQ-lite_warmdown3500_QAT015_1.1233": Driver(
        checks=(PLAIN_INT6, ("final_int6_sliding_window_exact", "sliding", "legacy"))
    ),
}


def driver(folder: str) -> Driver:
    return DRIVERS.get(folder, Driver())
