"""The dashboard in a real browser: Debian's chromium driven by Playwright, against the real
service under uvicorn on the session's local Ray. A small sliding + slot job is followed in
the page to its report; what the page shows must be what the API returns.

Screenshots for the README land in docs/img/. Chromium must be installed (`make test`
installs it); without it this test fails rather than skips, so CI really runs it.
"""

import json
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
    assert rows == [
        [r["protocol"], f"{r['val_bpb']:.6f}", f"{r['delta_bpb']:+.6f}"] for r in report["table"]
    ]
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
        "non_causal": str({"code": "non_causal_protocol", "protocol": "slot"} in report["flags"]).lower(),
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
