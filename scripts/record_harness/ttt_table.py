"""Drivers that run a record's own score-first TTT eval (HARNESS_TTT=1 selects them;
HARNESS_TTT=warm-a the warm-start-A variants, HARNESS_TTT=warm-a-lora those with no phase).

Each is the family driver of table.py plus the record's TTT switched on at the tiny shape,
and one declared source edit: the torch seed is set at the entry of the record's TTT eval
function, so that the LoRA `A` draws (from the global RNG, after training and the compile
warm-up consumed it) start from a known state — golf's `ttt_mode=record` with that seed
reproduces them. Fixtures go to tests/fixtures/ttt/ (the families' pre-TTT fixtures of
the same folders stay as they are).
"""

from __future__ import annotations

from dataclasses import replace

import table

LORA_ENV = {
    "TTT_ENABLED": "1",
    "TTT_LORA_RANK": "4",
    "TTT_LORA_LR": "0.01",
    "TTT_CHUNK_SIZE": "16",
    "TTT_BATCH_SIZE": "4",
    "TTT_EVAL_SEQ_LEN": "128",
}
"""Rank 4, chunks of 16 targets, 4 documents per batch: the 19 documents of the tiny val
shard make 5 batches, the last one smaller (a fresh adapter instead of the reset one), and
a learning rate large enough that the adapted score moves well past the tolerance."""

PHASED_ENV = LORA_ENV | {
    "PHASED_TTT_ENABLED": "1",
    "PHASED_TTT_PREFIX_DOCS": "9",
    "PHASED_TTT_NUM_PHASES": "2",
    "GLOBAL_TTT_LR": "0.01",
    "GLOBAL_TTT_CHUNK_TOKENS": "512",
    "GLOBAL_TTT_BATCH_SEQS": "2",
}
"""Two phases at 4 and 9 documents: with batches of 4 the first boundary fires after the
first batch, the second overshoots (12 scored when 9 are needed)."""


def _seed(function: str) -> tuple[str, str]:
    """Source edit: torch.manual_seed(0) as the first statement of `function`."""
    pattern = rf"(def {function}\(h, base_model, device, val_data, forward_ttt_train\):\n)"
    return (pattern, r"\1    torch.manual_seed(0)\n")


TTT_DRIVERS: dict[str, table.Driver] = {}
for folder, env, function in (
    ("2026-04-10_VarLenAttn", LORA_ENV, "eval_val_ttt_lora"),
    ("2026-04-16_SmearGate_AttentionOutputGate_ScoreFirstTTT", LORA_ENV, "eval_val_ttt_lora"),
    ("2026-04-14_MultiPhaseGlobalSGD_PhasedTTT", PHASED_ENV, "eval_val_ttt_phased"),
    # golf redraws A at every reset (TTT_WARM_START_A=0), and alpha/rank·lr = 0.01 as
    # above: at the record's alpha 144 (x36) and lr 0.01 the tiny run is chaotic
    (
        "2026-04-27_SP8192_LQER_SparseGate_BOSSmearFix_9HpStack_1.0611",
        PHASED_ENV | {"TTT_WARM_START_A": "0", "TTT_LORA_ALPHA": "8", "TTT_LORA_LR": "0.005"},
        "eval_val_ttt_phased",
    ),
):
    base = table.DRIVERS[folder]
    TTT_DRIVERS[folder] = replace(
        base,
        env=base.env | env,
        edits=(*base.edits, _seed(function)),
        notes=f"{base.notes}; golden fixture of score-first TTT ({function})",
    )


WARM_A = "2026-04-27_SP8192_LQER_SparseGate_BOSSmearFix_9HpStack_1.0611"
"""The record's default TTT_WARM_START_A=1 (reset keeps the trained A): the same tiny run as
its TTT driver above, alpha 8 and lr 0.005 kept for the same reason (alpha 144 is chaotic)."""

WARM_A_DRIVERS: dict[str, table.Driver] = {
    WARM_A: replace(
        TTT_DRIVERS[WARM_A],
        env=TTT_DRIVERS[WARM_A].env | {"TTT_WARM_START_A": "1"},
        notes=f"{TTT_DRIVERS[WARM_A].notes}, TTT_WARM_START_A=1",
    )
}

WARM_A_LORA_DRIVERS: dict[str, table.Driver] = {
    WARM_A: replace(
        WARM_A_DRIVERS[WARM_A],
        env=WARM_A_DRIVERS[WARM_A].env | {"PHASED_TTT_PREFIX_DOCS": "0"},
        notes=f"{WARM_A_DRIVERS[WARM_A].notes}, no phase (golf's ttt-lora)",
    )
}
"""No prefix: the phased eval without a phase is per-document LoRA, A carried through
every full batch (golf's ttt-lora in record mode)."""
