"""What `golf review` runs (golf/cli.py registers it): one folder or the whole board."""

from __future__ import annotations

from pathlib import Path

from golf.record import parse_override, read_record
from golf.review import board_rows, review_record
from golf.review.render import board_json, board_markdown, render_json, render_markdown
from golf.spec.errors import ConfigError

FORMATS = ("md", "json")


def review_text(
    folder: Path | None,
    board: Path | None = None,
    fmt: str = "md",
    artifact: Path | None = None,
    data: Path | None = None,
    tokenizer: Path | None = None,
    device: str = "auto",
    against: Path | None = None,
    against_bpb: float | None = None,
    against_loss: float | None = None,
    overrides: list[str] | None = None,
    max_windows: int | None = None,
) -> str:
    """The review of `folder` (or the board table of `board`) as markdown or JSON text."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if (folder is None) == (board is None):
        raise ConfigError("give a record FOLDER or --board RECORDS_DIR (one of the two)")
    baselines = [x for x in (against, against_bpb, against_loss) if x is not None]
    if len(baselines) > 1:
        raise ConfigError("give at most one of --against, --against-bpb, --against-loss")
    if board is not None:
        if artifact is not None or baselines:
            raise ConfigError(
                "--board reviews each folder against the previous row; "
                "--artifact and --against* apply to one FOLDER"
            )
        rows = board_rows(board)
        return board_json(rows) if fmt == "json" else board_markdown(rows)
    assert folder is not None
    sets = dict(parse_override(item) for item in overrides or [])
    rec = read_record(folder)
    base = read_record(against) if against is not None else None
    review = review_record(rec, base, against_bpb, against_loss, sets)
    if artifact is not None:
        if data is None:
            raise ConfigError("--artifact needs --data (the dataset folder it is scored on)")
        from golf.review.dynamic import dynamic_findings  # the engine: torch, only now

        hp = rec.hparams(sets).values if rec.source is not None else {}
        for finding in dynamic_findings(
            review, hp, artifact, data, tokenizer, device, max_windows=max_windows
        ):
            review.add(finding)
    return render_json(review) if fmt == "json" else render_markdown(review)
