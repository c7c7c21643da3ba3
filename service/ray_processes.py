"""Ray processes an embedded service leaves behind when it is killed, found and ended.

`ray.init()` starts GCS, raylet and their agents as children of the service. A clean
stop shuts them down; a `kill -9` of `golf serve` leaves some running (the dashboard
and runtime-env agents, each holding ports and memory). So the service records the
processes of its Ray session in STATE_DIR/ray-processes.json (pid and kernel start time
of each descendant, refreshed while it runs), and the next start ends those still
alive, if the service that recorded them is gone. A pid is only signalled if its start
time is the recorded one, so a recycled pid is never touched. Linux (/proc) only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)

RECORD = "ray-processes.json"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[19])


def descendants(root: int) -> list[int]:
    """Every live process below `root` (from /proc parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def record(state_dir: Path) -> None:
    """Write this process and its descendants (with start times) to the record."""
    me = os.getpid()
    procs = {pid: start_time(pid) for pid in descendants(me)}
    doc = {
        "service": [me, start_time(me)],
        "processes": [[pid, t] for pid, t in procs.items() if t is not None],
    }
    path = state_dir / RECORD
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def clean_up(state_dir: Path, grace_s: float = 3.0) -> list[int]:
    """End what a killed previous service left; returns the pids signalled."""
    path = state_dir / RECORD
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    service_pid, service_start = doc["service"]
    if service_pid != os.getpid() and start_time(service_pid) == service_start:
        return []  # the service that recorded them still runs: they are its own
    left = [pid for pid, t in doc["processes"] if start_time(pid) == t and pid != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        alive = left
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [pid for pid, t in doc["processes"] if pid in left and start_time(pid) == t]
        if not alive:
            break
    if left:
        log.warning(
            "ended %d Ray processes a previous service (pid %d) left running: %s",
            len(left),
            service_pid,
            ", ".join(map(str, left)),
        )
    path.unlink(missing_ok=True)
    return left
