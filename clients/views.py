"""What the client CLI shows: the live job display, report tables (rich and markdown)
and the side-by-side comparison of two reports. Pure functions of the API's JSON
(docs/API.md), so each can be tested without a server; no torch, no golf."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

Report = dict[str, Any]

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
LOG_EVERY_S = 30.0  # off a terminal, one progress line this often (a CI log sees life)


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
        """Windows scored per second over the recent samples; None before there are two."""
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 - t0 >= 0.2 else None

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

    def _head(self, job: dict[str, Any]) -> Table:
        """The job line: state, bar, percent, windows, windows/s, ETA."""
        progress = job.get("progress") or {}
        done, total = progress.get("windows_done", 0), progress.get("windows_total", 0)
        rate, eta = self.rate(), self.eta(done, total)
        head = Table.grid(padding=(0, 1))
        cells: list[RenderableType] = [
            Text(self.job_id, style="bold"),
            Text(job["state"], style=JOB_STYLES.get(job["state"], "magenta")),
            ProgressBar(total=total or None, completed=done, width=32),
            f"{100 * done / total:3.0f}%" if total else "  —",
            f"{done:,}/{total:,} windows",
            f"{rate:,.1f} windows/s" if rate is not None else "— windows/s",
            f"eta {clock(eta)}" if eta is not None else "eta —",
        ]
        for _ in cells:
            head.add_column(no_wrap=True)
        head.add_row(*cells)
        return head

    def _protocols(self, job: dict[str, Any]) -> Table:
        """One line per protocol: running (or final) val_bpb and its shard strip."""
        grid = Table.grid(padding=(0, 2))
        for _ in range(3):
            grid.add_column(no_wrap=True)
        grid.add_column()  # the counts wrap rather than squeeze the numbers
        shards = sorted(job.get("shards") or [], key=lambda s: (s["protocol"], s["shard"]))
        running = job.get("running") or {}
        for protocol in job.get("protocols") or sorted({s["protocol"] for s in shards}):
            bpb = self.final.get(protocol, (running.get(protocol) or {}).get("val_bpb"))
            mine = [s for s in shards if s["protocol"] == protocol]
            strip, per = shard_strip([s["state"] for s in mine])
            counts = [f"{sum(s['state'] == 'done' for s in mine)}/{len(mine)} done"]
            counts += [
                f"{n} {state}"
                for state in ("running", "failed", "cancelled")
                if (n := sum(s["state"] == state for s in mine))
            ]
            if per > 1:
                counts.append(f"{per} shards/cell")
            grid.add_row(
                protocol,
                f"val_bpb {bpb:.4f}" if bpb is not None else "val_bpb —",
                strip,
                ", ".join(counts),
            )
        return grid


# ---- reports ---------------------------------------------------------------------------

REPORT_COLUMNS = ("protocol", "val_bpb", "Δ bpb", "val_loss", "tokens", "windows", "seconds")


def _flags(report: Report, protocol: str) -> list[str]:
    """Codes of the flags that apply to one protocol: the artifact's and the protocol's own.

    A flag is `{"code", "protocol"}`; `protocol` is null for the artifact's flags.
    """
    flags = report.get("flags") or []
    return [f["code"] for f in flags if f.get("protocol") in (None, protocol)]


def report_rows(report: Report) -> list[list[str]]:
    """REPORT_COLUMNS + flags of each protocol, as strings; Δ is to the first protocol."""
    first = report["reports"][0]["val_bpb"]
    return [
        [
            r["protocol"],
            f"{r['val_bpb']:.6f}",
            f"{r['val_bpb'] - first:+.6f}",
            f"{r['val_loss']:.6f}",
            f"{r['tokens']:,}",
            f"{r['windows']:,}",
            f"{r['elapsed_s']:.2f}",
            ", ".join(_flags(report, r["protocol"])),
        ]
        for r in report["reports"]
    ]


def _same_or_each(values: dict[str, Any]) -> str:
    """`64` when every protocol has the same value, else `sliding 32 / slot 64`."""
    if len(set(values.values())) == 1:
        return str(next(iter(values.values())))
    return " / ".join(f"{p} {v}" for p, v in values.items())


def params_line(report: Report) -> str:
    """seq_len, stride per protocol, SLOT steps (if a SLOT protocol ran), max_windows."""
    params = {r["protocol"]: r["params"] for r in report["reports"]}
    parts = [f"seq_len {_same_or_each({p: v['seq_len'] for p, v in params.items()})}"]
    parts.append("stride " + " / ".join(f"{p} {v['stride']}" for p, v in params.items()))
    slot = {p: v["slot_steps"] for p, v in params.items() if p.startswith("slot")}
    if slot:
        parts.append(f"slot steps {_same_or_each(slot)}")
    capped = {p: v.get("max_windows") for p, v in params.items()}
    if any(v is not None for v in capped.values()):
        parts.append(f"max_windows {_same_or_each(capped)}")
    return ", ".join(parts)


def report_table(report: Report, dataset: str | None = None) -> Table:
    """The protocol table for a terminal; provenance below it."""
    art = report["artifact"]
    env = report.get("environment") or {}
    caption = [_dataset(report, dataset), params_line(report)]
    if report.get("digest"):
        caption.append(f"digest {report['digest'][:16]}…")
    if env:
        caption.append(f"{env.get('device')} · torch {env.get('torch')}")
    table = Table(
        title=f"job {report['job']}: artifact {art['id'][:12]} "
        f"({art['total_bytes']:,} bytes, {art['verdict']})",
        title_justify="left",
        caption="  ·  ".join(caption),
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


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    rule = "|" + "|".join("---:" if a == "right" else "---" for a in align) + "|"
    return [_md_row(header), rule, *(_md_row(r) for r in rows)]


def report_markdown(report: Report, dataset: str | None = None) -> str:
    """A GitHub-flavoured markdown table and one provenance line, to paste into a PR."""
    art = report["artifact"]
    header = [*REPORT_COLUMNS, "flags"]
    align = ["left", *["right"] * (len(REPORT_COLUMNS) - 1), "left"]
    rows = [
        [*r[:-1], ", ".join(f"`{f}`" for f in _flags(report, r[0]))] for r in report_rows(report)
    ]
    ds = report["reports"][0].get("dataset_sha256", "")[:12]
    line = [
        f"job `{report['job']}`",
        f"artifact `{art['id'][:12]}` ({art['total_bytes']:,} bytes, {art['verdict']})",
        f"dataset `{dataset}` (`{ds}`)" if dataset else f"dataset `{ds}`",
        params_line(report),
    ]
    if report.get("digest"):
        line.append(f"digest `{report['digest'][:16]}`")
    return "\n".join([*_md_table(header, align, rows), "", " · ".join(line)]) + "\n"


# ---- comparison ------------------------------------------------------------------------


def compare_rows(a: Report, b: Report) -> list[tuple[str, float | None, float | None]]:
    """(protocol, val_bpb A, val_bpb B) for A's protocols, then those only B ran."""
    bpb_a = {r["protocol"]: r["val_bpb"] for r in a["reports"]}
    bpb_b = {r["protocol"]: r["val_bpb"] for r in b["reports"]}
    order = [*bpb_a, *(p for p in bpb_b if p not in bpb_a)]
    return [(p, bpb_a.get(p), bpb_b.get(p)) for p in order]


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


def _side(label: str, report: Report) -> str:
    art = report["artifact"]
    return f"{label}: artifact {art['id'][:12]} ({art['total_bytes']:,} bytes, {art['verdict']})"


def _bpb(v: float | None) -> str:
    return "—" if v is None else f"{v:.6f}"


def _delta(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{b - a:+.6f}"


def compare_doc(label_a: str, a: Report, label_b: str, b: Report) -> dict[str, Any]:
    """The comparison as JSON: both sides, what differs, one row per protocol."""
    return {
        "a": {"label": label_a, "job": a.get("job"), "artifact": a["artifact"]["id"]},
        "b": {"label": label_b, "job": b.get("job"), "artifact": b["artifact"]["id"]},
        "differs": differences(a, b),
        "rows": [
            {
                "protocol": p,
                "val_bpb_a": va,
                "val_bpb_b": vb,
                "delta_bpb": None if va is None or vb is None else vb - va,
            }
            for p, va, vb in compare_rows(a, b)
        ],
    }


def _differs_line(a: Report, b: Report) -> str:
    found = differences(a, b)
    if not found:
        return "nothing differs: same artifact, dataset, params and code"
    same = "same artifact; " if a["artifact"]["id"] == b["artifact"]["id"] else ""
    return f"{same}differs: " + "; ".join(found)


COMPARE_COLUMNS = ("protocol", "val_bpb A", "val_bpb B", "Δ (B − A)")


def compare_table(label_a: str, a: Report, label_b: str, b: Report) -> RenderableType:
    """Who A and B are and what differs, then the protocol table."""
    table = Table()
    for name in COMPARE_COLUMNS:
        table.add_column(name, justify="left" if name == "protocol" else "right")
    for p, va, vb in compare_rows(a, b):
        table.add_row(p, _bpb(va), _bpb(vb), _delta(va, vb))
    head = [f"A = {_side(label_a, a)}", f"B = {_side(label_b, b)}", _differs_line(a, b)]
    return Group(*(Text(line) for line in head), table)


def compare_markdown(label_a: str, a: Report, label_b: str, b: Report) -> str:
    rows = [[p, _bpb(va), _bpb(vb), _delta(va, vb)] for p, va, vb in compare_rows(a, b)]
    head = [f"**A** = {_side(label_a, a)}  ", f"**B** = {_side(label_b, b)}  ", _differs_line(a, b)]
    align = ["left", "right", "right", "right"]
    return "\n".join([*head, "", *_md_table(list(COMPARE_COLUMNS), align, rows)]) + "\n"
