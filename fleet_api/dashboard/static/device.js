// Point page: charts over 1 h / 24 h / 7 d, statuses, backlog, config diff, tier, commands.
"use strict";
const ID = document.getElementById("point").dataset.device;
const BASE = "/api/v1/devices/" + encodeURIComponent(ID);
let range = 3600;
let charts = {};

// Metric names are bare ("pm2_5") or prefixed by the collector's name ("air_pm2_5").
function pick(record, names) {
  for (const name of names) {
    for (const key of Object.keys(record.metrics)) {
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

function draw(spec, records) {
  const el = document.getElementById(spec.id);
  if (charts[spec.id]) { charts[spec.id].destroy(); delete charts[spec.id]; }
  const keys = spec.series.map(names => records.length ? pick(records[records.length - 1], names) : null)
    .filter(Boolean);
  el.dataset.points = "0";
  if (!keys.length) { el.innerHTML = `<p class="empty">${esc(T.no_data)}</p>`; return; }
  el.innerHTML = "";
  const xs = records.map(r => Date.parse(r.ts) / 1000);
  const data = [xs, ...keys.map(k => records.map(r => r.metrics[k] ?? null))];
  charts[spec.id] = new uPlot({
    width: Math.max(280, el.clientWidth || 320), height: 160, legend: {show: true},
    series: [{}, ...keys.map((k, i) => ({label: k, stroke: COLOURS[i], width: 1.5}))],
  }, data, el);
  el.dataset.points = String(xs.length);
}

async function telemetry(stream) {
  const since = new Date(Date.now() - range * 1000).toISOString();
  const res = await api(`${BASE}/telemetry?stream=${stream}&limit=10000&since=${encodeURIComponent(since)}`);
  return res.data;
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
  const [tel, health] = await Promise.all([telemetry("telemetry"), telemetry("health")]);
  for (const spec of CHARTS) draw(spec, spec.stream === "health" ? health : tel);
  renderSources(tel[tel.length - 1], health[health.length - 1], stale);
  renderBacklog(health[health.length - 1], stale);
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
