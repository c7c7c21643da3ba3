// golf-eval dashboard: plain DOM, no framework, no network but the service's own v1 API.
// Pages: "/" lists the jobs the key may see; "/jobs/{id}" follows one job to its report;
// "/leaderboard" ranks finished jobs of a dataset (GET /v1/leaderboard).
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

async function apiFetch(path, method = "GET") {
  const response = await fetch(path, { method, headers: authHeaders() });
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
  else if (/^\/leaderboard\/?$/.test(location.pathname)) leaderboardPage(app);
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

/** Why a job's val_bpb is not final: "running" while it runs, "partial" when it stopped
 * early or scored only the first windows (max_windows); null for a full, finished job. */
function provisional(job) {
  if (!TERMINAL.has(job.state)) return "running";
  const cut = job.partial ?? job.params.max_windows != null; // from the counts (service)
  if (job.state !== "succeeded" || cut) return "partial";
  return null;
}

function runningList(job) {
  const marker = provisional(job);
  return job.protocols.map((p) =>
    el(
      "div",
      { class: "running", "data-protocol": p },
      el("span", { class: "muted" }, `${p} `),
      fmtBpb(job.running[p] && job.running[p].val_bpb),
      marker ? el("span", { class: `tag tag-${marker}`, title: TAG_TITLES[marker] }, marker) : null,
    ),
  );
}

const TAG_TITLES = {
  running: "running value: the windows scored so far, not the final val_bpb",
  partial: "partial: not every window was scored (cancelled, failed or max_windows)",
};

// ---------------------------------------------------------------- jobs page

/** The jobs list's columns: [heading, class]. State, Progress and val_bpb come right after
 * the job id; `wide` columns are hidden on narrow screens (dashboard.css), so at 800 px
 * what a competitor watches is on screen without scrolling. */
const JOB_COLUMNS = [
  ["Job", ""],
  ["State", ""],
  ["Progress", ""],
  ["val_bpb", "num"],
  ["Artifact", ""],
  ["Protocols", ""],
  ["Params", "wide"],
  ["Owner", "wide"],
  ["Dataset", "wide"],
  ["Created", "wide"],
];

function jobsPage(app) {
  const tbody = el("tbody");
  const empty = el("p", { id: "jobs-empty", class: "muted", hidden: true }, "No jobs yet.");
  app.append(
    el("h1", {}, "Jobs"),
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { id: "jobs", class: "jobs" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            JOB_COLUMNS.map(([h, cls]) => el("th", { class: cls || null, "data-column": h }, h)),
          ),
        ),
        tbody,
      ),
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

function artifactCell(hash, info, filename) {
  const details = info
    ? [
        el("span", { class: "muted" }, ` ${fmtInt(info.total_bytes)} B `),
        verdictBadge(info.verdict),
      ]
    : [el("span", { class: "muted" }, " …")];
  return el(
    "td",
    { class: "artifact" },
    filename ? el("div", { class: "filename", title: filename }, filename) : null,
    el("code", { title: hash }, shortHash(hash)),
    details,
  );
}

function jobRow(job, artifact) {
  return el(
    "tr",
    { "data-job": job.id, "data-state": job.state },
    el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(job.id)}` }, job.id)),
    el("td", { class: "state" }, stateBadge(job.state)),
    el("td", { class: "progress" }, progressBar(job.progress.windows_done, job.progress.windows_total)),
    el("td", { class: "num bpb" }, runningList(job)),
    artifactCell(job.artifact, artifact, job.filename),
    el("td", {}, job.protocols.join(", ")),
    el("td", { class: "params wide" }, paramChips(job.params)),
    el("td", { class: "wide" }, job.owner),
    el("td", { class: "wide" }, job.dataset),
    el("td", { class: "created wide" }, fmtTime(job.created_at)),
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
  // One column while there is no report (a running job uses the whole width), two after.
  view.results = el("div", { class: "column", hidden: true }, view.report, view.histogram);
  view.columns = el(
    "div",
    { class: "columns single" },
    el("div", { class: "column" }, view.summary, view.grid, view.chart),
    view.results,
  );
  app.append(el("p", {}, el("a", { href: "/" }, "← All jobs")), view.columns);
  poll(async () => {
    let job;
    try {
      job = await api(jobPath(id));
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      view.columns.replaceWith(
        el(
          "section",
          { id: "not-found", class: "card narrow" },
          el("h1", {}, "Job not found"),
          el("p", {}, `No job ${id} that this key may see (jobs are visible to their owner and admins).`),
          el("p", {}, el("a", { href: "/" }, "See your jobs")),
        ),
      );
      return false;
    }
    renderSummary(view.summary, job, () => cancelJob(job.id));
    renderGrid(view.grid, job);
    // The series is kept by the service, so the chart is whole however late it is opened.
    const { series } = await api(jobPath(id, "/series"));
    renderChart(view.chart, job, series, chartNote(job));
    if (!TERMINAL.has(job.state)) return true;
    if (job.state === "succeeded") await showResults(view, job, series);
    return false;
  }, POLL_MS);
}

function chartNote(job) {
  const marker = provisional(job);
  const what = "val_bpb of the windows scored so far, as each batch landed";
  if (marker === "running") return `Running ${what}; the final value is the report's.`;
  if (marker === "partial") return `Partial: ${what}, until the job ${job.state === "succeeded" ? "reached max_windows" : "stopped"}.`;
  return `The ${what}.`;
}

async function cancelJob(id) {
  if (!confirm(`Cancel job ${id}? Its running batches stop within seconds.`)) return;
  try {
    await apiFetch(jobPath(id), "DELETE");
    showError(null);
  } catch (error) {
    handleError(error);
  }
}

function renderSummary(section, job, onCancel) {
  const fields = [
    ["Owner", job.owner],
    [
      "Artifact",
      [
        job.filename ? el("span", { class: "filename" }, `${job.filename} `) : null,
        el("code", { title: job.artifact }, shortHash(job.artifact)),
      ],
    ],
    ["Dataset", job.dataset],
    ["Protocols", job.protocols.join(", ")],
    ["Params", paramChips(job.params)],
    ["Created", fmtTime(job.created_at)],
    ["ETA", TERMINAL.has(job.state) ? "—" : fmtSeconds(job.eta_s)],
  ];
  // Whoever sees a job may cancel it: its owner, or an admin.
  const cancel = TERMINAL.has(job.state)
    ? null
    : el("button", { id: "cancel-job", type: "button", class: "danger", onclick: onCancel }, "Cancel job");
  fill(
    section,
    el("h1", {}, `Job ${job.id} `, stateBadge(job.state), cancel),
    progressBar(job.progress.windows_done, job.progress.windows_total),
    job.error ? el("p", { class: "error" }, job.error) : null,
    definitionList(fields),
  );
}

/** EvalParams' defaults (golf/spec/params.py): a job's params show what differs from them. */
const PARAM_DEFAULTS = {
  seq_len: 2048,
  stride: null,
  batch_windows: 32,
  slot_steps: 24,
  slot_lr: 0.012,
  slot_lr_min: 0.001,
  batch_invariant: false,
  reference: false,
  plan: "canonical",
  max_windows: null,
  precision: "auto",
  attention: "auto",
  compile: false,
  slot_kernel: "auto",
};

function compactParams(params) {
  const changed = Object.entries(params).filter(
    ([name, value]) => value !== null && value !== false && value !== PARAM_DEFAULTS[name],
  );
  return changed.length ? changed.map(([name, value]) => `${name}=${value}`) : ["defaults"];
}

/** The params as chips that wrap between, never inside, `name=value`. */
function paramChips(params) {
  return el(
    "span",
    { class: "chips" },
    compactParams(params).map((text) => el("code", { class: "chip" }, text)),
  );
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
  const chains = job.chains || {};
  const rows = job.protocols.map((protocol) =>
    el(
      "div",
      { class: "grid-row" },
      el("div", { class: "grid-label" }, protocol),
      protocol in chains
        ? chainBar(protocol, chains[protocol], job.running[protocol])
        : el(
            "div",
            { class: "cells" },
            job.shards.filter((s) => s.protocol === protocol).map(shardCell),
          ),
    ),
  );
  fill(section, el("h2", {}, `Shards (${job.shards.length})`), rows, gridLegend());
}

/** A chain (ttt, ttt-phased) is one run on a gang: where it is, not a grid of one cell. */
function chainBar(protocol, chain, running) {
  const pct = percent(chain.steps_done, chain.steps);
  const bpb = running && running.val_bpb !== null ? running.val_bpb.toFixed(6) : "—";
  const facts = [
    `${chain.unit} ${chain.steps_done}/${chain.steps}`,
    chain.phases ? `phase ${chain.phases[0]}/${chain.phases[1]} done` : null,
    `${chain.workers} worker${chain.workers === 1 ? "" : "s"}` +
      (chain.held_by ? ` (${chain.held_by})` : ""),
    chain.checkpoint === null ? "no checkpoint yet" : `checkpoint at ${chain.checkpoint}`,
    chain.resumed_at === null ? null : `resumed at ${chain.resumed_at}`,
    `running val_bpb ${bpb}`,
    `attempts ×${chain.attempts}`,
  ].filter((fact) => fact !== null);
  return el(
    "div",
    {
      class: `chain state-${chain.state}`,
      "data-protocol": protocol,
      "data-state": chain.state,
      "data-step": chain.steps_done,
      title: `${protocol}: ${chain.state}, ${facts.join(", ")}`,
    },
    el("div", { class: "chain-track" }, el("div", { class: "chain-fill", style: `width: ${pct}%` })),
    el("div", { class: "chain-facts" }, facts.join(" · ")),
  );
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
    const empty = TERMINAL.has(job.state)
      ? `No batch was scored before the job ${job.state === "succeeded" ? "ended" : job.state}.`
      : "Waiting for the first batch…";
    fill(section, heading, el("p", { class: "muted" }, empty));
    return;
  }
  const xMax = Math.max(1, ...job.protocols.map((p) => sumShards(job, p, "windows_total")));
  const yTicks = niceTicks(all.map((point) => point[1]));
  const [yMin, yMax] = [yTicks[0], yTicks[yTicks.length - 1]];
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
    chartAxes(x, y, xMax, yTicks),
    paths,
  );
  fill(section, heading, plot, chartLegend(job, series), el("p", { class: "muted" }, note));
}

const MIN_Y_RANGE = 0.02; // bpb: a flat curve is drawn flat, not blown up to fill the chart

/** Round ("nice") y ticks covering the values: steps of 1, 2 or 5 × 10^k, 3-6 of them,
 * spanning at least MIN_Y_RANGE; the first and last are the axis' ends. */
function niceTicks(values, target = 4) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < MIN_Y_RANGE) {
    const mid = (lo + hi) / 2;
    [lo, hi] = [mid - MIN_Y_RANGE / 2, mid + MIN_Y_RANGE / 2];
  }
  const raw = (hi - lo) / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks = [];
  for (let v = first; v <= last + step / 2; v += step) ticks.push(Number(v.toFixed(decimals)));
  return ticks;
}

function tickDecimals(ticks) {
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

function pathData(points, x, y) {
  return points
    .map(([wx, wy], i) => `${i ? "L" : "M"}${x(wx).toFixed(1)},${y(wy).toFixed(1)}`)
    .join(" ");
}

function chartAxes(x, y, xMax, yTicks) {
  const bottom = CHART.height - CHART.bottom;
  const decimals = tickDecimals(yTicks);
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
        { class: "tick y-tick", x: CHART.left - 6, y: y(v) + 4, "text-anchor": "end" },
        v.toFixed(decimals),
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

async function showResults(view, job, series) {
  const report = await api(jobPath(job.id, "/report"));
  view.results.hidden = false;
  view.columns.classList.remove("single");
  renderReport(view.report, job, report);
  const windows = {};
  for (const protocol of job.protocols) {
    const query = `/windows?protocol=${encodeURIComponent(protocol)}`;
    windows[protocol] = (await api(jobPath(job.id, query))).windows;
  }
  if (job.protocols.some((p) => (series[p] || []).length < 3)) {
    // a job from before the service kept series: rebuild its curve from the windows
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
    partialNote(report),
    el("div", { class: "scroll" }, reportTable(report)),
    el("h3", {}, "Compliance"),
    complianceList(report),
    el("h3", {}, "Provenance"),
    definitionList([
      ["Artifact", el("code", {}, report.artifact.id)],
      [
        "Size",
        report.artifact.code_declared === false
          ? `${fmtInt(report.artifact.total_bytes)} bytes (code size not declared)`
          : `${fmtInt(report.artifact.total_bytes)} bytes`,
      ],
      [
        "Eval time",
        el(
          "span",
          { id: "eval-time" },
          report.reports
            .map((r) => {
              const wall = r.wall_s ?? r.elapsed_s;
              const where = r.engine ? r.engine.device_name : "unknown hardware";
              const projected =
                r.projected_8xh100_s == null
                  ? ""
                  : `, 8×H100 ≈ ${r.projected_8xh100_s.toFixed(1)} s${r.projected_8xh100_s > 600 ? " (over 600 s)" : ""}`;
              return `${r.protocol} ${wall.toFixed(1)} s wall on ${where}${projected}`;
            })
            .join("; "),
        ),
      ],
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
    "95% CI",
    "Δ bpb",
    "val_loss",
    "tokens",
    "bytes",
    "windows",
    "stride",
  ];
  const details = Object.fromEntries(report.reports.map((r) => [r.protocol, r]));
  const comparable = scoredAlike(report);
  const rows = report.table.map((row) => {
    const r = details[row.protocol];
    return el(
      "tr",
      { "data-protocol": row.protocol },
      el("td", {}, row.protocol),
      el("td", { class: "num val-bpb" }, fmtBpb(row.val_bpb)),
      el(
        "td",
        { class: "num ci", title: "within-run: bootstrap over this run's windows, not seeds" },
        r.ci95 ? `${r.ci95[0].toFixed(4)}–${r.ci95[1].toFixed(4)}` : "—",
      ),
      el(
        "td",
        { class: "num delta", title: comparable ? null : "partial run, or different targets" },
        comparable ? fmtDelta(row.delta_bpb) : "—",
      ),
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

/** Whether a protocol's report scored fewer windows than the whole val (golf.tables.
 * is_partial): from the counts; an old report without them is partial if capped. */
function isPartial(r) {
  if (r.windows_total != null) return Boolean(r.partial);
  return r.params.max_windows != null;
}

/** Whether Δ between protocols means anything: they scored the same targets of the whole
 * val (same token count, no partial run). */
function scoredAlike(report) {
  const tokens = new Set(report.reports.map((r) => r.tokens));
  return tokens.size === 1 && !report.reports.some(isPartial);
}

function partialNote(report) {
  const partial = report.reports.filter(isPartial);
  const notes = [];
  if (partial.length) {
    const cut = [
      ...new Set(
        partial.map((r) =>
          r.windows_total != null
            ? `${fmtInt(r.windows)} of ${fmtInt(r.windows_total)} windows`
            : `max_windows ${r.params.max_windows}`,
        ),
      ),
    ];
    notes.push(
      `Partial run: scored only the first windows (${cut.join("/")}); ` +
        "these are not val_bpb of the whole validation set.",
    );
  }
  if (report.reports.length > 1 && !scoredAlike(report)) {
    notes.push(
      partial.length ? "No Δ: a partial run." : "No Δ: the protocols scored different targets.",
    );
  }
  return notes.length ? el("p", { id: "partial-note", class: "warning" }, notes.join(" ")) : null;
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
    // The stream flip audit each score-first protocol's report carries (golf eval's).
    ...report.reports
      .filter((r) => r.audit)
      .map((r) => [
        `audit-${r.protocol}`,
        `Causality audit of ${r.protocol}`,
        r.audit.violations > 0,
        `${r.audit.verdict}: ${r.audit.violations} violations in ${r.audit.pairs_tested} pairs`,
        `${r.audit.verdict} (${r.audit.flips} flips, ${r.audit.pairs_tested} pairs, 0 violations)`,
      ]),
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
  const heading = el("h2", {}, "SLOT gain per window (bpb)");
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
      `Per window: (sliding nll − slot nll) / ln 2 / the window's bytes, in bits per byte, ` +
        `over ${gains.length} windows; mean ${mean.toFixed(4)} bpb; slot better on ${better} ` +
        `of ${gains.length}.`,
    ),
  );
}

/** Per window, the bits per byte SLOT saved: (sliding nll − slot nll) / ln 2 / bytes. */
function slotGains(sliding, slot) {
  const slotByWindow = new Map(slot.map((w) => [w.window, w.nll_sum]));
  return sliding
    .filter((w) => slotByWindow.has(w.window) && w.bytes > 0)
    .map((w) => (w.nll_sum - slotByWindow.get(w.window)) / Math.LN2 / w.bytes);
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
      "gain (bits per byte of the window)",
    ),
  );
}

// ---------------------------------------------------------------- leaderboard

const BOARD_COLUMNS = [
  // [key, heading, numeric?]
  ["rank", "#", true],
  ["protocol", "Protocol", false],
  ["val_bpb", "val_bpb (mean ± std)", true],
  ["seeds", "n", true],
  ["val_loss", "val_loss", true],
  ["entry", "Entry", false],
  ["owner", "Owner", false],
  ["params", "Eval params", false],
  ["eval_s", "Eval s", true],
  ["total_bytes", "Bytes", true],
  ["code_bytes", "Code", true],
  ["verdict", "Verdict", false],
  ["flags", "Flags", false],
  ["job", "Job", false],
];

/** `L 2048 · stride 64 · slot 24 steps`: what decides a row's score (service/boards.py). */
function boardParams(params) {
  if (!params) return "—";
  const parts = [`L ${params.seq_len}`, `stride ${params.stride}`];
  if (params.slot_steps !== undefined) {
    parts.push(`slot ${params.slot_steps} steps lr ${params.slot_lr}→${params.slot_lr_min}`);
  }
  if (params.plan) parts.push(params.plan);
  if (params.precision && params.precision !== "auto") parts.push(params.precision);
  return parts.join(" · ");
}

/** Finished jobs of one dataset ranked by val_bpb (GET /v1/leaderboard): sortable by any
 * column (click its heading, again to reverse), filtered by protocol and by text. */
function leaderboardPage(app) {
  const params = new URLSearchParams(location.search);
  const state = {
    dataset: params.get("dataset"),
    protocol: params.get("protocol") || "",
    board: params.get("board") === "shared" ? "shared" : "mine",
    partial: params.get("partial") === "1",
    text: params.get("q") || "",
    sort: "order", // the API's: by protocol, then val_bpb
    ascending: true,
    rows: [],
  };
  const datasetSelect = el("select", { id: "board-dataset", "aria-label": "Dataset" });
  const protocolSelect = el("select", { id: "board-protocol", "aria-label": "Protocol" });
  const boardSelect = el(
    "select",
    { id: "board-which", "aria-label": "Board" },
    el("option", { value: "mine", selected: state.board === "mine" }, "mine"),
    el("option", { value: "shared", selected: state.board === "shared" }, "shared (published)"),
  );
  const partialToggle = el("input", { id: "board-partial", type: "checkbox" });
  partialToggle.checked = state.partial;
  const filter = el("input", {
    id: "board-filter",
    type: "search",
    placeholder: "Filter: artifact, group, job, flag…",
    value: state.text,
  });
  const table = el("table", { id: "leaderboard", class: "jobs" });
  const note = el("p", { id: "board-note", class: "muted" });
  app.append(
    el("h1", {}, "Leaderboard"),
    el(
      "div",
      { class: "toolbar" },
      el("label", {}, "Dataset ", datasetSelect),
      el("label", {}, "Protocol ", protocolSelect),
      el("label", {}, "Board ", boardSelect),
      el("label", { title: "Runs cut short of the whole val: marked, unranked" }, partialToggle, " Show partial runs"),
      filter,
    ),
    el("div", { class: "scroll" }, table),
    note,
  );
  const draw = () => renderBoard(table, note, state);
  const load = async () => {
    const query = new URLSearchParams({ dataset: state.dataset, board: state.board });
    if (state.partial) query.set("include_partial", "true");
    const doc = await api(`/v1/leaderboard?${query}`);
    const seen = {};
    state.rows = doc.rows.map((row, i) => {
      if (row.partial) return { ...row, order: i, rank: null, entry: row.group || row.artifact };
      seen[row.protocol] = (seen[row.protocol] || 0) + 1;
      // rank within its protocol; a partial run holds none
      return { ...row, order: i, rank: seen[row.protocol], entry: row.group || row.artifact };
    });
    const protocols = [...new Set(state.rows.map((r) => r.protocol))].sort();
    fill(
      protocolSelect,
      el("option", { value: "" }, "all"),
      protocols.map((p) => el("option", { value: p, selected: p === state.protocol }, p)),
    );
    draw();
  };
  datasetSelect.addEventListener("change", () => {
    state.dataset = datasetSelect.value;
    load().catch(handleError);
  });
  protocolSelect.addEventListener("change", () => {
    state.protocol = protocolSelect.value;
    draw();
  });
  boardSelect.addEventListener("change", () => {
    state.board = boardSelect.value;
    load().catch(handleError);
  });
  partialToggle.addEventListener("change", () => {
    state.partial = partialToggle.checked;
    load().catch(handleError);
  });
  filter.addEventListener("input", () => {
    state.text = filter.value;
    draw();
  });
  table.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (!th) return;
    const key = th.dataset.sort;
    state.ascending = state.sort === key ? !state.ascending : true;
    state.sort = key;
    draw();
  });
  (async () => {
    const { datasets } = await api("/v1/datasets");
    if (!datasets.length) {
      note.textContent = "The service serves no datasets.";
      return;
    }
    const names = datasets.map((d) => d.name);
    if (!names.includes(state.dataset)) state.dataset = names[0];
    fill(
      datasetSelect,
      names.map((n) => el("option", { value: n, selected: n === state.dataset }, n)),
    );
    await load();
  })().catch((error) => {
    if (error instanceof ApiError && error.status === 404) {
      note.textContent = `This service has no leaderboard (${error.message}).`;
    } else handleError(error);
  });
}

function boardText(row) {
  return [row.protocol, row.artifact, row.group, row.owner, row.job, row.verdict]
    .concat((row.flags || []).map((f) => f.code))
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
}

function boardValue(row, key) {
  if (key === "flags") return (row.flags || []).map((f) => f.code).join(",");
  if (key === "params") return boardParams(row.params);
  const value = row[key];
  return value === null || value === undefined ? "" : value;
}

function renderBoard(table, note, state) {
  const needle = state.text.trim().toLowerCase();
  const rows = state.rows
    .filter((r) => !state.protocol || r.protocol === state.protocol)
    .filter((r) => !needle || boardText(r).includes(needle));
  const sign = state.ascending ? 1 : -1;
  rows.sort((a, b) => {
    const [x, y] = [boardValue(a, state.sort), boardValue(b, state.sort)];
    if (x === y) return a.order - b.order;
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sign;
  });
  const head = el(
    "tr",
    {},
    BOARD_COLUMNS.map(([key, heading, numeric]) =>
      el(
        "th",
        {
          "data-sort": key,
          class: [numeric ? "num" : "", "sortable", state.sort === key ? "sorted" : ""].join(" ").trim(),
          "aria-sort": state.sort === key ? (state.ascending ? "ascending" : "descending") : null,
          title: "Sort by this column",
        },
        heading,
        state.sort === key ? (state.ascending ? " ▲" : " ▼") : "",
      ),
    ),
  );
  const body = rows.map((r) =>
    el(
      "tr",
      { "data-job": r.job, "data-protocol": r.protocol, class: r.partial ? "partial" : null },
      el("td", { class: "num rank" }, r.rank === null ? "—" : r.rank),
      el("td", {}, r.protocol),
      el(
        "td",
        { class: "num score" },
        el("span", { class: "val-bpb" }, fmtBpb(r.val_bpb)),
        r.val_bpb_std === null || r.val_bpb_std === undefined
          ? ""
          : el("span", { class: "std" }, ` ± ${r.val_bpb_std.toFixed(6)}`),
        r.partial ? el("span", { class: "tag tag-partial", title: "scored only the first windows" }, "partial") : "",
      ),
      el("td", { class: "num seeds" }, r.seeds ?? 1),
      el("td", { class: "num" }, r.val_loss === null || r.val_loss === undefined ? "—" : r.val_loss.toFixed(6)),
      el(
        "td",
        {},
        r.group ? r.group : el("code", { title: r.artifact }, shortHash(r.artifact || "")),
      ),
      el("td", {}, r.owner || "—"),
      el("td", { class: "params" }, boardParams(r.params)),
      el(
        "td",
        {
          class: "num",
          title: r.projected_8xh100_s == null ? r.device || "" : `8×H100 ≈ ${r.projected_8xh100_s.toFixed(1)} s`,
        },
        r.eval_s == null ? "—" : r.eval_s.toFixed(1),
        (r.projected_8xh100_s || 0) > 600 ? el("span", { class: "tag tag-flag" }, "> 600 s on 8×H100") : "",
      ),
      el("td", { class: "num" }, r.total_bytes === undefined ? "—" : fmtInt(r.total_bytes)),
      el("td", { class: "num" }, r.code_bytes ? fmtInt(r.code_bytes) : el("span", { class: "muted", title: "code size not declared" }, "—")),
      el("td", {}, r.verdict ? verdictBadge(r.verdict) : "—"),
      el(
        "td",
        { class: "flags" },
        (r.flags || []).map((f) => el("span", { class: "tag tag-flag", "data-flag": f.code }, f.code)),
      ),
      el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(r.job)}` }, r.job)),
    ),
  );
  fill(table, el("thead", {}, head), el("tbody", {}, body));
  const partial = state.rows.some((r) => r.partial)
    ? " Partial runs scored only the first windows: marked, unranked."
    : "";
  note.textContent = state.rows.length
    ? `${rows.length} of ${state.rows.length} rows on ${state.dataset}. val_bpb: the mean over ` +
      `each entry's seeds (n), ± their sample std.${partial}`
    : `No finished whole-val run on ${state.dataset} yet` +
      (state.partial ? "." : " (partial runs are hidden: tick “Show partial runs”).");
}

window.addEventListener("DOMContentLoaded", () => route());
