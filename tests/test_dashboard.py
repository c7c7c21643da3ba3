"""The dashboard in a real browser: Debian's chromium driven by Playwright, against the real
service under uvicorn on the session's local Ray. A small sliding + slot job is followed in
the page to its report; what the page shows must be what the API returns.

Also: a running job opened late shows its whole val_bpb chart (kept by the service),
at 800 px without horizontal scroll, and is cancelled from the page; the leaderboard
page sorts and filters GET /v1/leaderboard. Screenshots for the README land in docs/img/.
Chromium must be installed (`make test` installs it); without it this test fails rather
than skips, so CI really runs it.
"""

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from service_support import KEYS, PARAMS, auth, make_artifact, make_settings, serve_http

CHROMIUM = Path(os.environ.get("GOLF_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "img"
PROTOCOLS = ["sliding", "slot"]
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def server(ray_cluster, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_http(make_settings(tmp_path_factory.mktemp("dashboard"), demo_data)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make test` or apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context: empty sessionStorage, so no key yet."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def enter_key(page: Page, key: str) -> None:
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")


def test_without_a_key_the_page_asks_for_one(server: str, page: Page) -> None:
    page.goto(server + "/")
    expect(page.locator("#no-key")).to_contain_text("API key needed")
    assert page.locator("#jobs").count() == 0 and page.locator("#summary").count() == 0
    enter_key(page, "not-a-key")
    expect(page.locator("#no-key")).to_contain_text("refused that key")
    assert page.evaluate("sessionStorage.length") == 0


def test_dashboard_follows_a_job_to_its_report(
    server: str, page: Page, demo_data: Path, tmp_path: Path
) -> None:
    api = httpx.Client(base_url=server, headers=auth("alice"), timeout=30)
    artifact = make_artifact(demo_data, tmp_path / "tiny.golf", seed=11)
    uploaded = api.post("/v1/artifacts", files={"file": artifact.read_bytes()}).json()
    body = {"artifact": uploaded["id"], "dataset": "demo", "protocols": PROTOCOLS}
    job = api.post("/v1/jobs", json=body | {"params": PARAMS}).json()

    started = time.monotonic()
    page.goto(server + "/")
    enter_key(page, KEYS["alice"])
    page.click(f'tr[data-job="{job["id"]}"] a')  # the key survives the navigation
    page.wait_for_selector("#report-table")
    page.wait_for_selector("#histogram svg")
    in_page_s = time.monotonic() - started

    final = api.get(f"/v1/jobs/{job['id']}").json()
    report = api.get(f"/v1/jobs/{job['id']}/report").json()
    assert final["state"] == "succeeded"
    expect(page.locator("#summary .badge")).to_have_text("succeeded")

    # Grid: one cell per shard, each as the API has it.
    cells = page.eval_on_selector_all(
        "#grid .cell",
        """cells => cells.map(c => ({
            protocol: c.dataset.protocol, shard: Number(c.dataset.shard),
            state: c.dataset.state, pct: c.querySelector('.cell-pct').textContent,
            worker: c.querySelector('.cell-worker').textContent,
            attempts: c.querySelector('.cell-attempts').textContent}))""",
    )
    assert len(cells) == len(final["shards"]) > len(PROTOCOLS)
    assert cells == [
        {
            "protocol": s["protocol"],
            "shard": s["shard"],
            "state": s["state"],
            "pct": f"{100 * s['windows_done'] // s['windows_total']}%",
            "worker": s["worker"],
            "attempts": f"×{s['attempts']}",
        }
        for s in final["shards"]
    ]

    # Chart: an SVG path per protocol.
    paths = page.eval_on_selector_all(
        "#chart svg path.series", "ps => ps.map(p => [p.dataset.protocol, p.getAttribute('d')])"
    )
    assert [p for p, _ in paths] == PROTOCOLS
    assert all(d.startswith("M") for _, d in paths)

    # Report: the table, flags, environment and digest of GET /report.
    rows = page.eval_on_selector_all(
        "#report-table tbody tr",
        """rows => rows.map(r => [r.dataset.protocol,
            r.querySelector('.val-bpb').textContent, r.querySelector('.delta').textContent])""",
    )
    assert rows == [  # a partial run (max_windows): no Δ
        [r["protocol"], f"{r['val_bpb']:.6f}", "—"] for r in report["table"]
    ]
    assert [r["delta_bpb"] for r in report["table"]] == [None, None]
    expect(page.locator("#partial-note")).to_contain_text("Partial run: scored only the first")
    expect(page.locator("#digest")).to_have_text(report["digest"])
    expect(page.locator("#environment")).to_contain_text(report["environment"]["device"])
    raised = page.eval_on_selector_all(
        "#compliance li",
        "items => Object.fromEntries(items.map(i => [i.dataset.flag, i.dataset.raised]))",
    )
    artifact_flags = [f["code"] for f in report["artifact"]["flags"]]
    assert raised == {
        "ttt_on_val": str("ttt_on_val" in artifact_flags).lower(),
        "gptq_on_val": str("gptq_calibrated_on_val" in artifact_flags).lower(),
        "non_causal": str(
            {"code": "non_causal_protocol", "protocol": "slot"} in report["flags"]
        ).lower(),
        "size_budget": str(report["artifact"]["verdict"] != "fits").lower(),
    }
    assert raised["non_causal"] == "true"

    # SLOT gain histogram: every sliding window matched by its slot twin.
    windows = api.get(f"/v1/jobs/{job['id']}/windows").json()
    sliding = [w for w in windows["windows"] if w["protocol"] == "sliding"]
    counts = page.eval_on_selector_all(
        "#histogram rect.bar", "bars => bars.map(b => Number(b.dataset.count))"
    )
    assert sum(counts) == len(sliding) > 0
    expect(page.locator("#histogram-note")).to_contain_text(f"over {len(sliding)} windows")

    # Download of the per-window records, fetched with the key.
    with page.expect_download() as download:
        page.click("#download-windows")
    lines = Path(download.value.path()).read_text().splitlines()
    assert [json.loads(line) for line in lines] == windows["windows"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-job.png", full_page=True)

    # Jobs page: the row with the artifact's size and verdict, the state and running val_bpb.
    page.click("text=← All jobs")
    row = page.locator(f'tr[data-job="{job["id"]}"]')
    expect(row.locator(".artifact")).to_contain_text(report["artifact"]["verdict"])
    expect(row.locator(".artifact code")).to_have_text(uploaded["id"][:12])
    expect(row).to_have_attribute("data-state", "succeeded")
    for protocol, running in final["running"].items():
        bpb = f"{running['val_bpb']:.6f}"
        expect(row.locator(f'.running[data-protocol="{protocol}"]')).to_contain_text(bpb)
    page.screenshot(path=SCREENSHOTS / "dashboard-jobs.png")
    assert in_page_s < 60, f"the job took {in_page_s:.1f} s in the page"


NARROW = {"width": 800, "height": 900}


def _points(d: str) -> int:
    """How many points an SVG path `M… L… L…` joins."""
    return d.count("M") + d.count("L")


def _no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_a_running_job_opened_late_shows_its_whole_chart_at_800_px_and_can_be_cancelled(
    server: str, browser: Browser, demo_data: Path, tmp_path: Path
) -> None:
    api = httpx.Client(base_url=server, headers=auth("bob"), timeout=30)
    artifact = make_artifact(demo_data, tmp_path / "late.golf", seed=12)
    uploaded = api.post(
        "/v1/artifacts", files={"file": ("late-run.golf", artifact.read_bytes())}
    ).json()
    params = {k: v for k, v in PARAMS.items() if k != "max_windows"}  # long: runs a while
    body = {"artifact": uploaded["id"], "dataset": "demo", "protocols": PROTOCOLS}
    job = api.post("/v1/jobs", json=body | {"params": params}).json()
    series_url = f"/v1/jobs/{job['id']}/series"
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while max(len(s) for s in api.get(series_url).json()["series"].values()) < 4:
        assert time.monotonic() < deadline, "the job stored no series"
        time.sleep(0.2)
    before = api.get(series_url).json()["series"]  # what ran before the page was opened

    context = browser.new_context(viewport=NARROW)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(server + "/")
    enter_key(page, KEYS["bob"])
    row = page.locator(f'tr[data-job="{job["id"]}"]')
    expect(row.locator(".filename")).to_have_text("late-run.golf")
    expect(row.locator(".created")).not_to_have_text("—")
    expect(row.locator(".tag-running").first).to_have_text("running")
    page.goto(f"{server}/jobs/{job['id']}")
    page.wait_for_selector("#chart svg path.series")
    paths = dict(
        page.eval_on_selector_all(
            "#chart svg path.series", "ps => ps.map(p => [p.dataset.protocol, p.getAttribute('d')])"
        )
    )
    for protocol, points in before.items():  # history, not only what the page polled
        assert _points(paths[protocol]) >= len(points)

    # Readable y axis: round ticks, evenly spaced, one number of decimals.
    ticks = page.eval_on_selector_all("#chart .y-tick", "ts => ts.map(t => t.textContent)")
    values = [float(t) for t in ticks]
    steps = {round(b - a, 9) for a, b in zip(values, values[1:], strict=False)}
    assert 3 <= len(values) <= 7 and len(steps) == 1, ticks
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5), ticks
    assert len({len(t.split(".")[-1]) if "." in t else 0 for t in ticks}) == 1

    # 800 px: no horizontal scroll, shard rows aligned across protocols.
    assert _no_horizontal_scroll(page)
    lefts = page.eval_on_selector_all(
        "#grid .cells", "cs => cs.map(c => Math.round(c.getBoundingClientRect().left))"
    )
    assert len(lefts) == len(PROTOCOLS) and len(set(lefts)) == 1, lefts
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-job-800.png", full_page=True)

    # The owner cancels it from the page; the chart of a cancelled job stays whole.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-job")
    expect(page.locator("#summary .badge")).to_have_text("cancelled")
    page.reload()
    page.wait_for_selector("#chart svg path.series")
    final = api.get(series_url).json()["series"]
    paths = dict(
        page.eval_on_selector_all(
            "#chart svg path.series", "ps => ps.map(p => [p.dataset.protocol, p.getAttribute('d')])"
        )
    )
    assert {p: _points(d) for p, d in paths.items()} == {
        p: len(points) for p, points in final.items()
    }
    expect(page.locator("#cancel-job")).to_have_count(0)
    assert _no_horizontal_scroll(page)
    context.close()


def test_a_chain_shows_where_it_stands_not_a_grid(
    server: str, browser: Browser, demo_data: Path, tmp_path: Path
) -> None:
    """A `ttt` job runs as one chain on a gang: its row is a bar of chunks done, the gang
    that holds it and its last checkpoint, moving while it runs, full when it is done."""
    api = httpx.Client(base_url=server, headers=auth("dave"), timeout=30)
    artifact = make_artifact(demo_data, tmp_path / "chain.golf", seed=13)
    uploaded = api.post("/v1/artifacts", files={"file": ("chain.golf", artifact.read_bytes())})
    params = {k: v for k, v in PARAMS.items() if k != "max_windows"} | {
        "ttt_chunk_tokens": 256,
        "ttt_epochs": 3,
        "ttt_batch_seqs": 4,
    }
    body = {"artifact": uploaded.json()["id"], "dataset": "demo", "protocols": ["sliding", "ttt"]}
    job = api.post("/v1/jobs", json=body | {"params": params, "chain_workers": 2}).json()
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/")
    enter_key(page, KEYS["dave"])
    page.goto(f"{server}/jobs/{job['id']}")
    wait = {"timeout": TIMEOUT_MS}
    chain = page.locator('#grid .chain[data-protocol="ttt"]')
    expect(chain).to_have_count(1, **wait)
    expect(page.locator("#grid .cells")).to_have_count(1)  # sliding keeps its shard grid
    steps = api.get(f"/v1/jobs/{job['id']}").json()["chains"]["ttt"]["steps"]
    # Live: the bar moves while the chain runs (the page follows the job's events).
    expect(chain).to_have_attribute("data-state", "running", **wait)
    first = int(chain.get_attribute("data-step") or 0)
    expect(chain).not_to_have_attribute("data-step", str(first), **wait)
    expect(chain.locator(".chain-facts")).to_contain_text("2 workers (worker-", **wait)
    expect(chain).to_have_attribute("data-state", "done", **wait)
    expect(chain.locator(".chain-facts")).to_contain_text(f"chunk {steps}/{steps}", **wait)
    final = api.get(f"/v1/jobs/{job['id']}").json()
    saved = final["chains"]["ttt"]["checkpoint"]  # by time (300 s): none in so short a run
    expect(chain.locator(".chain-facts")).to_contain_text(
        "no checkpoint yet" if saved is None else f"checkpoint at {saved}"
    )
    bpb = final["running"]["ttt"]["val_bpb"]
    expect(chain.locator(".chain-facts")).to_contain_text(f"running val_bpb {bpb:.6f}")
    # The report shows the chain's causality audit, as the API's report carries it.
    audit = api.get(f"/v1/jobs/{job['id']}/report").json()["reports"][1]["audit"]
    item = page.locator('#compliance li[data-flag="audit-ttt"]')
    expect(item).to_have_attribute("data-raised", "false", **wait)
    expect(item).to_contain_text(f"{audit['verdict']} ({audit['flips']} flips")
    assert _no_horizontal_scroll(page)
    page.screenshot(path=SCREENSHOTS / "dashboard-chain.png", full_page=True)
    page.context.close()


WHOLE = {"seq_len": 256, "stride": 256, "batch_windows": 16, "slot_steps": 2}
"""Whole-val runs that stay short: the demo val in about 120 windows of 256 tokens."""


def _run(api: httpx.Client, demo_data: Path, tmp_path: Path, seed: int, **body: object) -> dict:
    artifact = make_artifact(demo_data, tmp_path / f"board{seed}.golf", seed=seed)
    files = {"file": (f"board{seed}.golf", artifact.read_bytes())}
    uploaded = api.post("/v1/artifacts", files=files).json()
    job = api.post("/v1/jobs", json={"artifact": uploaded["id"], "dataset": "demo"} | body)
    assert job.status_code == 201, job.text
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while (state := api.get(f"/v1/jobs/{job.json()['id']}").json()["state"]) != "succeeded":
        assert state in ("queued", "running") and time.monotonic() < deadline
        time.sleep(0.2)
    return job.json()


def test_leaderboard_page_sorts_and_filters(
    server: str, page: Page, demo_data: Path, tmp_path: Path
) -> None:
    """Seed groups rank by their mean with n and ± std; a partial run is off the board
    until "Show partial runs" is ticked, then marked and unranked."""
    api = httpx.Client(base_url=server, headers=auth("carol"), timeout=30)
    for seed in (23, 24):  # one group of two seeds
        _run(api, demo_data, tmp_path, seed, protocols=["sliding"], params=WHOLE, group="recipe")
    for seed, protocols in ((21, ["sliding", "slot"]), (22, ["sliding"])):
        _run(api, demo_data, tmp_path, seed, protocols=protocols, params=WHOLE)
    partial = _run(api, demo_data, tmp_path, 25, protocols=["sliding"], params=PARAMS)
    board = api.get("/v1/leaderboard", params={"dataset": "demo"})
    assert board.status_code == 200, board.text
    rows = board.json()["rows"]
    assert len(rows) == 4 and not any(r["partial"] for r in rows)
    (group,) = [r for r in rows if r["group"] == "recipe"]
    assert group["seeds"] == 2 and group["val_bpb_std"] > 0

    page.goto(server + "/leaderboard")
    enter_key(page, KEYS["carol"])
    table = page.locator("#leaderboard tbody tr")
    expect(table).to_have_count(len(rows))
    shown = page.eval_on_selector_all(
        "#leaderboard tbody tr",
        "rs => rs.map(r => [r.dataset.job, r.dataset.protocol,"
        " r.querySelector('.val-bpb').textContent, r.querySelector('.seeds').textContent])",
    )
    assert shown == [
        [r["job"], r["protocol"], f"{r['val_bpb']:.6f}", str(r["seeds"])] for r in rows
    ]
    std = page.locator(f'#leaderboard tr[data-job="{group["job"]}"] .std')
    expect(std).to_have_text(f" ± {group['val_bpb_std']:.6f}")

    page.click('#leaderboard th[data-sort="val_bpb"]')  # ascending
    values = [float(v) for v in page.locator("#leaderboard tbody .val-bpb").all_text_contents()]
    assert values == sorted(values)
    page.click('#leaderboard th[data-sort="val_bpb"]')  # again: descending
    values = [float(v) for v in page.locator("#leaderboard tbody .val-bpb").all_text_contents()]
    assert values == sorted(values, reverse=True)

    page.select_option("#board-protocol", "slot")
    protocols = page.eval_on_selector_all(
        "#leaderboard tbody tr", "rs => rs.map(r => r.dataset.protocol)"
    )
    assert protocols and set(protocols) == {"slot"}
    page.select_option("#board-protocol", "")
    page.fill("#board-filter", rows[0]["job"])
    expect(table).to_have_count(sum(r["job"] == rows[0]["job"] for r in rows))
    page.fill("#board-filter", "")
    expect(table).to_have_count(len(rows))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-leaderboard.png", full_page=True)

    page.check("#board-partial")
    expect(table).to_have_count(len(rows) + 1)
    marked = page.locator(f'#leaderboard tr[data-job="{partial["id"]}"]')
    expect(marked).to_have_class("partial")
    expect(marked.locator(".tag-partial")).to_have_text("partial")
    expect(marked.locator(".rank")).to_have_text("—")


def test_jobs_list_at_800_px_and_the_job_404_page(
    server: str, browser: Browser, demo_data: Path, tmp_path: Path
) -> None:
    """At 800 px the jobs list shows each job's state, progress and val_bpb on screen (the
    low-priority columns give way), with no horizontal scroll; an unknown job is one card
    saying so, not three empty ones."""
    api = httpx.Client(base_url=server, headers=auth("bob"), timeout=30)
    job = _run(api, demo_data, tmp_path, 31, protocols=["sliding"], params=PARAMS)
    context = browser.new_context(viewport=NARROW)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(server + "/")
    enter_key(page, KEYS["bob"])
    row = page.locator(f'tr[data-job="{job["id"]}"]')
    expect(row).to_have_attribute("data-state", "succeeded")
    for cell in ("td.state", "td.progress", "td.bpb", "td.artifact"):
        box = row.locator(cell).bounding_box()
        assert box is not None and box["width"] > 0, cell
        assert box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"], (cell, box)
    expect(row.locator("td.bpb")).to_contain_text("sliding")
    headings = page.locator("#jobs thead th:visible").all_text_contents()
    assert headings[:4] == ["Job", "State", "Progress", "val_bpb"]
    assert "Owner" not in headings and "Created" not in headings
    assert _no_horizontal_scroll(page)
    page.screenshot(path=SCREENSHOTS / "dashboard-jobs-800.png")

    page.goto(server + "/jobs/j_0000000000000000")
    expect(page.locator("#not-found")).to_contain_text("Job not found")
    expect(page.locator("#not-found")).to_contain_text("j_0000000000000000")
    assert page.locator(".card").count() == 1 and page.locator("#summary").count() == 0
    context.close()
