// Fleet overview: counts, a sortable and filterable table, and an SVG map (no tiles).
"use strict";
// The APIs' caps on `limit` (fleet_api/api/routes/devices.py, alerts.py): asking for
// more is a 422, not a longer page. Devices page with `offset`; alerts have no offset,
// so their total comes from `count` and the rings cover the newest ALERT_CAP only.
const DEVICE_PAGE = 10000;
const ALERT_CAP = 5000;
let devices = [];
let alerting = new Set();
let loading = 0;
let sortKey = "device_id", sortDir = 1;
const filters = ["district", "kind", "tier", "status"];

function fill(select, values) {
  const keep = select.value;
  for (const v of [...new Set(values)].filter(v => v !== null && v !== undefined).sort()) {
    if (![...select.options].some(o => o.value === String(v))) {
      select.add(new Option(v, v));
    }
  }
  select.value = keep;
}

function visible() {
  const f = Object.fromEntries(filters.map(k => [k, document.getElementById("f-" + k).value]));
  return devices.filter(d =>
    (!f.district || d.district === f.district) && (!f.kind || d.kind === f.kind) &&
    (!f.tier || String(d.tier_mbps) === f.tier) && (!f.status || d.state === f.status));
}

function renderTable(rows) {
  rows.sort((a, b) => {
    const x = a[sortKey] ?? "", y = b[sortKey] ?? "";
    return (x > y ? 1 : x < y ? -1 : 0) * sortDir;
  });
  const html = rows.map(d => {
    const tier = d.tier_mbps == null ? "–" :
      d.tier_mbps + (d.tier_applied_mbps === d.tier_mbps ? " ✓" : " → " + (d.tier_applied_mbps ?? "?"));
    return `<tr data-id="${esc(d.device_id)}" class="${d.state}${alerting.has(d.device_id) ? " alerting" : ""}">` +
      `<td><a href="/devices/${encodeURIComponent(d.device_id)}">${esc(d.device_id)}</a></td>` +
      `<td>${esc(d.site)}</td><td>${esc(d.district)}</td><td>${esc(d.kind)}</td>` +
      `<td>${esc(tier)}</td><td><span class="badge ${d.state}">${esc(stateLabel(d.state))}</span></td>` +
      `<td title="${esc(d.last_seen || "")}">${esc(ago(d.last_seen))}</td></tr>`;
  }).join("");
  document.querySelector("#points tbody").innerHTML = html;
  document.getElementById("shown").textContent = rows.length + " " + T.points_word;
}

function renderMap(rows) {
  const svg = document.getElementById("map");
  if (!rows.length) { svg.innerHTML = ""; return; }
  const lats = rows.map(d => d.lat), lons = rows.map(d => d.lon);
  const minLat = Math.min(...lats), maxLat = Math.max(...lats);
  const minLon = Math.min(...lons), maxLon = Math.max(...lons);
  const span = Math.max(maxLat - minLat, maxLon - minLon, 0.001);
  const x = lon => 20 + (lon - minLon) / span * 360;
  const y = lat => 380 - (lat - minLat) / span * 360;
  svg.innerHTML = rows.map(d =>
    `<a href="/devices/${encodeURIComponent(d.device_id)}"><circle cx="${x(d.lon).toFixed(1)}" ` +
    `cy="${y(d.lat).toFixed(1)}" r="5" data-id="${esc(d.device_id)}" ` +
    `class="${d.state}${alerting.has(d.device_id) ? " alerting" : ""}">` +
    `<title>${esc(d.device_id)} — ${esc(d.site)} (${esc(stateLabel(d.state))})</title></circle></a>`
  ).join("");
}

function render() {
  const rows = visible();
  renderTable(rows);
  renderMap(rows);
}

async function allDevices() {
  const seen = new Map();  // by id: a point registered between pages is not listed twice
  let offset = 0, count = 0;
  do {
    const page = await api(`/api/v1/devices?limit=${DEVICE_PAGE}&offset=${offset}`);
    count = page.count;
    if (!page.data.length) break;
    for (const d of page.data) seen.set(d.device_id, d);
    offset += page.data.length;
  } while (offset < count);
  return [...seen.values()];
}

function figure(id, value, error) {
  const el = document.getElementById(id);
  el.textContent = error ? T.figure_unknown : value;
  el.classList.toggle("unknown-figure", !!error);
  el.title = error ? T.load_failed + ": " + error.message : "";
}

function note(id, text) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.hidden = !text;
}

async function load() {
  const mine = ++loading;
  const [list, open] = await Promise.allSettled([
    allDevices(), api(`/api/v1/alerts?status=open&limit=${ALERT_CAP}`)]);
  if (mine !== loading) return;  // a newer load has started: its figures win
  const devErr = list.status === "rejected" ? list.reason : null;
  const alertErr = open.status === "rejected" ? open.reason : null;
  // Never a stale or made-up figure: what could not be read is shown as unknown.
  devices = devErr ? [] : list.value;
  alerting = alertErr ? new Set() : new Set(open.value.data.map(a => a.device_id));
  for (const s of ["online", "offline", "unknown"]) {
    figure("n-" + s, devices.filter(d => d.state === s).length, devErr);
  }
  figure("n-alerting", alertErr ? 0 : open.value.count, alertErr);
  if (!alertErr) document.getElementById("n-alerting").title = alerting.size + " " + T.points_word;
  note("load-error", [[devErr, T.points], [alertErr, T.alerts]].filter(([e]) => e)
    .map(([e, what]) => `${T.load_failed} ${what}: ${e.message}`).join(" · "));
  note("rings-note", alertErr ? `${T.alerts}: ${T.figure_unknown}` :
    open.value.data.length < open.value.count ? `${T.alerts}: ` +
      T.newest_of.replace("{shown}", open.value.data.length).replace("{count}", open.value.count)
      : "");
  fill(document.getElementById("f-district"), devices.map(d => d.district));
  fill(document.getElementById("f-kind"), devices.map(d => d.kind));
  fill(document.getElementById("f-tier"), devices.map(d => d.tier_mbps));
  render();
  document.body.dataset.loaded = "1";
}

for (const k of filters) document.getElementById("f-" + k).addEventListener("change", render);
document.querySelectorAll("#points th").forEach(th => th.addEventListener("click", () => {
  const key = th.dataset.key;
  sortDir = key === sortKey ? -sortDir : 1;
  sortKey = key;
  render();
}));
load();
setInterval(load, 15000);
