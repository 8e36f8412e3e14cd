// Point page: charts over 1 h / 24 h / 7 d, statuses, backlog, config diff, tier, commands.
"use strict";
const ID = document.getElementById("point").dataset.device;
const BASE = "/api/v1/devices/" + encodeURIComponent(ID);
let range = 3600;
let charts = {};

// Metric names are bare ("pm2_5") or prefixed by the collector's name ("air_pm2_5").
function pick(keys, names) {
  for (const name of names) {
    for (const key of keys) {
      if (key === name || key.endsWith("_" + name)) return key;
    }
  }
  return null;
}

const CHARTS = [
  {id: "c-clients", stream: "telemetry", series: [["connected_1m", "connected_now", "connected"], ["nearby_1m", "nearby"]]},
  {id: "c-air", stream: "telemetry", series: [["pm2_5"], ["pm10"]]},
  {id: "c-noise", stream: "telemetry", series: [["noise_db", "noise"]]},
  {id: "c-water", stream: "telemetry", series: [["water_level_cm", "water_level"]]},
  {id: "c-cpu", stream: "health", series: [["cpu_percent"]]},
  {id: "c-temp", stream: "health", series: [["soc_temp_c"]]},
];
const COLOURS = ["#1f6feb", "#d9480f", "#2f9e44"];
const LIMIT = 10000;  // the telemetry endpoint's most records per page
// How each range is read: the last hour as raw records, 24 h as per-minute rollups, 7 d as
// per-hour rollups (raw records, oldest first under a limit, missed the newest: issue #20).
// Past 10,000 records in the hour, the hour too is read as per-minute rollups.
const PLANS = {3600: {raw: true, resolution: "1m"}, 86400: {resolution: "1m"},
               604800: {resolution: "1h"}};
const RESOLUTION_STEP = {"1m": 60, "1h": 3600};
const newest = {};  // stream -> the newest raw record read (its sources, the backlog)
const cache = {};   // stream:resolution -> buckets already read, refreshed from the last one
let generation = 0;
window.deviceCharts = charts;  // the uPlot instances, for the browser tests

// A series row: {t: seconds, values: {metric: number}}.
function fromRecords(records) {
  return records.map(r => ({t: Date.parse(r.ts) / 1000, values: r.metrics || {}}));
}

function fromBuckets(buckets) {
  return buckets.map(b => {
    const values = {};
    for (const [k, a] of Object.entries(b.metrics)) values[k] = a.mean;
    return {t: Date.parse(b.bucket) / 1000, values};
  });
}

// Raw records binned into buckets of `step` seconds (means), as the rollups would.
function binned(records, step) {
  const bins = new Map();
  for (const r of records) {
    const t = Math.floor(Date.parse(r.ts) / 1000 / step) * step;
    let bin = bins.get(t);
    if (!bin) { bin = {}; bins.set(t, bin); }
    for (const [k, v] of Object.entries(r.metrics || {})) {
      if (typeof v !== "number") continue;
      const agg = bin[k] || (bin[k] = [0, 0]);
      agg[0] += 1; agg[1] += v;
    }
  }
  return [...bins.entries()].sort((a, b) => a[0] - b[0]).map(([t, bin]) => {
    const values = {};
    for (const [k, [n, sum]] of Object.entries(bin)) values[k] = sum / n;
    return {t, values};
  });
}

function iso(seconds) { return new Date(seconds * 1000).toISOString(); }

async function rawRecords(stream, since) {
  const res = await api(`${BASE}/telemetry?stream=${stream}&limit=${LIMIT}&since=${encodeURIComponent(iso(since))}`);
  if (res.data.length) newest[stream] = res.data[res.data.length - 1];
  return res.data;
}

// Rollup buckets of the range: those already read are kept and only the last one (still
// filling) onwards is read again.
async function buckets(stream, resolution, since) {
  const key = stream + ":" + resolution, had = cache[key];
  const held = had && had.since <= since ? had.rows.filter(b => b.t >= since) : [];
  const from = held.length ? held[held.length - 1].t : since;
  const res = await api(`${BASE}/rollups?stream=${stream}&resolution=${resolution}` +
    `&limit=20000&since=${encodeURIComponent(iso(from))}`);
  const rows = held.filter(b => b.t < from).concat(fromBuckets(res.data));
  cache[key] = {since, rows};
  return rows;
}

// One stream's rows over the range, with {limited} when records were left out.
async function series(stream, plan, since) {
  if (plan.raw) {
    const records = await rawRecords(stream, since);
    if (records.length < LIMIT) return {rows: fromRecords(records), step: null, limited: false};
  }
  // Rollups, the newest bucket topped up from raw records: the worker folds once a minute.
  const step = RESOLUTION_STEP[plan.resolution];
  let rows = await buckets(stream, plan.resolution, since);
  const from = rows.length ? rows[rows.length - 1].t : since;
  const recent = await rawRecords(stream, from);
  let limited = !!plan.raw;
  if (recent.length < LIMIT || !rows.length) {
    rows = rows.filter(r => r.t < from).concat(binned(recent, step));
    if (recent.length >= LIMIT) limited = true;
  }
  return {rows, step, limited};
}

// Gaps: stretches between readings longer than the readings' usual spacing allows.
// Returns [rows with a null row in each gap (so the line breaks), seconds missing].
function withGaps(rows, step) {
  if (rows.length < 2) return [rows, 0];
  const spacings = rows.slice(1).map((r, i) => r.t - rows[i].t).sort((a, b) => a - b);
  const usual = spacings[Math.floor(spacings.length / 2)];
  const longest = step ? Math.max(2 * step, 3 * usual) : Math.max(3 * usual, 120);
  const out = [rows[0]];
  let missing = 0;
  for (let i = 1; i < rows.length; i++) {
    const gap = rows[i].t - rows[i - 1].t;
    if (gap >= longest) {
      missing += gap - (step || usual);
      out.push({t: rows[i - 1].t + (step || usual), values: {}});
    }
    out.push(rows[i]);
  }
  return [out, missing];
}

function span(seconds) {
  return seconds >= 5400 ? Math.round(seconds / 3600) + " h" : Math.max(1, Math.round(seconds / 60)) + " min";
}

function draw(spec, rows, since, now) {
  const el = document.getElementById(spec.id);
  if (charts[spec.id]) { charts[spec.id].destroy(); delete charts[spec.id]; }
  const all = new Set();
  for (const r of rows) for (const k of Object.keys(r.values)) all.add(k);
  const keys = spec.series.map(names => pick([...all], names)).filter(Boolean);
  // The chart's own readings, and the null rows that break its line at a gap.
  const shown = rows.filter(r => !Object.keys(r.values).length || keys.some(k => r.values[k] != null));
  el.dataset.points = "0";
  el.dataset.range = String(range);
  if (!keys.length) { el.innerHTML = `<p class="empty">${esc(T.no_data)}</p>`; return; }
  el.innerHTML = "";
  const xs = shown.map(r => r.t);
  const data = [xs, ...keys.map(k => shown.map(r => r.values[k] ?? null))];
  charts[spec.id] = new uPlot({
    width: Math.max(280, el.clientWidth || 320), height: 160, legend: {show: true},
    // Auto-scaled, the axis spans the chosen range (widened to any reading outside it):
    // uPlot gives one reading a span of 86400 "ms", 1000 days in seconds. A zoom stays.
    scales: {x: {time: true, range: (u, min, max) => {
      const lo = xs.length ? xs[0] : since, hi = xs.length ? xs[xs.length - 1] : now;
      const auto = min == null || (min === lo && (max === hi || lo === hi));
      return auto ? [Math.min(lo, since), Math.max(hi, now)] : [min, max];
    }}},
    series: [{}, ...keys.map((k, i) => ({label: k, stroke: COLOURS[i], width: 1.5}))],
  }, data, el);
  el.dataset.points = String(shown.filter(r => Object.keys(r.values).length).length);
}

function renderSources(latestTelemetry, latestHealth, stale) {
  const sources = Object.assign({}, latestHealth && latestHealth.sources, latestTelemetry && latestTelemetry.sources);
  const items = Object.entries(sources).map(([name, s]) => {
    const state = stale ? "stale" : s.state;
    return `<li class="${esc(state)}"><b>${esc(name)}</b>: ${esc(T[state] || state)}` +
      `${s.reason ? " — " + esc(s.reason) : ""}</li>`;
  });
  document.getElementById("sources").innerHTML = items.join("") || `<li>${esc(T.no_data)}</li>`;
}

function renderBacklog(h, stale) {
  const el = document.getElementById("backlog");
  if (!h) { el.textContent = T.no_data; return; }
  const m = h.metrics;
  el.textContent = `${m.outbox_depth ?? "?"} ${T.records}, ${Math.round((m.outbox_bytes || 0) / 1024)} KiB, ` +
    `${T.oldest} ${Math.round(m.outbox_oldest_age_s || 0)} s, ${T.dropped} ${m.outbox_dropped ?? 0}` +
    (stale ? ` (${T.stale})` : "");
  el.className = stale ? "stale" : "";
}

function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? prefix + "." + k : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = JSON.stringify(v);
  }
  return out;
}

async function renderConfig() {
  let twin;
  try { twin = await api(`${BASE}/config`); } catch (e) { return null; }
  const want = flatten(twin.effective || twin.desired), have = flatten(twin.reported);
  const keys = [...new Set([...Object.keys(want), ...Object.keys(have)])].sort();
  document.querySelector("#config tbody").innerHTML = keys.map(k => {
    const differs = k in want && want[k] !== have[k] && !k.startsWith("config_hash");
    return `<tr class="${differs ? "differs" : ""}"><th>${esc(k)}</th><td>${esc(want[k] ?? "")}</td>` +
      `<td>${esc(have[k] ?? "")}${differs ? ` <em>(${esc(T.differs)})</em>` : ""}</td></tr>`;
  }).join("");
  return twin;
}

async function renderTier(device) {
  document.getElementById("tier-req").textContent = device.tier_mbps ?? "–";
  const applied = document.getElementById("tier-applied");
  applied.textContent = device.tier_applied_mbps ?? "–";
  applied.className = device.tier_mbps != null && device.tier_applied_mbps === device.tier_mbps ? "ok" : "";
  const choice = document.getElementById("tier-choice");
  if (choice && !choice.options.length) {
    let catalogue = [{mbps: 100}, {mbps: 300}];
    try { catalogue = await api("/api/v1/tiers"); } catch (e) { /* default catalogue */ }
    for (const t of catalogue) choice.add(new Option(t.mbps + " Mbps", t.mbps));
  }
}

async function renderCommands() {
  let list;
  try { list = await api(`${BASE}/commands?limit=20`); } catch (e) { return; }
  document.querySelector("#commands tbody").innerHTML = list.data.map(c =>
    `<tr><td>${esc(c.name)}</td><td class="${esc(c.status)}">${esc(c.status)}</td>` +
    `<td><code>${esc(c.error || JSON.stringify(c.result || {}).slice(0, 160))}</code></td></tr>`).join("");
}

async function load() {
  const device = await api(BASE);
  document.getElementById("site").textContent = device.site + " · " + device.district;
  document.getElementById("agent-version").textContent = device.agent_version || "–";
  document.getElementById("clone-note").hidden = !device.clone_suspected_at;
  const badge = document.getElementById("state");
  badge.textContent = stateLabel(device.state);
  badge.className = "badge " + device.state;
  const stale = device.state !== "online";
  document.getElementById("stale-note").hidden = !stale;
  const mine = ++generation, shownRange = range, plan = PLANS[range];
  const now = Date.now() / 1000, since = now - range;
  const read = await Promise.all(["telemetry", "health"].map(s => series(s, plan, since)));
  if (mine !== generation || shownRange !== range) return device;  // a newer load draws
  const streams = {};
  let missing = 0, limited = false;
  read.forEach((s, i) => {
    const [rows, lost] = withGaps(s.rows, s.step);
    streams[i ? "health" : "telemetry"] = rows;
    missing = Math.max(missing, lost);
    limited = limited || s.limited;
  });
  for (const spec of CHARTS) draw(spec, streams[spec.stream], since, now);
  const note = document.getElementById("range-note");
  const parts = [];
  if (missing) parts.push(`${T.gaps_note} ${span(missing)}.`);
  if (limited) parts.push(T.limit_note);
  note.textContent = parts.join(" ");
  note.hidden = !parts.length;
  renderSources(newest.telemetry, newest.health, stale);
  renderBacklog(newest.health, stale);
  await Promise.all([renderTier(device), renderConfig(), renderCommands()]);
  document.body.dataset.loaded = "1";
  return device;
}

async function changeTier() {
  const mbps = Number(document.getElementById("tier-choice").value);
  if (!confirm(`${T.confirm_tier} ${mbps} Mbps?`)) return;
  const status = document.getElementById("tier-status");
  try {
    await api(`${BASE}/tier`, {method: "PUT", body: {mbps}});
  } catch (e) {
    status.textContent = e.status === 403 ? T.not_permitted : e.message;
    return;
  }
  status.textContent = T.applying;
  status.className = "pending";
  for (let i = 0; i < 120; i++) {
    await new Promise(r => setTimeout(r, 1000));
    const device = await api(BASE);
    await renderTier(device);
    if (device.tier_applied_mbps === mbps) {
      status.textContent = `${T.tier_applied}: ${mbps} Mbps`;
      status.className = "ok";
      renderConfig();
      return;
    }
  }
}

async function sendCommand() {
  const name = document.getElementById("cmd-name").value;
  let args = {};
  if (name === "ping") args = {host: prompt("host", "8.8.8.8") || "127.0.0.1"};
  try {
    await api(`${BASE}/commands`, {method: "POST", body: {name, args}});
  } catch (e) { alert(e.status === 403 ? T.not_permitted : e.message); }
  renderCommands();
}

document.querySelectorAll(".ranges button").forEach(b => b.addEventListener("click", () => {
  document.querySelectorAll(".ranges button").forEach(x => x.classList.remove("on"));
  b.classList.add("on");
  range = Number(b.dataset.range);
  load();
}));
const tierButton = document.getElementById("tier-change");
if (tierButton) tierButton.addEventListener("click", changeTier);
const cmdButton = document.getElementById("cmd-send");
if (cmdButton) cmdButton.addEventListener("click", sendCommand);
load();
setInterval(load, 15000);
