"""Leaderboard rows (service/boards.py) from constructed jobs: seed groups rank by their
mean with n and std, partial runs stay off the board unless asked for, then marked."""

import statistics

import pytest

from golf.spec.params import EvalParams
from service.boards import board_rows
from service.store import JobRow

PARAMS = {"seq_len": 256, "stride": 64, "plan": "canonical", "max_windows": None}


def job(
    job_id: str,
    artifact: str,
    val_bpb: float,
    *,
    owner: str = "alice",
    group: str | None = None,
    partial: bool = False,
    finished_at: float = 1.0,
    **params: object,
) -> JobRow:
    report = {
        "protocol": "sliding",
        "val_bpb": val_bpb,
        "val_loss": val_bpb * 0.7,
        "params": PARAMS | params,
        "windows": 8 if partial else 858,
        "windows_total": 858,
        "partial": partial,
        "wall_s": 12.5,
        "projected_8xh100_s": None,
        "engine": {"device_name": "cpu"},
    }
    return JobRow(
        id=job_id, owner=owner, state="succeeded", artifact=artifact, dataset="demo",
        dataset_sha256="d", protocols=("sliding",), params=EvalParams(), plans={},
        priority=0, created_at=0.0, started_at=0.0, finished_at=finished_at, error=None,
        report={
            "reports": [report],
            "artifact": {"total_bytes": 1000, "verdict": "fits", "flags": []},
            "flags": [],
        },
        cost=0.0, group=group,
    )  # fmt: skip


def rows(jobs: list[JobRow], **kw: object) -> list[dict]:
    return board_rows(jobs, lambda j: 0, **kw)


def test_a_partial_run_never_ranks_unmarked() -> None:
    """The issue's case: an 8-window run scored better than the 858-window full run; it
    is off the board by default and, when shown, marked partial."""
    jobs = [job("j_full", "a1", 2.30), job("j_part", "a2", 2.10, partial=True, max_windows=8)]
    (only,) = rows(jobs)
    assert only["job"] == "j_full" and only["partial"] is False
    shown = rows(jobs, include_partial=True)
    assert [(r["job"], r["partial"]) for r in shown] == [("j_part", True), ("j_full", False)]


def test_a_max_windows_covering_the_whole_val_ranks() -> None:
    (row,) = rows([job("j_whole", "a1", 2.2, max_windows=999_999_999)])
    assert row["partial"] is False and row["seeds"] == 1 and row["val_bpb_std"] is None


def test_seed_groups_rank_by_mean_with_n_and_std() -> None:
    values = {"recipe": [2.10, 2.16, 2.12], "other": [2.12, 2.14]}
    jobs = [
        job(f"j_{name}{i}", f"{name}-seed{i}", v, group=name, finished_at=float(i))
        for name, vs in values.items()
        for i, v in enumerate(vs)
    ]
    jobs.append(job("j_single", "lone", 2.125))
    board = rows(jobs)
    assert [r["group"] or r["artifact"] for r in board] == ["lone", "recipe", "other"]
    by = {r["group"]: r for r in board}
    for name, vs in values.items():
        assert by[name]["seeds"] == len(vs)
        assert by[name]["val_bpb"] == pytest.approx(statistics.fmean(vs), abs=1e-15)
        assert by[name]["val_bpb_std"] == pytest.approx(statistics.stdev(vs), rel=1e-12)
        assert by[name]["val_bpbs"] == vs and by[name]["owner"] == "alice"
    assert by["recipe"]["params"] == {"seq_len": 256, "stride": 64, "precision": "auto"}
    assert by["recipe"]["eval_s"] == 12.5 and by["recipe"]["job"] == "j_recipe2"


def test_an_artifact_counts_once_and_parameters_never_share_a_mean() -> None:
    jobs = [
        job("j_1", "a1", 2.2, group="g"),
        job("j_2", "a1", 2.2, group="g", finished_at=2.0),  # the same seed re-evaluated
        job("j_3", "a2", 2.4, group="g"),
        job("j_4", "a3", 2.0, group="g", stride=128),  # other params: its own row
        job("j_5", "a4", 2.0, group="g", owner="bob"),  # another owner's group
    ]
    board = rows(jobs)
    assert [(r["owner"], r["params"]["stride"], r["seeds"]) for r in board] == [
        ("alice", 128, 1), ("bob", 64, 1), ("alice", 64, 2),
    ]  # fmt: skip
    assert board[2]["jobs"] == ["j_3", "j_2"] and board[2]["val_bpb"] == pytest.approx(2.3)
