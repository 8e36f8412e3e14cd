// Alerts: the open list, kept live over Server-Sent Events, with acknowledge.
"use strict";
// The alerts API caps `limit` at 5000 (asking for more is a 422) and has no offset: the
// page lists the newest ALERT_CAP open alerts and says so when there are more (`count`).
const ALERT_CAP = 5000;
let loading = 0;

function note(id, text) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.hidden = !text;
}

function row(a) {
  return `<tr id="alert-${a.id}" data-id="${a.id}" class="${esc(a.severity)} ${esc(a.status)}">` +
    `<td>${esc(a.severity)}</td><td><a href="/devices/${encodeURIComponent(a.device_id)}">${esc(a.device_id)}</a></td>` +
    `<td>${esc(a.message)}</td><td title="${esc(a.opened_at)}">${esc(ago(a.opened_at))}</td>` +
    `<td>${a.acked_by ? "✓ " + esc(a.acked_by) : (may("operator") ?
      `<button data-ack="${a.id}">${esc(T.acknowledge)}</button>` : "")}</td></tr>`;
}

async function load() {
  const mine = ++loading;
  let list = null, error = null;
  try {
    list = await api(`/api/v1/alerts?status=open&limit=${ALERT_CAP}`);
  } catch (e) { error = e; }
  if (mine !== loading) return;  // a newer load has started: its list wins
  const count = document.getElementById("n-open");
  // Never an old list or a 0 for a list that could not be read.
  document.querySelector("#alerts tbody").innerHTML = error ? "" : list.data.map(row).join("");
  count.textContent = error ? T.figure_unknown : list.count;
  count.classList.toggle("unknown-figure", !!error);
  note("load-error", error ? `${T.load_failed} ${T.alerts}: ${error.message}` : "");
  note("alerts-note", !error && list.data.length < list.count ?
    T.newest_of.replace("{shown}", list.data.length).replace("{count}", list.count) : "");
  document.body.dataset.loaded = "1";
}

document.querySelector("#alerts").addEventListener("click", async ev => {
  const id = ev.target.dataset && ev.target.dataset.ack;
  if (!id) return;
  try {
    await api(`/api/v1/alerts/${id}/ack`, {method: "POST"});
  } catch (e) {
    note("load-error", `${T.acknowledge}: ${e.status === 403 ? T.not_permitted : e.message}`);
    return;
  }
  load();
});

const events = new EventSource("/api/v1/events");
const live = document.getElementById("live");
events.onopen = () => live.classList.add("on");
events.onerror = () => live.classList.remove("on");
for (const kind of ["alert.opened", "alert.resolved", "alert.acknowledged"]) {
  events.addEventListener(kind, load);
}
load();
