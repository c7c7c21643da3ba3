"""The numeric checks of a review: size, claims and time, from the logs and the claims.

Which log line backs a claim: for each claimed seed, the non-diagnostic score line of
that seed's logs closest to the claimed per-seed val_bpb (any kind: records report
sliding, TTT or roundtrip numbers); without a per-seed claim, the seed's last headline.

Tolerances come from the claims' own rounding: a number stated with d decimals matches
a logged value within half a unit of its last digit (0.5·10⁻ᵈ). A claimed mean or std
matches when it is, within its half unit, the mean (std) of the logged per-seed values
or of the stated per-seed values (when every seed states one and each matched its log:
submissions average their rounded per-seed numbers).
"""

from __future__ import annotations

import math

from golf.record import LogRun, Record, ScoreLine
from golf.review.findings import LIMIT_BYTES, LIMIT_SECONDS, Finding, Review, SeedRow
from golf.spec.stats import mean_std


def train_tolerance_s(step_avg_ms: float | None) -> float:
    """How far past 600 s a run may log its train time: the scripts stop at the first
    step that ends past the cap, so the last step overshoots by up to a step (two
    average steps, for step-time jitter); 1 s when the log states no step time."""
    return 2 * step_avg_ms / 1000 if step_avg_ms else 1.0


def half_unit(x: float) -> float:
    """Half a unit in the last decimal `repr(x)` shows (1.08301 → 5e-6)."""
    text = repr(float(x)).lower()
    if "e" in text:
        mant, exp = text.split("e")
        digits = len(mant.split(".")[1]) if "." in mant else 0
        return 0.5 * 10.0 ** (int(exp) - digits)
    digits = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0**-digits


def _ev(run: LogRun, line: int | None, text: str) -> str:
    return f"{run.name}:{line}: {text}" if line else f"{run.name}: {text}"


def seed_rows(rec: Record, review: Review) -> dict[str, tuple[LogRun, ScoreLine | None]]:
    """Fill `review.seeds` (one row per claimed seed, or per log without claims) and
    return seed → (its matched run, its matched score line)."""
    sub = rec.submission
    seeds = list(sub.seeds) if sub else []
    if not seeds:
        seeds = list(dict.fromkeys(str(r.seed) if r.seed is not None else r.name for r in rec.logs))
    matched: dict[str, tuple[LogRun, ScoreLine | None]] = {}
    for seed in seeds:
        claim = sub.seed_claim(seed) if sub else None
        runs = rec.runs(seed) or [r for r in rec.logs if r.name == seed]
        row = SeedRow(seed=seed, claimed_bpb=claim.val_bpb if claim else None)
        best: tuple[LogRun, ScoreLine] | None = None
        if claim is not None and claim.val_bpb is not None:
            for run in runs:
                for s in run.scores:
                    if s.diagnostic:
                        continue
                    if best is None or abs(s.val_bpb - claim.val_bpb) < abs(
                        best[1].val_bpb - claim.val_bpb
                    ):
                        best = (run, s)
        else:
            for run in runs:
                if run.headline is not None:
                    best = (run, run.headline)
        run = best[0] if best else (runs[-1] if runs else None)
        if run is not None:
            score = best[1] if best else run.headline
            matched[seed] = (run, score)
            row.log = run.name
            if score is not None:
                row.logged_bpb, row.logged_loss, row.kind = (
                    score.val_bpb,
                    score.val_loss,
                    score.kind,
                )
            row.model_bytes = run.artifact.bytes if run.artifact else None
            row.code_bytes = run.code.bytes if run.code else None
            if run.total is not None:
                row.total_bytes = run.total.bytes
            elif row.model_bytes is not None and row.code_bytes is not None:
                row.total_bytes = row.model_bytes + row.code_bytes
            row.train_s = run.train_time_ms / 1000 if run.train_time_ms is not None else None
            if run.total_eval_s is not None:
                row.eval_s = run.total_eval_s
            elif score is not None and score.eval_time_ms is not None:
                row.eval_s = score.eval_time_ms / 1000
            elif score is not None and score is run.headline:
                row.eval_s = run.eval_s
            elif score is not None:
                twins = [s for s in run.scores if s.kind == score.kind.removesuffix("_exact")]
                if twins and twins[-1].eval_time_ms is not None:
                    row.eval_s = twins[-1].eval_time_ms / 1000
        review.seeds.append(row)
    return matched


def check_size(
    rec: Record, review: Review, matched: dict[str, tuple[LogRun, ScoreLine | None]]
) -> None:
    sub, src = rec.submission, rec.source
    log_totals: list[tuple[int, LogRun]] = []
    for seed, (run, _) in matched.items():
        if run.total is None and run.artifact is None:  # an eval-only log: another run's sizes
            run = next((r for r in rec.runs(seed) if r.total or r.artifact), run)
        total = run.total
        if total is not None:
            log_totals.append((total.bytes, run))
            if total.bytes > LIMIT_BYTES:
                review.add(
                    Finding(
                        "size.over_budget_log",
                        "size",
                        "fail",
                        f"seed {seed}: its log totals {total.bytes:,} bytes, over {LIMIT_BYTES:,}",
                        [_ev(run, total.line, total.text)],
                    )
                )
        elif run.artifact is not None and src is not None:
            t = run.artifact.bytes + src.submitted_bytes
            log_totals.append((t, run))
            if t > LIMIT_BYTES:
                review.add(
                    Finding(
                        "size.over_budget_log",
                        "size",
                        "fail",
                        f"seed {seed}: model {run.artifact.bytes:,} + code {src.submitted_bytes:,}"
                        f" = {t:,} bytes, over {LIMIT_BYTES:,}",
                        [_ev(run, run.artifact.line, run.artifact.text)],
                    )
                )
        claim = sub.seed_claim(seed) if sub else None
        if claim is not None and claim.bytes is not None:
            ev = [f"{sub.name}: seed_results[{seed}].{claim.bytes_key} = {claim.bytes}"]  # type: ignore[union-attr]
            if claim.bytes > LIMIT_BYTES:
                review.add(
                    Finding(
                        "size.over_budget_claim",
                        "size",
                        "fail",
                        f"seed {seed}: claims {claim.bytes:,} bytes, over {LIMIT_BYTES:,}",
                        ev,
                    )
                )
            model = run.artifact.bytes if run.artifact else None
            if total is not None and claim.bytes != total.bytes and claim.bytes == model:
                review.add(
                    Finding(
                        "size.claim_is_model_only",
                        "size",
                        "fail" if total.bytes > LIMIT_BYTES else "info",
                        f"seed {seed}: the claimed {claim.bytes_key} {claim.bytes:,} is the model "
                        f"alone; with the code the log totals {total.bytes:,}",
                        ev + [_ev(run, total.line, total.text)],
                    )
                )
            elif total is not None and claim.bytes not in (total.bytes, model):
                review.add(
                    Finding(
                        "size.claim_differs",
                        "size",
                        "warn",
                        f"seed {seed}: claims {claim.bytes:,} bytes, its log {total.bytes:,}",
                        ev + [_ev(run, total.line, total.text)],
                    )
                )
    if sub is not None and sub.bytes_total is not None:
        key = sub.key_of.get("bytes_total", "bytes_total")
        ev = [f"{sub.name}: {key} = {sub.bytes_total}"]
        if sub.bytes_total > LIMIT_BYTES:
            review.add(
                Finding(
                    "size.over_budget_claim",
                    "size",
                    "fail",
                    f"claims {sub.bytes_total:,} bytes, over {LIMIT_BYTES:,}",
                    ev,
                )
            )
        if log_totals:
            worst, run = max(log_totals, key=lambda t: t[0])
            if worst > LIMIT_BYTES >= sub.bytes_total:
                review.add(
                    Finding(
                        "size.claim_disagrees_with_logs",
                        "size",
                        "fail",
                        f"claims {sub.bytes_total:,} bytes (under the limit) but the logs total up "
                        f"to {worst:,} (over it)",
                        ev
                        + [
                            _ev(
                                run,
                                run.total.line if run.total else None,
                                run.total.text if run.total else f"{worst} bytes",
                            )
                        ],
                    )
                )
            elif sub.bytes_total not in {t for t, _ in log_totals} and sub.bytes_total < worst:
                mean = sum(t for t, _ in log_totals) / len(log_totals)
                is_mean = abs(mean - sub.bytes_total) <= 1
                review.add(
                    Finding(
                        "size.claim_is_mean" if is_mean else "size.claim_below_logs",
                        "size",
                        "info" if is_mean else "warn",
                        f"claims {sub.bytes_total:,} bytes"
                        + (" (the mean over seeds)" if is_mean else "")
                        + f", less than the largest logged total {worst:,}",
                        ev,
                    )
                )
    if src is not None and src.kind == "stub":
        review.add(
            Finding(
                "code.stub",
                "size",
                "warn",
                f"{src.path.name} is a {src.submitted_bytes:,}-byte stub that runs "
                f"{src.code_name} ({src.target_bytes:,} bytes): the rules count the file as "
                f"submitted, which leaves out the code it loads",
                [f"{src.path.name}:1: {src.path.read_text(errors='replace').strip()[:120]}"],
            )
        )
    if src is not None:
        logged = sorted({r.code.bytes for r, _ in matched.values() if r.code is not None})
        if logged and any(b != src.submitted_bytes for b in logged):
            review.add(
                Finding(
                    "code.logged_size_differs",
                    "size",
                    "info",
                    f"the logs count {', '.join(f'{b:,}' for b in logged)} code bytes; "
                    f"{src.path.name} as submitted is {src.submitted_bytes:,}",
                )
            )
    if not log_totals and (sub is None or sub.bytes_total is None):
        review.add(
            Finding("size.unknown", "size", "warn", "no size in the logs nor in submission.json")
        )
    if not review.of("size") or all(f.severity == "info" for f in review.of("size")):
        review.add(
            Finding(
                "size.ok",
                "size",
                "pass",
                f"every logged and claimed total is at most {LIMIT_BYTES:,} bytes",
            )
        )


def check_claims(
    rec: Record, review: Review, matched: dict[str, tuple[LogRun, ScoreLine | None]]
) -> None:
    sub = rec.submission
    if sub is None:
        review.add(Finding("claims.no_submission", "claims", "fail", "no readable submission.json"))
        return
    review.claimed_bpb, review.claimed_loss, review.claimed_std = (
        sub.val_bpb,
        sub.val_loss,
        sub.val_bpb_std,
    )
    review.unknown_fields = dict(sub.unknown)
    values: list[float] = []
    losses: list[float] = []
    for row in review.seeds:
        run_score = matched.get(row.seed)
        if run_score is None:
            review.add(
                Finding(
                    "claims.seed_without_log",
                    "claims",
                    "warn",
                    f"seed {row.seed}: claimed, but no log of it",
                )
            )
            continue
        run, score = run_score
        if score is None:
            review.add(
                Finding(
                    "claims.seed_without_score",
                    "claims",
                    "warn",
                    f"seed {row.seed}: {run.name} has no score line",
                )
            )
            continue
        values.append(score.val_bpb)
        losses.append(score.val_loss)
        if row.claimed_bpb is not None:
            tol = half_unit(row.claimed_bpb)
            diff = abs(score.val_bpb - row.claimed_bpb)
            if diff > tol:
                review.add(
                    Finding(
                        "claims.seed_mismatch",
                        "claims",
                        "fail",
                        f"seed {row.seed}: claims val_bpb {row.claimed_bpb}, the closest logged "
                        f"score is {score.val_bpb} ({score.kind}), off by {diff:.2e} > {tol:.0e}",
                        [_ev(run, score.line, score.text)],
                    )
                )
    n = len(values)
    # the stated per-seed values, when every claimed seed states one that matched its log:
    # a claimed mean/std may have been computed from those rounded values
    stated = [r.claimed_bpb for r in review.seeds if r.claimed_bpb is not None]
    stated_ok = len(stated) == len(review.seeds) == len(values) and not any(
        f.code == "claims.seed_mismatch" for f in review.findings
    )
    missing = [r.seed for r in review.seeds if r.seed not in matched]
    if sub.val_bpb is not None and n and missing:
        review.add(
            Finding(
                "claims.mean_unverifiable",
                "claims",
                "warn",
                f"claims val_bpb {sub.val_bpb} over {len(review.seeds)} seeds; "
                f"{len(missing)} of them have no log, so the mean cannot be checked",
            )
        )
    elif sub.val_bpb is not None and n:
        mean, std = mean_std(values)
        tol = half_unit(sub.val_bpb)
        key = sub.key_of.get("val_bpb", "val_bpb")
        if stated_ok and abs(mean - sub.val_bpb) > tol:
            smean, _ = mean_std(stated)  # type: ignore[arg-type]
            if abs(smean - sub.val_bpb) <= tol:
                mean = smean  # the mean of the stated (rounded) per-seed values
        single = _one_run(rec, sub.val_bpb, tol) if not sub.per_seed else None
        if abs(mean - sub.val_bpb) > tol and single is not None and n > 1:
            run, score = single
            review.add(
                Finding(
                    "claims.headline_is_one_run",
                    "claims",
                    "warn",
                    f"claims {key} {sub.val_bpb}: the score of one run ({run.name}), not the "
                    f"mean of the {n} logged seeds ({mean:.8f}); no per-seed claims",
                    [_ev(run, score.line, score.text)],
                )
            )
            losses = [score.val_loss]
        elif abs(mean - sub.val_bpb) > tol:
            review.add(
                Finding(
                    "claims.mean_mismatch",
                    "claims",
                    "fail",
                    f"claims {key} {sub.val_bpb}, the mean of the {n} logged seeds is {mean:.8f} "
                    f"(off by {abs(mean - sub.val_bpb):.2e} > {tol:.0e})",
                )
            )
        else:
            review.add(
                Finding(
                    "claims.mean_ok",
                    "claims",
                    "pass",
                    f"{key} {sub.val_bpb} = mean of {n} logged seeds {mean:.8f} (±{tol:.0e})",
                )
            )
        if sub.val_bpb_std is not None and std is not None:
            stol = half_unit(sub.val_bpb_std)
            pop = std * math.sqrt((n - 1) / n)
            stated_std = mean_std(stated)[1] if stated_ok and len(stated) > 1 else None  # type: ignore[arg-type]
            if abs(std - sub.val_bpb_std) <= stol or (
                stated_std is not None and abs(stated_std - sub.val_bpb_std) <= stol
            ):
                pass
            elif abs(pop - sub.val_bpb_std) <= stol:
                review.add(
                    Finding(
                        "claims.std_population",
                        "claims",
                        "info",
                        f"val_bpb_std {sub.val_bpb_std} is the population std "
                        f"(ddof 0, {pop:.2e}); the sample std is {std:.2e}",
                    )
                )
            else:
                review.add(
                    Finding(
                        "claims.std_mismatch",
                        "claims",
                        "warn",
                        f"claims val_bpb_std {sub.val_bpb_std}, the logged seeds' "
                        f"sample std is {std:.2e}",
                    )
                )
    if sub.val_loss is not None and losses:
        mloss = math.fsum(losses) / len(losses)
        tol = half_unit(sub.val_loss)
        if abs(mloss - sub.val_loss) > tol:
            mbpb = math.fsum(values) / len(values)
            if abs(mbpb - sub.val_loss) <= 2 * tol:  # a mean written truncated, too
                review.add(
                    Finding(
                        "claims.loss_is_bpb",
                        "claims",
                        "fail",
                        f"claims val_loss {sub.val_loss}, which is the mean val_bpb "
                        f"({mbpb:.6f}); the mean logged val_loss is {mloss:.6f} nats",
                    )
                )
            else:
                review.add(
                    Finding(
                        "claims.loss_mismatch",
                        "claims",
                        "warn",
                        f"claims val_loss {sub.val_loss}, the mean logged val_loss is {mloss:.8f}",
                    )
                )
    if sub.val_bpb is None:
        review.add(
            Finding(
                "claims.no_bpb",
                "claims",
                "warn",
                "submission.json states no val_bpb (nor mean_val_bpb)",
            )
        )
    if n < 3:
        review.add(
            Finding(
                "claims.seed_count",
                "claims",
                "warn",
                f"{n} seed{'s' * (n != 1)} with logs: significance at p < 0.01 needs several "
                "runs (the records use 3)",
            )
        )
    for seed in {str(r.seed) for r in rec.logs if r.seed is not None} - {
        r.seed for r in review.seeds
    }:
        review.add(
            Finding(
                "claims.unclaimed_log",
                "claims",
                "info",
                f"seed {seed} has a log but is not among the claimed seeds",
            )
        )
    multi = [s.seed for s in review.seeds if len(rec.runs(s.seed)) > 1]
    if multi:
        review.add(
            Finding(
                "claims.several_runs",
                "claims",
                "info",
                f"seeds with several logs (the closest score is used): {', '.join(multi)}",
            )
        )
    for run in rec.logs:
        for n_line, text in run.unparsed[:5]:
            review.add(
                Finding(
                    "logs.unparsed",
                    "claims",
                    "info",
                    "unparsed result line",
                    [_ev(run, n_line, text)],
                )
            )


def _one_run(rec: Record, bpb: float, tol: float) -> tuple[LogRun, ScoreLine] | None:
    """The last non-diagnostic score line of any log equal to `bpb` within `tol`."""
    found = None
    for run in rec.logs:
        for score in run.scores:
            if not score.diagnostic and abs(score.val_bpb - bpb) <= tol:
                found = (run, score)
    return found


def check_time(
    rec: Record, review: Review, matched: dict[str, tuple[LogRun, ScoreLine | None]]
) -> None:
    judged = {id(run) for run, _ in matched.values()}
    for row in review.seeds:
        run_score = matched.get(row.seed)
        if run_score is None:
            continue
        run = run_score[0]
        if row.train_s is not None and row.train_s > LIMIT_SECONDS:
            over = row.train_s - LIMIT_SECONDS
            tol = train_tolerance_s(run.step_avg_ms)
            ok = over <= tol
            review.add(
                Finding(
                    "time.train_cap_overshoot" if ok else "time.train_over",
                    "time",
                    "warn" if ok else "fail",
                    f"seed {row.seed}: trained {row.train_s:.3f} s, {over * 1000:.0f} ms over "
                    + (
                        f"{LIMIT_SECONDS:.0f} s (within {tol * 1000:.0f} ms: the last step, which "
                        "crossed the cap)"
                        if ok
                        else f"{LIMIT_SECONDS:.0f} s (more than the "
                        f"{tol * 1000:.0f} ms a last step explains)"
                    ),
                    [_ev(run, run.train_time_line, f"train_time {run.train_time_ms:.0f}ms")],
                )
            )
        if row.eval_s is not None and row.eval_s > LIMIT_SECONDS:
            review.add(
                Finding(
                    "time.eval_over",
                    "time",
                    "fail",
                    f"seed {row.seed}: evaluation took {row.eval_s:.1f} s, over "
                    f"{LIMIT_SECONDS:.0f} s",
                    [_ev(run, run.total_eval_line, "eval time")],
                )
            )
        if row.train_s is None:
            review.add(
                Finding(
                    "time.train_unknown",
                    "time",
                    "info",
                    f"seed {row.seed}: {run.name} logs no train_time",
                )
            )
        if row.eval_s is None:
            review.add(
                Finding(
                    "time.eval_unknown",
                    "time",
                    "info",
                    f"seed {row.seed}: {run.name} logs no eval time",
                )
            )
    for run in rec.logs:
        if (
            id(run) not in judged
            and run.train_time_ms
            and run.train_time_ms > 1000 * LIMIT_SECONDS + 1000
        ):
            review.add(
                Finding(
                    "time.unclaimed_run_over",
                    "time",
                    "info",
                    f"{run.name} (not a claimed run) trained {run.train_time_ms / 1000:.0f} s",
                )
            )
    sub = rec.submission
    if sub is not None:
        steps = [r.step_avg_ms for r, _ in matched.values() if r.step_avg_ms]
        tol = train_tolerance_s(max(steps) if steps else None)
        for what, value in (("train_time_s", sub.train_time_s), ("eval_time_s", sub.eval_time_s)):
            if value is None or value <= LIMIT_SECONDS:
                continue
            key = sub.key_of.get(what, what)
            if what == "train_time_s" and value - LIMIT_SECONDS <= tol:
                review.add(
                    Finding(
                        "time.claim_cap_overshoot",
                        "time",
                        "warn",
                        f"submission.json {key} = {value} s: the last step past "
                        f"the cap (within {tol * 1000:.0f} ms)",
                    )
                )
            else:
                review.add(
                    Finding(
                        "time.claim_over",
                        "time",
                        "fail",
                        f"submission.json {key} = {value} s, over {LIMIT_SECONDS:.0f} s",
                    )
                )
    if not any(f.severity in ("fail", "warn") for f in review.of("time")):
        known = [r for r in review.seeds if r.train_s is not None or r.eval_s is not None]
        if known:
            review.add(
                Finding(
                    "time.ok",
                    "time",
                    "pass",
                    f"train and eval within {LIMIT_SECONDS:.0f} s for "
                    f"{len(known)} seed{'s' * (len(known) != 1)} with times",
                )
            )


def per_seed_values(review: Review) -> tuple[list[float], list[float]]:
    """The logged (val_loss, val_bpb) of the claimed seeds, as two lists."""
    rows = [r for r in review.seeds if r.logged_bpb is not None and r.logged_loss is not None]
    return [r.logged_loss for r in rows], [r.logged_bpb for r in rows]  # type: ignore[misc]
