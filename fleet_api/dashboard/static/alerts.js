// Alerts: the open list, kept live over Server-Sent Events, with acknowledge.
"use strict";
async function load() {
  const list = await api("/api/v1/alerts?limit=500");
  document.querySelector("#alerts tbody").innerHTML = list.data
    .filter(a => a.status !== "resolved")
    .map(a => `<tr id="alert-${a.id}" class="${esc(a.severity)} ${esc(a.status)}">` +
      `<td>${esc(a.severity)}</td><td><a href="/devices/${encodeURIComponent(a.device_id)}">${esc(a.device_id)}</a></td>` +
      `<td>${esc(a.message)}</td><td title="${esc(a.opened_at)}">${esc(ago(a.opened_at))}</td>` +
      `<td>${a.acked_by ? "✓ " + esc(a.acked_by) : (may("operator") ?
        `<button data-ack="${a.id}">${esc(T.acknowledge)}</button>` : "")}</td></tr>`).join("");
  document.body.dataset.loaded = "1";
}

document.querySelector("#alerts").addEventListener("click", async ev => {
  const id = ev.target.dataset && ev.target.dataset.ack;
  if (!id) return;
  await api(`/api/v1/alerts/${id}/ack`, {method: "POST"});
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
