"""What the client CLI shows: the live job display, report tables (rich and markdown)
and the side-by-side comparison of two reports. Pure functions of the API's JSON
(docs/API.md), so each can be tested without a server; no torch. The report rows
and markdown are golf.spec.tables', shared with `golf eval`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from golf.spec.tables import (
    CI_NOTE,
    REPORT_COLUMNS,
    Report,
    artifact_words,
    hardware_line,
    md_table,
    params_line,
    report_markdown,
    report_rows,
    scored_alike,
)

__all__ = ["REPORT_COLUMNS", "params_line", "report_markdown", "report_rows", "scored_alike"]

# One character per shard; queued is hollow so the strip reads without colour too.
SHARD_CELLS = {
    "queued": ("▯", "grey50"),
    "running": ("▮", "yellow"),
    "done": ("▮", "green"),
    "failed": ("▮", "red"),
    "cancelled": ("▮", "magenta"),
}
JOB_STYLES = {"queued": "grey50", "running": "yellow", "succeeded": "green", "failed": "red"}
RATE_WINDOW_S = 30.0  # windows/s is measured over the last half minute of progress
STRIP_CELLS = 48  # more shards than this share cells, so a protocol stays on one line
MIN_STRIP = 8  # the narrowest shard strip, on a narrow console
BAR, MIN_BAR = 32, 10  # the job line's progress bar: its width, and the least it shrinks to
LOG_EVERY_S = 30.0  # off a terminal, one progress line this often (a CI log sees life)
ETA_BLEND = 0.5  # how far the shown ETA moves towards each new server estimate


def cell_state(states: list[str]) -> str:
    """The state one strip cell shows for the shards it covers: trouble first, then
    done or queued only if all are, else running."""
    for state in ("failed", "cancelled"):
        if state in states:
            return state
    if all(s == "done" for s in states) or all(s == "queued" for s in states):
        return states[0]
    return "running"


def shard_strip(states: list[str], cells: int = STRIP_CELLS) -> tuple[Text, int]:
    """One coloured character per shard, or per `per` shards when there are many."""
    per = max(1, -(-len(states) // cells))
    strip = Text()
    for i in range(0, len(states), per):
        strip.append(*SHARD_CELLS.get(cell_state(states[i : i + per]), ("?", "bold red")))
    return strip, per


def clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class LiveJob:
    """A live view of one job on `console`: fed job objects by `update`, redrawn 5×/s.

    On a terminal it redraws in place; elsewhere (a pipe, a CI log) it prints the job
    line every LOG_EVERY_S and the whole last frame when the view stops.
    """

    def __init__(self, job_id: str, console: Console, now: Callable[[], float] = time.monotonic):
        self.job_id = job_id
        self.job: dict[str, Any] | None = None
        self.final: dict[str, float] = {}  # protocol → val_bpb of the report, once there
        self._now = now
        self._samples: deque[tuple[float, int]] = deque()
        self._eta: tuple[float, float] | None = None  # (server's eta_s, when received)
        self._logged = now()
        self._console = console
        self._live = Live(console=console, get_renderable=self.render, refresh_per_second=5)

    def __enter__(self) -> LiveJob:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()
        if not self._console.is_terminal:
            self._console.line()  # rich ends a terminal's last frame, not a file's

    def update(self, job: dict[str, Any]) -> None:
        now = self._now()
        self._samples.append((now, (job.get("progress") or {}).get("windows_done", 0)))
        while len(self._samples) > 2 and self._samples[1][0] < now - RATE_WINDOW_S:
            self._samples.popleft()
        eta = job.get("eta_s")
        if eta is not None and self._eta is not None:
            # The server's ETA jumps as shards land in chunks: move halfway to each new one
            # from the current countdown, so the shown ETA runs down smoothly.
            counted = max(0.0, self._eta[0] - (now - self._eta[1]))
            eta = counted + ETA_BLEND * (eta - counted)
        self._eta = (eta, now) if eta is not None else None
        self.job = job
        if not self._console.is_terminal and now - self._logged >= LOG_EVERY_S:
            self._logged = now
            self._console.print(self._head(job))

    def finish(self, job: dict[str, Any], result: dict[str, Any]) -> None:
        """The last frame: the final job object and, if it succeeded, the reported val_bpb."""
        self.final = {r["protocol"]: r["val_bpb"] for r in result.get("reports") or []}
        self.update(job)

    def rate(self) -> float | None:
        """Windows scored per second over the recent samples; None before there are two,
        or while none landed in them (a batch still running is no rate of 0)."""
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 - t0 >= 0.2 and d1 > d0 else None

    def eta(self, done: int, total: int) -> float | None:
        if self.job is None or self.job["state"] not in ("queued", "running"):
            return None
        if self._eta is not None:  # the server's, counted down since it arrived
            return max(0.0, self._eta[0] - (self._now() - self._eta[1]))
        rate = self.rate()
        return (total - done) / rate if rate else None

    def render(self) -> RenderableType:
        if self.job is None:
            return Text(f"{self.job_id} …")
        return Group(self._head(self.job), self._protocols(self.job))

    def _head(self, job: dict[str, Any]) -> RenderableType:
        """The job line: state, bar, percent, windows, windows/s, ETA; on a console too
        narrow for all of it (80 columns), the figures go on a second line."""
        progress = job.get("progress") or {}
        done, total = progress.get("windows_done", 0), progress.get("windows_total", 0)
        rate, eta = self.rate(), self.eta(done, total)
        name = Text(self.job_id, style="bold")
        state = Text(job["state"], style=JOB_STYLES.get(job["state"], "magenta"))
        pct = f"{100 * done / total:3.0f}%" if total else "  —"
        figures = [
            f"{done:,}/{total:,} windows",
            f"{rate:,.1f} windows/s" if rate is not None else "— windows/s",
            f"eta {clock(eta)}" if eta is not None else "eta —",
        ]
        width = self._console.width
        room = width - len(name) - len(state) - len(pct) - sum(map(len, figures)) - 6
        if room >= MIN_BAR:
            return _line(name, state, _bar(done, total, room), pct, *figures)
        room = width - len(name) - len(state) - len(pct) - 3
        return Group(_line(name, state, _bar(done, total, room), pct), _line(*figures))

    def _protocols(self, job: dict[str, Any]) -> Table:
        """One line per protocol: running (or final) val_bpb and its shard strip, the strip
        as wide as the console leaves room for (at most STRIP_CELLS)."""
        grid = Table.grid(padding=(0, 2))
        for _ in range(3):
            grid.add_column(no_wrap=True)
        grid.add_column()  # the counts wrap rather than squeeze the numbers
        shards = sorted(job.get("shards") or [], key=lambda s: (s["protocol"], s["shard"]))
        running = job.get("running") or {}
        lines = []
        for protocol in job.get("protocols") or sorted({s["protocol"] for s in shards}):
            bpb = self.final.get(protocol, (running.get(protocol) or {}).get("val_bpb"))
            mine = [s for s in shards if s["protocol"] == protocol]
            counts = [f"{sum(s['state'] == 'done' for s in mine)}/{len(mine)} done"]
            counts += [
                f"{n} {state}"
                for state in ("running", "failed", "cancelled")
                if (n := sum(s["state"] == state for s in mine))
            ]
            lines.append((protocol, bpb, [s["state"] for s in mine], counts))
        names = max((len(line[0]) for line in lines), default=0)
        counts_w = max((len(", ".join(line[3])) for line in lines), default=0)
        per_cell = len(", 99 shards/cell")
        room = self._console.width - names - len("val_bpb 0.0000") - counts_w - per_cell - 6
        cells = max(MIN_STRIP, min(STRIP_CELLS, room))
        for protocol, bpb, states, counts in lines:
            strip, per = shard_strip(states, cells)
            if per > 1:
                counts.append(f"{per} shards/cell")
            grid.add_row(
                protocol,
                f"val_bpb {bpb:.4f}" if bpb is not None else "val_bpb —",
                strip,
                ", ".join(counts),
            )
        return grid


def _line(*cells: RenderableType) -> Table:
    """Cells side by side, one space apart, none of them wrapped."""
    grid = Table.grid(padding=(0, 1))
    for _ in cells:
        grid.add_column(no_wrap=True)
    grid.add_row(*cells)
    return grid


def _bar(done: int, total: int, room: int) -> ProgressBar:
    return ProgressBar(total=total or None, completed=done, width=max(MIN_BAR, min(BAR, room)))


# ---- reports ---------------------------------------------------------------------------


def report_table(report: Report, dataset: str | None = None) -> Table:
    """The protocol table for a terminal; provenance below it."""
    art = report["artifact"]
    env = report.get("environment") or {}
    caption = [_dataset(report, dataset), params_line(report)]
    if report.get("digest"):
        caption.append(f"digest {report['digest'][:16]}…")
    if env:
        caption.append(f"{env.get('device')} · torch {env.get('torch')}")
    caption.append(hardware_line(report))
    _, notes = scored_alike(report)
    text = Text("  ·  ".join(caption) + "\n" + CI_NOTE)
    for note in notes:  # loud: a partial run must not pass for a full one
        text.append("\n" + note, style="bold yellow")
    table = Table(
        title=f"job {report['job']}: artifact {art['id'][:12]} {artifact_words(art)}",
        title_justify="left",
        caption=text,
        caption_justify="left",
    )
    for name in (*REPORT_COLUMNS, "flags"):
        table.add_column(name, justify="left" if name in ("protocol", "flags") else "right")
    for row in report_rows(report):
        table.add_row(*row)
    return table


def _dataset(report: Report, name: str | None) -> str:
    sha = report["reports"][0].get("dataset_sha256", "")[:12]
    return f"dataset {name} ({sha})" if name else f"dataset {sha}"


# ---- comparison ------------------------------------------------------------------------


def differences(a: Report, b: Report) -> list[str]:
    """What differs between the two runs: artifact, dataset, params, code, device."""
    found = []
    art_a, art_b = a["artifact"]["id"], b["artifact"]["id"]
    if art_a != art_b:
        found.append(f"artifact {art_a[:12]} → {art_b[:12]}")
    ds_a, ds_b = (x["reports"][0].get("dataset_sha256", "") for x in (a, b))
    if ds_a != ds_b:
        found.append(f"dataset {ds_a[:12]} → {ds_b[:12]}")
    params_a = {r["protocol"]: r["params"] for r in a["reports"]}
    params_b = {r["protocol"]: r["params"] for r in b["reports"]}
    shared = [p for p in params_a if p in params_b]
    changed: dict[str, dict[str, tuple[Any, Any]]] = {}
    for p in shared:
        for key in dict.fromkeys([*params_a[p], *params_b[p]]):
            va, vb = params_a[p].get(key), params_b[p].get(key)
            if va != vb:
                changed.setdefault(key, {})[p] = (va, vb)
    for key, by_protocol in changed.items():
        pairs = set(by_protocol.values())
        if len(pairs) == 1:
            va, vb = pairs.pop()
            where = "" if len(by_protocol) == len(shared) else f" ({', '.join(by_protocol)})"
            found.append(f"{key} {va} → {vb}{where}")
        else:
            found += [f"{key} {va} → {vb} ({p})" for p, (va, vb) in by_protocol.items()]
    only_a = [p for p in params_a if p not in params_b]
    only_b = [p for p in params_b if p not in params_a]
    if only_a or only_b:
        found.append(f"protocols {', '.join(params_a) or '—'} → {', '.join(params_b) or '—'}")
    env_a, env_b = a.get("environment") or {}, b.get("environment") or {}
    for key in ("golf_eval", "torch", "device"):
        if env_a.get(key) and env_b.get(key) and env_a[key] != env_b[key]:
            found.append(f"{key} {env_a[key]} → {env_b[key]}")
    return found


def _bpb(v: float | None) -> str:
    return "—" if v is None else f"{v:.6f}"


def _signed(v: float | None) -> str:
    return "—" if v is None else f"{v:+.6f}"


def _ci(ci: list[float] | None) -> str:
    return "—" if ci is None else f"[{ci[0]:+.6f}, {ci[1]:+.6f}]"


def _significant(row: dict[str, Any]) -> str:
    if row.get("significant") is None:
        return "—" if row.get("delta_bpb") is None else "unpaired"
    return "yes *" if row["significant"] else "no"


def _differs_line(found: list[str], same_artifact: bool) -> str:
    if not found:
        return "nothing differs: same artifact, dataset, params and code"
    return ("same artifact; " if same_artifact else "") + "differs: " + "; ".join(found)


COMPARE_COLUMNS = ("protocol", "side", "val_bpb", "Δ vs A", "95% CI", "significant")


def compare_head(doc: dict[str, Any]) -> list[str]:
    """Who each side is, then what differs between each later side and the first."""
    sides = doc["sides"]
    lines = [
        f"{s['name']} = {s['label']}: artifact {s['artifact'][:12]} "
        f"{artifact_words({'total_bytes': s.get('total_bytes'), 'verdict': s.get('verdict')})}"
        for s in sides
    ]
    first = sides[0]
    for s in sides[1:]:
        line = _differs_line(doc["differs"][s["name"]], s["artifact"] == first["artifact"])
        lines.append(line if len(sides) == 2 else f"{s['name']} vs {first['name']}: {line}")
    return lines


def compare_rows(doc: dict[str, Any]) -> list[list[str]]:
    """Per protocol: the first side's val_bpb, then each later side's with Δ, CI, verdict."""
    first = doc["sides"][0]
    rows: list[list[str]] = []
    for row in doc["rows"]:
        if not rows or rows[-1][0] != row["protocol"]:  # rows come grouped by protocol
            rows.append([row["protocol"], first["name"], _bpb(row["val_bpb_a"]), "", "", ""])
        rows.append(
            [
                row["protocol"],
                row["side"],
                _bpb(row["val_bpb_b"]),
                _signed(row["delta_bpb"]),
                _ci(row["ci95"]),
                _significant(row),
            ]
        )
    return rows


def compare_notes(doc: dict[str, Any]) -> list[str]:
    """Why a Δ has no CI (plans differ, no windows), and how the CI was made."""
    notes = [
        f"PARTIAL RUN: {s['name']} scored only the first windows of "
        f"{', '.join(s['partial'])}; not val_bpb of the whole validation set"
        for s in doc["sides"]
        if s.get("partial")
    ]
    notes += [
        f"{r['protocol']} {r['side']}: unpaired, no CI: {r['unpaired_reason']}"
        for r in doc["rows"]
        if r["delta_bpb"] is not None and r["unpaired_reason"]
    ]
    if any(r["paired"] for r in doc["rows"]):
        notes.append(
            f"95% CI: paired bootstrap over windows, byte-weighted, {doc['resamples']:,} "
            f"resamples, seed {doc['seed']}; * = the CI excludes 0"
        )
    return notes


def compare_table(doc: dict[str, Any]) -> RenderableType:
    """Who the sides are and what differs, then the protocol table and its notes."""
    table = Table()
    for name in COMPARE_COLUMNS:
        table.add_column(name, justify="left" if name in ("protocol", "side") else "right")
    for row in compare_rows(doc):
        table.add_row(*row)
    notes = compare_notes(doc)
    if notes:
        table.caption, table.caption_justify = "\n".join(notes), "left"
    return Group(*(Text(line) for line in compare_head(doc)), table)


def compare_markdown(doc: dict[str, Any]) -> str:
    head = [f"{line}  " for line in compare_head(doc)]
    align = ["left", "left", "right", "right", "right", "right"]
    table = md_table(list(COMPARE_COLUMNS), align, compare_rows(doc))
    notes = [f"> {n}  " for n in compare_notes(doc)]
    return "\n".join([*head, "", *table, *([""] if notes else []), *notes]) + "\n"


# ---- seed groups -----------------------------------------------------------------------

GROUP_COLUMNS = ("group", "protocol", "seeds", "val_bpb mean ± std")
TEST_COLUMNS = ("protocol", "group", "Δ mean", "Welch t", "dof", "p", "pooled Δ", "95% CI", "sig.")


def _mean_std(stats: dict[str, Any]) -> str:
    std = stats["std"]
    return f"{stats['mean']:.6f} ± {std:.6f}" if std is not None else f"{stats['mean']:.6f}"


def group_rows(doc: dict[str, Any]) -> list[list[str]]:
    return [
        [g["name"], p, str(stats["seeds"]), _mean_std(stats)]
        for g in doc["groups"]
        for p, stats in g["protocols"].items()
    ]


def group_test_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in doc["tests"]:
        w, b = t["welch"] or {}, t["bootstrap"] or {}
        rows.append(
            [
                t["protocol"],
                f"{t['group']} − {t['vs']}",
                _signed(t["delta_bpb"]),
                f"{w['t']:.3f}" if w else "—",
                f"{w['dof']:.1f}" if w else "—",
                f"{w['p']:.3g}" if w else "—",
                _signed(b.get("delta_bpb")),
                _ci(b.get("ci95")),
                ("yes *" if b["significant"] else "no") + ("" if b["paired"] else " (unpaired)")
                if b
                else "—",
            ]
        )
    return rows


def group_notes(doc: dict[str, Any]) -> list[str]:
    notes = [f"{t['protocol']} {t['group']}: {t['note']}" for t in doc["tests"] if t.get("note")]
    if doc["tests"]:
        notes.append(
            "std: sample (ddof 1) over seeds; Welch: two-sided over the seeds' val_bpb; "
            f"pooled: within-run bootstrap of all seeds' windows, {doc['resamples']:,} "
            f"resamples, seed {doc['seed']}; * = the CI excludes 0. The within-run CI "
            "ignores seed variance: never a record verdict (golf compare --rule record)"
        )
    return notes


RECORD_COLUMNS = (
    "protocol", "group", "improvement (nats)", "95% CI", "t", "dof", "p", "verdict"
)  # fmt: skip


def record_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in doc.get("record") or []:
        ci = r["ci95"]
        rows.append(
            [
                r["protocol"],
                f"{r['group']} vs {r['vs']}",
                f"{r['improvement_nats']:+.6f}",
                f"[{ci[0]:+.6f}, {ci[1]:+.6f}]" if ci else "—",
                f"{r['t']:.3f}" if r["t"] is not None else "—",
                f"{r['dof']:.1f}" if r["dof"] is not None else "—",
                f"{r['p']:.3g}" if r["p"] is not None else "—",
                r["verdict"].upper() if r["verdict"] == "record" else r["verdict"],
            ]
        )
    return rows


def record_note(doc: dict[str, Any]) -> str:
    r = (doc.get("record") or [{}])[0]
    return (
        f"record rule: improvement = mean val_loss of {r.get('vs', 'A')} − of the group, in "
        f"nats; one-sided Welch over seeds, H0: improvement ≤ {r.get('margin_nats')} nats; "
        f"a record when p < {r.get('alpha')} (needs ≥ 2 seeds a group)"
    )


def groups_table(doc: dict[str, Any]) -> RenderableType:
    summary = Table(title="seed groups", title_justify="left")
    for name in GROUP_COLUMNS:
        summary.add_column(name, justify="right" if name == "seeds" else "left")
    for row in group_rows(doc):
        summary.add_row(*row)
    members = [Text(f"{g['name']}: {', '.join(g['members'])}") for g in doc["groups"]]
    if not doc["tests"]:
        return Group(*members, summary)
    tests = Table(title=f"against {doc['groups'][0]['name']}", title_justify="left")
    for name in TEST_COLUMNS:
        tests.add_column(name, justify="left" if name in ("protocol", "group") else "right")
    for row in group_test_rows(doc):
        tests.add_row(*row)
    tests.caption, tests.caption_justify = "\n".join(group_notes(doc)), "left"
    if not doc.get("record"):
        return Group(*members, summary, tests)
    record = Table(title="record rule (between seeds)", title_justify="left")
    for name in RECORD_COLUMNS:
        record.add_column(name, justify="left" if name in ("protocol", "group") else "right")
    for row in record_rows(doc):
        record.add_row(*row)
    record.caption, record.caption_justify = record_note(doc), "left"
    return Group(*members, summary, tests, record)


def groups_markdown(doc: dict[str, Any]) -> str:
    lines = [f"**{g['name']}**: {', '.join(g['members'])}  " for g in doc["groups"]]
    align = ["left", "left", "right", "left"]
    lines += ["", *md_table(list(GROUP_COLUMNS), align, group_rows(doc))]
    if doc["tests"]:
        align = ["left", "left", *["right"] * (len(TEST_COLUMNS) - 2)]
        lines += ["", *md_table(list(TEST_COLUMNS), align, group_test_rows(doc)), ""]
        lines += [f"> {n}  " for n in group_notes(doc)]
    if doc.get("record"):
        align = ["left", "left", *["right"] * (len(RECORD_COLUMNS) - 2)]
        lines += ["", *md_table(list(RECORD_COLUMNS), align, record_rows(doc)), ""]
        lines.append(f"> {record_note(doc)}  ")
    return "\n".join(lines) + "\n"


# ---- leaderboard -----------------------------------------------------------------------

LEADERBOARD_COLUMNS = (
    "#", "protocol", "entry", "owner", "n", "val_bpb mean ± std", "val_loss", "params",
    "eval s", "bytes", "code", "verdict", "flags", "job",
)  # fmt: skip
_RIGHT = ("#", "n", "val_loss", "eval s", "bytes", "code")


def sort_leaderboard(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Rows by protocol, then mean val_bpb (or total bytes, val_bpb breaking ties)."""
    if by == "bytes":
        return sorted(rows, key=lambda r: (r["protocol"], r["total_bytes"], r["val_bpb"]))
    return sorted(rows, key=lambda r: (r["protocol"], r["val_bpb"]))


def params_words(params: dict[str, Any]) -> str:
    """`L 2048 · stride 64 · slot 24 steps lr 0.012→0.001 · bf16`: what decides the score."""
    parts = [f"L {params.get('seq_len')}", f"stride {params.get('stride')}"]
    if "slot_steps" in params:
        parts.append(
            f"slot {params['slot_steps']} steps lr {params.get('slot_lr')}→"
            f"{params.get('slot_lr_min')} B {params.get('batch_windows')}"
        )
    parts += [f"{k} {params[k]}" for k in ("plan", "reference") if k in params]
    if params.get("precision") not in (None, "auto"):
        parts.append(params["precision"])
    return " · ".join(parts)


def _score(r: dict[str, Any]) -> str:
    std = r.get("val_bpb_std")
    mark = " PARTIAL" if r.get("partial") else ""
    return (f"{r['val_bpb']:.6f} ± {std:.6f}" if std is not None else f"{r['val_bpb']:.6f}") + mark


def _eval_s(r: dict[str, Any]) -> str:
    if r.get("eval_s") is None:
        return "—"
    projected = r.get("projected_8xh100_s")
    return f"{r['eval_s']:.1f}" + (" (8×H100 > 600 s)" if (projected or 0) > 600 else "")


def leaderboard_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out, rank, last = [], 0, None
    for r in rows:
        rank = rank + 1 if r["protocol"] == last else 1
        last = r["protocol"]
        out.append(
            [
                "—" if r.get("partial") else str(rank),
                r["protocol"],
                r["group"] or r["artifact"][:12],
                r.get("owner") or "—",
                str(r.get("seeds", 1)),
                _score(r),
                f"{r['val_loss']:.6f}",
                params_words(r.get("params") or {}),
                _eval_s(r),
                f"{r['total_bytes']:,}",
                f"{r['code_bytes']:,}" if r["code_bytes"] else "not declared",
                r["verdict"],
                ", ".join(f["code"] for f in r["flags"]),
                r["job"],
            ]
        )
        if r.get("partial"):
            rank -= 1  # a partial run holds no rank
    return out


def leaderboard_notes(doc: dict[str, Any]) -> list[str]:
    notes = [
        "val_bpb: mean over the entry's seeds (its distinct artifacts), ± sample std; "
        "n = 1 is a single run"
    ]
    if any(r.get("partial") for r in doc["rows"]):
        notes.append("PARTIAL: scored only the first windows, not the whole val: unranked (—)")
    return notes


def leaderboard_table(doc: dict[str, Any]) -> Table:
    board = doc.get("board", "mine")
    title = f"leaderboard: {doc['dataset']}" + (" (shared)" if board == "shared" else "")
    table = Table(title=title, title_justify="left")
    for name in LEADERBOARD_COLUMNS:
        table.add_column(name, justify="right" if name in _RIGHT else "left")
    for row in leaderboard_rows(doc["rows"]):
        table.add_row(*row)
    table.caption, table.caption_justify = "\n".join(leaderboard_notes(doc)), "left"
    return table


def leaderboard_markdown(doc: dict[str, Any]) -> str:
    align = ["right" if c in _RIGHT else "left" for c in LEADERBOARD_COLUMNS]
    rows = leaderboard_rows(doc["rows"])
    flags = LEADERBOARD_COLUMNS.index("flags")
    for row in rows:
        row[flags] = ", ".join(f"`{c}`" for c in row[flags].split(", ") if c)
    lines = [f"**leaderboard**: dataset `{doc['dataset']}`", ""]
    notes = [f"> {n}  " for n in leaderboard_notes(doc)]
    table = md_table(list(LEADERBOARD_COLUMNS), align, rows)
    return "\n".join([*lines, *table, "", *notes]) + "\n"
