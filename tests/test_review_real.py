"""`golf review` over the official board (only where a checkout exists; CI has none: the
run is documented in docs/REVIEW.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from golf.review import board_rows

BOARD = Path("/work/pg/official/records/track_10min_16mb")
pytestmark = [
    pytest.mark.skipif(not BOARD.is_dir(), reason="no official records checkout"),
    pytest.mark.slow,  # 46 folders: about a minute on two busy cores
]

SCORE_FIRST_TTT = [
    "2026-03-23_LeakyReLU_LegalTTT_ParallelMuon",
    "2026-04-06_SP8192_QK5_LegalTTT_1.0828",
    "2026-04-08_SP8192_ParallelResid_ScoreFirstTTT",
    "2026-04-09_A2_Muon097_3Seed",
    "2026-04-09_SP8192_3LayerRecur_ParResid_QK525_LegalTTT",
    "2026-04-10_VarLenAttn",
    "2026-04-13_VarLenAttn_PhasingTTT2000",
    "2026-04-14_MultiPhaseGlobalSGD_PhasedTTT",
    "2026-04-16_SmearGate_AttentionOutputGate_ScoreFirstTTT",
    "2026-04-18_PR1626_CaseOps_Taper",
    "2026-04-19_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT",
    "2026-04-22_SP8192_CaseOps_GatedAttn_QuantGate_Loop45_PhasedTTT_MLPClip12",
    "2026-04-23_SP8192_CaseOps_SparseGate_QuantGate_Loop45_PhasedTTT_PolarNS_MinLR_FusedCE",
    "2026-04-27_SP8192_LQER_SparseGate_BOSSmearFix_9HpStack_1.0611",
    "2026-04-27_SmearGateBOSFix_PR1787Base_LQERAsym_PhasedTTT",
    "2026-04-29_SmearGateBOSFix_3Seed_1.06141",
]


@pytest.fixture(scope="module")
def board():  # type: ignore[no-untyped-def]
    return {r.folder: r for r in board_rows(BOARD)}


def test_the_size_disagreement_is_found(board) -> None:  # type: ignore[no-untyped-def]
    r = board["2026-04-06_SP8192_HessianSDClip_ProgressiveRecurrence"]
    (f,) = [f for f in r.findings if f.code == "size.claim_disagrees_with_logs"]
    assert f.message == (
        "claims 15,978,121 bytes (under the limit) but the logs total up to 16,059,704 (over it)"
    )
    assert r.verdict_of("size") == "fail"


def test_no_legality_flag_on_accepted_score_first_ttt(board) -> None:  # type: ignore[no-untyped-def]
    assert len(board) == 46
    for name in SCORE_FIRST_TTT:
        assert board[name].verdict_of("legality") in ("ok", "warn"), name
    assert not [
        (r.folder, f.code) for r in board.values() for f in r.findings if f.severity == "flag"
    ]
