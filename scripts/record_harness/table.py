"""Per-record driver table: what differs between records when the harness runs them.

Every record runs its own `main()` (or the entry named here) with a tiny configuration
set through its own environment variables. `TINY_ENV` is the shared base (names the
early board reads; a name a record does not read is ignored by it); an entry adds or
overrides variables, names the vocabulary, the artifact file its code writes and the
printed lines that carry the numbers. A record with no entry runs with the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
    # (printed tag, golf protocol, window plan[, EvalParams fields]): which printed number
    # golf must reproduce, and how (the fields override seq_len / stride and add the rest).
    checks: tuple[tuple, ...] = ()
    notes: str = ""
    byte_sidecar: bool = False  # CaseOps: the val shard's byte sidecar beside it


PLAIN_INT8 = ("final_int8_zlib_roundtrip_exact", "plain", "canonical")
PLAIN_INT6 = ("final_int6_roundtrip_exact", "plain", "canonical")
SLIDING_AS_INT8 = ("final_int8_zlib_roundtrip_exact", "sliding", "legacy")
"""Records whose final "int8_zlib_roundtrip" line carries the sliding number when
EVAL_STRIDE < TRAIN_SEQ_LEN (their code replaces the plain result)."""

LOOPED_ENV = {
    "MODEL_DIM": "64",
    "NUM_HEADS": "2",
    "NUM_KV_HEADS": "1",
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
    (r"pin_memory=True", "pin_memory=False"),
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


LQER_PERGROUP = LQER | {
    "GATED_ATTN_QUANT_GATE": "1",
    "CASEOPS_ENABLED": "1",
    "COMPRESSOR": "pergroup",
    "SPARSE_ATTN_GATE_SCALE": "0.5",
    "MIN_LR": "0.1",
}
"""04-27 9HpStack as its logs run: int8 gate rows, CaseOps (its plain eval counts bytes only
from the sidecar), per-group lrzip streams (`PGRP`)."""

PACKED_PLAIN = (
    "diagnostic quantized",
    "plain",
    "canonical",
    {"seq_len": 4096, "stride": 4096, "doc_bounded": True, "doc_max_len": 128},
)
"""The document-bounded records' `eval_val`: rows of VAL_BATCH_TOKENS / 8 tokens (4,096 at
world size 1, the whole tiny val), attention cut at every BOS and every EVAL_SEQ_LEN (128)
tokens into a document, all targets scored: golf's plain at seq_len 4096, doc-bounded,
doc_max_len 128."""


DENSE_GATE_EDITS = (
    *VARLEN_EDITS,
    (r"1024 <= t\.numel\(\) <= 8192", "16 <= t.numel() <= 8192"),
)
"""04-19/04-22 route `attn_gate_w` to int8 rows only from 1,024 elements (8 heads × 512);
the tiny dense gate (4 × 64) takes that path only with the lower bound scaled."""


def _varlen(edits: tuple[tuple[str, str], ...] = VARLEN_EDITS, **env: str) -> Driver:
    return Driver(
        vocab=512,
        env=VARLEN_ENV | env,
        edits=edits,
        notes="varlen family (golf/models/varlen.py)",
    )


SP4096_ENV = {
    k: v
    for k, v in LOOPED_ENV.items()
    if k not in ("NUM_LOOPS", "LOOP_START", "LOOP_END", "ENABLE_LOOPING_AT")
} | {"NUM_LAYERS": "3", "VE_LAYERS": "1,2"}
"""04-01 (sp4096, value embeddings, gated skips, no recurrence): the seed family's blocks;
tiny as the looped stack, value embeddings on the last two layers."""

RECUR_ENV = SP4096_ENV | {
    "NUM_LAYERS": "4",
    "RECUR_LAYERS": "1,2",
    "RECUR_START_STEP": "5",
    "VE_LAYERS": "2,3",
}
"""04-03/04-04 at four layers, blocks 1-2 repeated (virtual 0,1,2,1,2,3): three encoder
skips for two skip weights, so 04-03's clamped index and 04-04's first-skips-only rule
both differ from the plain stack; 04-04's lanes start at layer 1, so its second skip lands
on the abandoned stream as in the record."""

TERNARY_ENV = {
    "NUM_LAYERS": "5",
    "MODEL_DIM": "48",
    "NUM_HEADS": "2",
    "NUM_KV_HEADS": "1",
    "MLP_MULT": "4",
    "EMBED_DIM": "24",
    "BITNET_GROUP_SIZE": "16",
    "ACTIVATION": "relu2",
    "SOFTCAP_TYPE": "poly",
    "LOGIT_SOFTCAP": "10",
    "ROPE_TYPE": "yarn",
    "ROPE_BASE": "5000",
    "YARN_MAX_LEN": "256",
    "QK_GAIN_INIT": "2.25",
    "TIE_EMBEDDINGS": "1",
    "TIED_EMBED_INIT_STD": "0.5",
    "TIED_EMBED_LR": "0.05",
    "FP_STORAGE": "FP8",
    "TRAINING_DEPTH_RECURRENCE": "0",
    "EVAL_DEPTH_RECURRENCE": "0",
    "MUON_BACKEND_STEPS": "3",
    "ITERATIONS": "30",
    "WARMDOWN_FRACTION": "0.2",
    "VAL_MAX_TOKENS": "0",
    "SLIDING_EVAL": "1",
    "SLIDING_EVAL_STRIDE": "64",
    "EVAL_STRIDE": "64",
    "SLIDING_BATCH_SIZE": "16",
    "TEMP_SCALING": "1",
}
"""03-24's ternary U-Net at five layers (two encoder, three decoder: two skips popped in
reverse, one decoder block without), width 48 in groups of 16 (whole groups per row, as
768/128 in the record), factored embedding 24, YaRN at the record's ratio (128/256 =
1024/2048), FP8 storage, poly softcap 10, temperature fit and stride sliding on. Stride
64 divides 4096 − 128, as 16 divides the full run's N − 1024: the record's
`range(0, N − L, S)` runs one window fewer than golf's `full` plan, which its
`full-strict` plan reproduces."""

TERNARY_EDITS = (
    (r"t\.numel\(\) > 65_536", "t.numel() > 256"),
    (r"self\.weight\.bfloat16\(\)", "self.weight.float()"),
    (r"\.pin_memory\(\)", ""),
    (
        r"val_loss:\{q_val_loss:\.4f\} val_bpb:\{q_val_bpb:\.4f\}",
        "val_loss:{q_val_loss:.8f} val_bpb:{q_val_bpb:.8f}",
    ),
    (
        r"val_loss:\{sw_loss:\.4f\} val_bpb:\{sw_bpb:\.4f\}",
        "val_loss:{sw_loss:.8f} val_bpb:{sw_bpb:.8f}",
    ),
)
"""The ternary threshold (65,536 elements) scaled by (48/768)², so every block matrix and
no control tensor is ternary as at full size; the ternary STE's bf16 weight cast made fp32
(on CPU without autocast an fp32 input meets a bf16 weight; the harness is fp32
throughout); no pinned memory (needs CUDA); the two final lines at 8 decimals."""
PARRES_ENV = {
    "NUM_LAYERS": "5",
    "MODEL_DIM": "64",
    "BIGRAM_DIM": "72",
    "VE_DIM": "16",
    "MLP_MULT": "1",
    "BIGRAM_VOCAB_SIZE": "128",
    "RECUR_LAYERS": "1,2",
    "REPEAT_UNTIE_MLP": "full",
    "REPEAT_UNTIE_MLP_LAYERS": "2",
    "DISABLE_LAYER0_ATTN": "1",
    "PARALLEL_RESIDUAL": "1",
    "PARALLEL_START_LAYER": "3",
    "CANON_AC_LAYERS": "1,3",
    "VE_LAYERS": "5",
    "XSA_LAST_N": "4",
    "ITERATIONS": "30",
    "RECUR_START_STEP": "10",
    "MATRIX_LR": "0.1",
    "MATRIX_LR_EARLY": "0.1",
    "MATRIX_LR_LATE": "0.1",
    "SCALAR_LR": "0.1",
    "TIED_EMBED_LR": "0.1",
    "TIED_EMBED_INIT_STD": "0.1",
    "GPTQ_AR_SELFGEN": "0",
    "GPTQ_CALIB_SAMPLES": "2",
    "N_INT6_LAYERS": "6",
}
"""2026-03-31 at five layers of width 64 (MLP ×1) with every variant of its code on: blocks 1-2
repeated (virtual 0,1,2,1,2,3,4; recurrence switched on at step 10 of 30), the repeat of
layer 2 with its own MLP (repeat_mlp.1; repeat_mlp.0 holds none), layer 0 without
attention, the two lambda-weighted residual lanes from physical layer 3 (virtual 5 and 6,
in the decoder, after the skip), canon taps on physical layers 1 and 3 (so on virtual 1,
3, 5), value embedding on virtual layer 5, XSA on the last four; six of the quantized
matrices int6, the rest int5 (its mixed GPTQ). Width 64 and a 72-wide BigramHash: the
code inits only matrices of 64+ rows and columns orthogonally, and a zero projection
would keep the zero-initialised hash table at zero. Learning rates 0.1 and the EMA decay
edited from 0.997 to 0.9 (its horizon scaled to 30 steps): otherwise the output
projections (zero-initialised) stay under half the int5 step of its quantizer
(scale ≥ 1/15) and quantize to zero, and every block would add nothing. GPTQ calibrates
on training batches: the record's self-generated calibration starts from one-token
sequences, which its canon taps (a 3-token look-back) cannot take, so that path crashes
whenever canon layers are set."""

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
    "2026-03-24_74M_Ternary_UNet_FP8_10L_8192BPE_YaRN_NeoMuon": Driver(
        vocab=512,
        env=TERNARY_ENV,
        script="train_gpt_cuda_ternary.py",
        artifact="final_model.ternary.ptz",
        edits=TERNARY_EDITS,
        checks=(("final_sliding", "sliding", "full-strict"),),
        notes="ternary family (golf/models/ternary.py); its plain line adds the z-loss",
    ),
    "2026-03-25_ValCalib_GPTQ_XSA_BigramHash3072": Driver(
        checks=(PLAIN_INT6, ("final_int6_sliding_window_exact", "sliding", "legacy")),
        notes="banks unbanked before GPTQ (AR self-generated calibration, 64 x TRAIN_SEQ_LEN)",
    ),
    "2026-03-29_Loader_FullGPTQ_XSA11_BigramHash2816": Driver(
        env={"USE_GPTQ": "1", "GPTQ_CALIB_SAMPLES": "2", "GPTQ_RESERVE_MS": "0"},
        checks=(PLAIN_INT6, ("final_int6_sliding_window_exact", "sliding", "legacy")),
        notes="README: full GPTQ on; NEGATIVE_SLOPE left at its default 0.5",
    ),
    "2026-03-31_ParallelResiduals_MiniDepthRecurrence": Driver(
        env=PARRES_ENV,
        edits=(*MINIFIED_SCALE_EDITS, (r"ema_decay=\.997", "ema_decay=.9")),
        checks=(PLAIN_INT6, ("final_int6_sliding_window_exact", "sliding", "legacy")),
        notes="parres family (golf/models/parres.py)",
    ),
    "2026-04-01_Vocab4096_MLPMult4_WD085": Driver(
        vocab=512, env=SP4096_ENV, edits=MINIFIED_SCALE_EDITS, notes="seed family (gpt-sp1024)"
    ),
    "2026-04-03_MuonEqR_DepthRecurrence_WD090_AllInt6": Driver(
        vocab=512, env=RECUR_ENV, edits=MINIFIED_SCALE_EDITS, notes="recur family"
    ),
    "2026-04-04_SP4096_DepthRecurrence_ParallelResid_MuonEqR": Driver(
        vocab=512,
        env=RECUR_ENV | {"PARALLEL_START_LAYER": "1"},
        edits=MINIFIED_SCALE_EDITS,
        notes="recur family",
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
    "2026-04-18_PR1626_CaseOps_Taper": _varlen(EMBED_BITS="7"),
    "2026-04-19_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT": _varlen(
        DENSE_GATE_EDITS, **GATED, GATED_ATTN_ENABLED="1"
    ),
    "2026-04-22_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT_MLPClip12": _varlen(
        DENSE_GATE_EDITS, **GATED, GATED_ATTN_ENABLED="1"
    ),
    "2026-04-23_SP8192_CaseOps_SparseGate_QuantGate_Loop45_PhasedTTT_PolarNS_MinLR_FusedCE": (
        _varlen(**GATED, SPARSE_ATTN_GATE_ENABLED="1")
    ),
    "2026-04-27_SmearGateBOSFix_PR1787Base_LQERAsym_PhasedTTT": _varlen(**LQER),
    "2026-04-29_SmearGateBOSFix_3Seed_1.06141": _varlen(**LQER),
    "2026-04-27_SP8192_LQER_SparseGate_BOSSmearFix_9HpStack_1.0611": replace(
        _varlen(**LQER_PERGROUP),
        byte_sidecar=True,
        checks=(PACKED_PLAIN,),
        notes="varlen family (golf/models/varlen.py); PGRP + lrzip; CaseOps byte sidecar",
    ),
}
