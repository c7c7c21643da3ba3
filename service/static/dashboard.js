// golf-eval dashboard: plain DOM, no framework, no network but the service's own v1 API.
// Pages: "/" lists the jobs the key may see; "/jobs/{id}" follows one job to its report.
"use strict";

const KEY_STORAGE = "golf-eval.api-key";
const POLL_MS = 1000;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const COLORS = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2"];
const SVG_NS = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------- DOM helpers

function addChildren(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "object" ? child : String(child));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  return node;
}

/** An HTML element: el("td", {class: "num"}, "1.23"). Text is never parsed as HTML. */
function el(tag, attrs = {}, ...children) {
  return addChildren(setAttrs(document.createElement(tag), attrs), children);
}

/** An SVG element, same calling convention as el(). */
function svg(tag, attrs = {}, ...children) {
  return addChildren(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

/** Replaces the node's children; arrays are flattened, nulls skipped. */
function fill(node, ...children) {
  node.replaceChildren();
  return addChildren(node, children);
}

function byId(id) {
  return document.getElementById(id);
}

// ---------------------------------------------------------------- formatting

function fmtBpb(value) {
  return value === null || value === undefined ? "—" : value.toFixed(6);
}

function fmtDelta(value) {
  return (value >= 0 ? "+" : "") + value.toFixed(6);
}

function fmtInt(value) {
  return value.toLocaleString("en-US");
}

function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function fmtTime(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "—";
}

function shortHash(hash) {
  return hash.slice(0, 12);
}

function percent(done, total) {
  return total ? Math.floor((100 * done) / total) : 0;
}

// ---------------------------------------------------------------- API key and API calls

function getKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function saveKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

function authHeaders() {
  return { Authorization: `Bearer ${getKey()}` };
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function apiFetch(path) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, detail);
  }
  return response;
}

async function api(path) {
  return (await apiFetch(path)).json();
}

function jobPath(id, tail = "") {
  return `/v1/jobs/${encodeURIComponent(id)}${tail}`;
}

// ---------------------------------------------------------------- polling and errors

let stopPolling = () => {};

/** Calls `tick` now and every `ms` until it returns false or fails with 401/404. */
function poll(tick, ms) {
  stopPolling();
  let active = true;
  let timer = null;
  stopPolling = () => {
    active = false;
    clearTimeout(timer);
  };
  const run = async () => {
    let again = true;
    try {
      again = (await tick()) !== false;
      showError(null);
    } catch (error) {
      again = handleError(error);
    }
    if (active && again) timer = setTimeout(run, ms);
  };
  run();
}

/** Shows the error; false when polling should stop. */
function handleError(error) {
  if (error instanceof ApiError && error.status === 401) {
    forgetKey();
    route("The service refused that key; enter another.");
    return false;
  }
  showError(error.message);
  return !(error instanceof ApiError && error.status === 404);
}

function showError(message) {
  const banner = byId("error");
  if (!banner) return;
  banner.hidden = !message;
  banner.textContent = message || "";
}

// ---------------------------------------------------------------- routing and the key form

function route(message) {
  stopPolling();
  const app = byId("app");
  app.replaceChildren();
  renderSession();
  if (!getKey()) {
    renderKeyForm(app, message);
    return;
  }
  app.append(el("div", { id: "error", class: "error", hidden: true }));
  const match = location.pathname.match(/^\/jobs\/([^/]+)\/?$/);
  if (match) jobPage(app, decodeURIComponent(match[1]));
  else jobsPage(app);
}

function renderSession() {
  const session = byId("session");
  session.replaceChildren();
  const key = getKey();
  if (!key) return;
  const forget = () => {
    forgetKey();
    route();
  };
  session.append(
    el("span", { class: "muted" }, `key …${key.slice(-4)}`),
    el("button", { id: "forget-key", type: "button", onclick: forget }, "Forget key"),
  );
}

function renderKeyForm(app, message) {
  const input = el("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    placeholder: "API key",
    required: true,
  });
  const submit = (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    saveKey(key);
    route();
  };
  app.append(
    el(
      "section",
      { id: "no-key", class: "card narrow" },
      el("h1", {}, "API key needed"),
      el("p", {}, "Enter your golf-eval API key to see jobs. It is kept in this tab only."),
      message ? el("p", { class: "error" }, message) : null,
      el("form", { id: "key-form", onsubmit: submit }, input, el("button", {}, "Use key")),
    ),
  );
  input.focus();
}

// ---------------------------------------------------------------- shared pieces

function stateBadge(state) {
  return el("span", { class: `badge state-${state}`, "data-state": state }, state);
}

function progressBar(done, total) {
  const pct = percent(done, total);
  return el(
    "div",
    { class: "progress", title: `${fmtInt(done)} / ${fmtInt(total)} windows` },
    el("div", { class: "bar" }, el("div", { class: "fill", style: `width: ${pct}%` })),
    el("span", { class: "pct" }, `${pct}%`),
  );
}

function verdictBadge(verdict) {
  return el("span", { class: `badge verdict-${verdict.replace(/\s+/g, "-")}` }, verdict);
}

function runningList(job) {
  return job.protocols.map((p) =>
    el(
      "div",
      { class: "running", "data-protocol": p },
      el("span", { class: "muted" }, `${p} `),
      fmtBpb(job.running[p] && job.running[p].val_bpb),
    ),
  );
}

// ---------------------------------------------------------------- jobs page

function jobsPage(app) {
  const headers = ["Job", "Owner", "Artifact", "Dataset", "Protocols", "State", "Progress"];
  const tbody = el("tbody");
  const empty = el("p", { id: "jobs-empty", class: "muted", hidden: true }, "No jobs yet.");
  app.append(
    el("h1", {}, "Jobs"),
    el(
      "table",
      { id: "jobs", class: "jobs" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          headers.map((h) => el("th", {}, h)),
          el("th", {}, "val_bpb"),
        ),
      ),
      tbody,
    ),
    empty,
  );
  const artifacts = new Map();
  poll(async () => {
    const { jobs } = await api("/v1/jobs");
    await learnArtifacts(jobs, artifacts);
    fill(tbody, ...jobs.map((job) => jobRow(job, artifacts.get(job.artifact))));
    empty.hidden = jobs.length > 0;
  }, 1500);
}

/** Artifact sizes and verdicts, read once per artifact from GET /v1/artifacts/{id}. */
async function learnArtifacts(jobs, known) {
  for (const job of jobs) {
    if (known.has(job.artifact)) continue;
    known.set(job.artifact, await api(`/v1/artifacts/${encodeURIComponent(job.artifact)}`));
  }
}

function artifactCell(hash, info) {
  const details = info
    ? [
        el("span", { class: "muted" }, ` ${fmtInt(info.total_bytes)} B `),
        verdictBadge(info.verdict),
      ]
    : [el("span", { class: "muted" }, " …")];
  return el("td", { class: "artifact" }, el("code", { title: hash }, shortHash(hash)), details);
}

function jobRow(job, artifact) {
  return el(
    "tr",
    { "data-job": job.id, "data-state": job.state },
    el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(job.id)}` }, job.id)),
    el("td", {}, job.owner),
    artifactCell(job.artifact, artifact),
    el("td", {}, job.dataset),
    el("td", {}, job.protocols.join(", ")),
    el("td", {}, stateBadge(job.state)),
    el("td", {}, progressBar(job.progress.windows_done, job.progress.windows_total)),
    el("td", { class: "num" }, runningList(job)),
  );
}

// ---------------------------------------------------------------- job page

function jobPage(app, id) {
  const view = {
    summary: el("section", { id: "summary", class: "card" }),
    grid: el("section", { id: "grid", class: "card" }),
    chart: el("section", { id: "chart", class: "card" }),
    report: el("section", { id: "report", class: "card", hidden: true }),
    histogram: el("section", { id: "histogram", class: "card", hidden: true }),
  };
  app.append(
    el("p", {}, el("a", { href: "/" }, "← All jobs")),
    el(
      "div",
      { class: "columns" },
      el("div", { class: "column" }, view.summary, view.grid, view.chart),
      el("div", { class: "column" }, view.report, view.histogram),
    ),
  );
  const samples = {};
  poll(async () => {
    const job = await api(jobPath(id));
    renderSummary(view.summary, job);
    renderGrid(view.grid, job);
    addSamples(samples, job);
    renderChart(view.chart, job, samples, "polled while the job ran");
    if (!TERMINAL.has(job.state)) return true;
    if (job.state === "succeeded") await showResults(view, job, samples);
    return false;
  }, POLL_MS);
}

function renderSummary(section, job) {
  const fields = [
    ["Owner", job.owner],
    ["Artifact", el("code", { title: job.artifact }, shortHash(job.artifact))],
    ["Dataset", job.dataset],
    ["Protocols", job.protocols.join(", ")],
    ["Params", el("code", {}, compactParams(job.params))],
    ["Created", fmtTime(job.created_at)],
    ["ETA", TERMINAL.has(job.state) ? "—" : fmtSeconds(job.eta_s)],
  ];
  fill(
    section,
    el("h1", {}, `Job ${job.id} `, stateBadge(job.state)),
    progressBar(job.progress.windows_done, job.progress.windows_total),
    job.error ? el("p", { class: "error" }, job.error) : null,
    definitionList(fields),
  );
}

function compactParams(params) {
  return Object.entries(params)
    .filter(([, value]) => value !== null && value !== false)
    .map(([name, value]) => `${name}=${value}`)
    .join(" ");
}

function definitionList(pairs, attrs = {}) {
  return el(
    "dl",
    attrs,
    pairs.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]),
  );
}

// ---------------------------------------------------------------- shard grid

function renderGrid(section, job) {
  const rows = job.protocols.map((protocol) =>
    el(
      "div",
      { class: "grid-row" },
      el("div", { class: "grid-label" }, protocol),
      el(
        "div",
        { class: "cells" },
        job.shards.filter((s) => s.protocol === protocol).map(shardCell),
      ),
    ),
  );
  fill(section, el("h2", {}, `Shards (${job.shards.length})`), rows, gridLegend());
}

function shardCell(shard) {
  const pct = percent(shard.windows_done, shard.windows_total);
  const title =
    `${shard.protocol} shard ${shard.shard}: ${shard.state}, ` +
    `${shard.windows_done}/${shard.windows_total} windows, attempts ${shard.attempts}`;
  return el(
    "div",
    {
      class: `cell state-${shard.state}`,
      title,
      "data-protocol": shard.protocol,
      "data-shard": shard.shard,
      "data-state": shard.state,
    },
    el("div", { class: "cell-id" }, `#${shard.shard}`),
    el("div", { class: "cell-pct" }, `${pct}%`),
    el("div", { class: "cell-worker" }, shard.worker || "—"),
    el("div", { class: "cell-attempts" }, `×${shard.attempts}`),
  );
}

function gridLegend() {
  const states = ["queued", "running", "done", "failed", "cancelled"];
  return el(
    "div",
    { class: "legend" },
    states.map((s) => el("span", {}, el("i", { class: `swatch state-${s}` }), s)),
  );
}

// ---------------------------------------------------------------- running val_bpb chart

/** Appends (windows scored, running val_bpb) per protocol when it moved since last poll. */
function addSamples(samples, job) {
  for (const protocol of job.protocols) {
    const done = sumShards(job, protocol, "windows_done");
    const running = job.running[protocol];
    const series = (samples[protocol] = samples[protocol] || []);
    const last = series[series.length - 1];
    if (!running || running.val_bpb === null || done === 0) continue;
    if (last && last[0] === done) continue;
    series.push([done, running.val_bpb]);
  }
}

function sumShards(job, protocol, field) {
  return job.shards.filter((s) => s.protocol === protocol).reduce((n, s) => n + s[field], 0);
}

/** The running val_bpb in window order, rebuilt from per-window records. */
function curveFromWindows(windows) {
  const points = [];
  const step = Math.max(1, Math.floor(windows.length / 200));
  let nll = 0;
  let bytes = 0;
  windows.forEach((w, i) => {
    nll += w.nll_sum;
    bytes += w.bytes;
    if ((i + 1) % step === 0 || i === windows.length - 1) {
      points.push([i + 1, nll / Math.LN2 / bytes]);
    }
  });
  return points;
}

const CHART = { width: 560, height: 240, left: 64, right: 16, top: 16, bottom: 36 };

function renderChart(section, job, samples, note) {
  const series = job.protocols.map((p) => samples[p] || []);
  const all = series.flat();
  const heading = el("h2", {}, "Running val_bpb");
  if (all.length === 0) {
    fill(section, heading, el("p", { class: "muted" }, "Waiting for the first batch…"));
    return;
  }
  const xMax = Math.max(1, ...job.protocols.map((p) => sumShards(job, p, "windows_total")));
  const [yMin, yMax] = paddedRange(all.map((point) => point[1]));
  const x = (v) => CHART.left + (v / xMax) * (CHART.width - CHART.left - CHART.right);
  const y = (v) =>
    CHART.top + ((yMax - v) / (yMax - yMin)) * (CHART.height - CHART.top - CHART.bottom);
  const paths = job.protocols.map((protocol, i) =>
    svg("path", {
      class: "series",
      "data-protocol": protocol,
      d: pathData(series[i], x, y),
      stroke: COLORS[i % COLORS.length],
    }),
  );
  const plot = svg(
    "svg",
    { viewBox: `0 0 ${CHART.width} ${CHART.height}`, role: "img", class: "plot" },
    chartAxes(x, y, xMax, yMin, yMax),
    paths,
  );
  fill(section, heading, plot, chartLegend(job, series), el("p", { class: "muted" }, note));
}

function paddedRange(values) {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = (hi - lo) * 0.08 || 0.01;
  return [lo - pad, hi + pad];
}

function pathData(points, x, y) {
  return points
    .map(([wx, wy], i) => `${i ? "L" : "M"}${x(wx).toFixed(1)},${y(wy).toFixed(1)}`)
    .join(" ");
}

function chartAxes(x, y, xMax, yMin, yMax) {
  const bottom = CHART.height - CHART.bottom;
  const yTicks = [yMin, (yMin + yMax) / 2, yMax];
  return [
    svg("line", {
      class: "axis",
      x1: CHART.left,
      y1: bottom,
      x2: CHART.width - CHART.right,
      y2: bottom,
    }),
    svg("line", { class: "axis", x1: CHART.left, y1: CHART.top, x2: CHART.left, y2: bottom }),
    yTicks.map((v) => [
      svg("line", {
        class: "gridline",
        x1: CHART.left,
        x2: CHART.width - CHART.right,
        y1: y(v),
        y2: y(v),
      }),
      svg(
        "text",
        { class: "tick", x: CHART.left - 6, y: y(v) + 4, "text-anchor": "end" },
        v.toFixed(3),
      ),
    ]),
    svg("text", { class: "tick", x: x(0), y: bottom + 16, "text-anchor": "middle" }, "0"),
    svg("text", { class: "tick", x: x(xMax), y: bottom + 16, "text-anchor": "end" }, fmtInt(xMax)),
    svg(
      "text",
      {
        class: "label",
        x: (CHART.left + CHART.width) / 2,
        y: CHART.height - 4,
        "text-anchor": "middle",
      },
      "windows scored",
    ),
  ];
}

function chartLegend(job, series) {
  return el(
    "div",
    { class: "legend" },
    job.protocols.map((protocol, i) => {
      const last = series[i][series[i].length - 1];
      return el(
        "span",
        {},
        el("i", { class: "swatch", style: `background: ${COLORS[i % COLORS.length]}` }),
        `${protocol} ${last ? fmtBpb(last[1]) : "—"}`,
      );
    }),
  );
}

// ---------------------------------------------------------------- report

async function showResults(view, job, samples) {
  const report = await api(jobPath(job.id, "/report"));
  renderReport(view.report, job, report);
  const windows = {};
  for (const protocol of job.protocols) {
    const query = `/windows?protocol=${encodeURIComponent(protocol)}`;
    windows[protocol] = (await api(jobPath(job.id, query))).windows;
  }
  if (job.protocols.some((p) => (samples[p] || []).length < 3)) {
    const rebuilt = Object.fromEntries(job.protocols.map((p) => [p, curveFromWindows(windows[p])]));
    renderChart(view.chart, job, rebuilt, "rebuilt from per-window records, in window order");
  }
  renderHistogram(view.histogram, job, report, windows);
}

function renderReport(section, job, report) {
  section.hidden = false;
  fill(
    section,
    el("h2", {}, "Report"),
    reportTable(report),
    el("h3", {}, "Compliance"),
    complianceList(report),
    el("h3", {}, "Provenance"),
    definitionList([
      ["Artifact", el("code", {}, report.artifact.id)],
      ["Size", `${fmtInt(report.artifact.total_bytes)} bytes`],
      [
        "Declared",
        report.artifact.flags.length
          ? report.artifact.flags.map((f) => f.code).join(", ")
          : "nothing contested",
      ],
    ]),
    el("h3", {}, "Environment"),
    definitionList(
      Object.entries(report.environment).map(([k, v]) => [k, String(v)]),
      { id: "environment" },
    ),
    el("h3", {}, "Reproducibility digest"),
    el("p", {}, el("code", { id: "digest" }, report.digest)),
    el(
      "button",
      { id: "download-windows", type: "button", onclick: () => downloadWindows(job.id) },
      "Download per-window records (NDJSON)",
    ),
  );
}

function reportTable(report) {
  const heads = [
    "Protocol",
    "val_bpb",
    "Δ bpb",
    "val_loss",
    "tokens",
    "bytes",
    "windows",
    "stride",
  ];
  const details = Object.fromEntries(report.reports.map((r) => [r.protocol, r]));
  const rows = report.table.map((row) => {
    const r = details[row.protocol];
    return el(
      "tr",
      { "data-protocol": row.protocol },
      el("td", {}, row.protocol),
      el("td", { class: "num val-bpb" }, fmtBpb(row.val_bpb)),
      el("td", { class: "num delta" }, fmtDelta(row.delta_bpb)),
      el("td", { class: "num" }, r.val_loss.toFixed(6)),
      el("td", { class: "num" }, fmtInt(r.tokens)),
      el("td", { class: "num" }, fmtInt(r.bytes)),
      el("td", { class: "num" }, fmtInt(r.windows)),
      el("td", { class: "num" }, r.params.stride),
    );
  });
  return el(
    "table",
    { id: "report-table" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        heads.map((h) => el("th", {}, h)),
      ),
    ),
    el("tbody", {}, rows),
  );
}

function complianceList(report) {
  // Flags are {code, protocol}; protocol is null for the artifact's own.
  const artifactFlags = new Set(report.artifact.flags.map((f) => f.code));
  const nonCausal = report.flags
    .filter((f) => f.code === "non_causal_protocol")
    .map((f) => f.protocol);
  const fits = report.artifact.verdict === "fits";
  const items = [
    ["ttt_on_val", "TTT on val", artifactFlags.has("ttt_on_val"), "declared", "no"],
    [
      "gptq_on_val",
      "GPTQ calibrated on val",
      artifactFlags.has("gptq_calibrated_on_val"),
      "declared",
      "no",
    ],
    [
      "non_causal",
      "Non-causal SLOT",
      nonCausal.length > 0,
      `scored: ${nonCausal.join(", ")}`,
      "no non-causal protocol",
    ],
    [
      "size_budget",
      "Size budget",
      !fits,
      report.artifact.verdict,
      `${report.artifact.verdict} (${fmtInt(report.artifact.total_bytes)} B)`,
    ],
  ];
  return el(
    "ul",
    { id: "compliance", class: "flags" },
    items.map(([id, label, raised, yes, no]) =>
      el(
        "li",
        { class: raised ? "warn" : "ok", "data-flag": id, "data-raised": String(raised) },
        el("span", { class: "flag-mark" }, raised ? "⚠" : "✓"),
        el("span", {}, `${label}: `),
        el("strong", {}, raised ? yes : no),
      ),
    ),
  );
}

/** Fetches the records with the key (a plain link could not send it) and saves them. */
async function downloadWindows(jobId) {
  try {
    // All records, streamed as one JSON object a line (the JSON listing is paged).
    const blob = await (await apiFetch(jobPath(jobId, "/windows.ndjson"))).blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `${jobId}-windows.ndjson` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    showError(`download failed: ${error.message}`);
  }
}

// ---------------------------------------------------------------- SLOT gain histogram

function renderHistogram(section, job, report, windows) {
  if (!job.protocols.includes("sliding") || !job.protocols.includes("slot")) return;
  section.hidden = false;
  const heading = el("h2", {}, "SLOT gain per window");
  const params = Object.fromEntries(report.reports.map((r) => [r.protocol, r.params]));
  const a = params.sliding;
  const b = params.slot;
  if (a.stride !== b.stride || a.seq_len !== b.seq_len) {
    fill(
      section,
      heading,
      el(
        "p",
        { id: "histogram-note", class: "muted" },
        `sliding and slot scored different windows (seq_len ${a.seq_len}/${b.seq_len}, ` +
          `stride ${a.stride}/${b.stride}), so there is no per-window comparison.`,
      ),
    );
    return;
  }
  const gains = slotGains(windows.sliding, windows.slot);
  const better = gains.filter((g) => g > 0).length;
  const mean = gains.reduce((s, g) => s + g, 0) / (gains.length || 1);
  fill(
    section,
    heading,
    histogramSvg(gains),
    el(
      "p",
      { id: "histogram-note", class: "muted" },
      `sliding nll − slot nll (nats) over ${gains.length} windows; mean ${mean.toFixed(4)}; ` +
        `slot better on ${better} of ${gains.length}.`,
    ),
  );
}

function slotGains(sliding, slot) {
  const slotByWindow = new Map(slot.map((w) => [w.window, w.nll_sum]));
  return sliding
    .filter((w) => slotByWindow.has(w.window))
    .map((w) => w.nll_sum - slotByWindow.get(w.window));
}

const HIST = { width: 560, height: 200, left: 40, right: 16, top: 12, bottom: 36, bins: 24 };

function binCounts(values, lo, hi, bins) {
  const counts = new Array(bins).fill(0);
  const width = (hi - lo) / bins || 1;
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / width))] += 1;
  return counts;
}

function histogramSvg(gains) {
  if (gains.length === 0) return el("p", { class: "muted" }, "No matching windows.");
  const lo = Math.min(...gains);
  const hi = Math.max(...gains);
  const counts = binCounts(gains, lo, hi, HIST.bins);
  const top = Math.max(...counts);
  const plotW = HIST.width - HIST.left - HIST.right;
  const plotH = HIST.height - HIST.top - HIST.bottom;
  const barW = plotW / HIST.bins;
  const bottom = HIST.top + plotH;
  const binW = (hi - lo) / HIST.bins;
  const bars = counts.map((n, i) =>
    svg(
      "rect",
      {
        class: "bar",
        "data-count": n,
        x: (HIST.left + i * barW + 1).toFixed(1),
        y: (bottom - (n / top) * plotH).toFixed(1),
        width: Math.max(1, barW - 2).toFixed(1),
        height: ((n / top) * plotH).toFixed(1),
      },
      svg(
        "title",
        {},
        `${n} windows in [${(lo + i * binW).toFixed(3)}, ${(lo + (i + 1) * binW).toFixed(3)})`,
      ),
    ),
  );
  const zero = hi > lo && lo < 0 && hi > 0 ? HIST.left + ((0 - lo) / (hi - lo)) * plotW : null;
  return svg(
    "svg",
    { viewBox: `0 0 ${HIST.width} ${HIST.height}`, role: "img", class: "plot" },
    svg("line", {
      class: "axis",
      x1: HIST.left,
      y1: bottom,
      x2: HIST.width - HIST.right,
      y2: bottom,
    }),
    bars,
    zero === null
      ? null
      : svg("line", { class: "zero", x1: zero, x2: zero, y1: HIST.top, y2: bottom }),
    svg("text", { class: "tick", x: HIST.left, y: bottom + 16 }, lo.toFixed(3)),
    svg(
      "text",
      { class: "tick", x: HIST.width - HIST.right, y: bottom + 16, "text-anchor": "end" },
      hi.toFixed(3),
    ),
    svg("text", { class: "tick", x: HIST.left - 6, y: HIST.top + 10, "text-anchor": "end" }, top),
    svg(
      "text",
      {
        class: "label",
        x: (HIST.left + HIST.width) / 2,
        y: HIST.height - 4,
        "text-anchor": "middle",
      },
      "gain (nats per window)",
    ),
  );
}

window.addEventListener("DOMContentLoaded", () => route());
