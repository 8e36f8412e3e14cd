// Tiers: the upgrade report (p95 use per point over 7 days) and a staged rollout control.
"use strict";
async function load() {
  let report = {data: []};
  try { report = await api("/api/v1/reports/upgrade?days=7"); } catch (e) { /* no report yet */ }
  document.querySelector("#report tbody").innerHTML = report.data.map(r =>
    `<tr><td><a href="/devices/${encodeURIComponent(r.device_id)}">${esc(r.device_id)}</a></td>` +
    `<td>${esc(r.district)}</td><td>${esc(r.tier_mbps)}</td>` +
    `<td>${r.p95_use == null ? "–" : Math.round(r.p95_use * 100) + " %"}` +
    `${r.p95_rx_mbps == null ? "" : " (" + r.p95_rx_mbps.toFixed(1) + " Mbps)"}</td></tr>`).join("") ||
    `<tr><td colspan="4">${esc(T.no_data)}</td></tr>`;
  const groups = document.getElementById("ro-district");
  if (groups && !groups.options.length) {
    try { for (const g of await api("/api/v1/groups")) groups.add(new Option(g.name, g.name)); } catch (e) { /* none */ }
    let catalogue = [{mbps: 100}, {mbps: 300}];
    try { catalogue = await api("/api/v1/tiers"); } catch (e) { /* default */ }
    for (const t of catalogue) document.getElementById("ro-tier").add(new Option(t.mbps + " Mbps", t.mbps));
  }
  document.body.dataset.loaded = "1";
}

const start = document.getElementById("ro-start");
if (start) start.addEventListener("click", async () => {
  const group = document.getElementById("ro-district").value;
  const mbps = Number(document.getElementById("ro-tier").value);
  const status = document.getElementById("ro-status");
  try {
    const g = await api(`/api/v1/groups/${encodeURIComponent(group)}/tier`,
                        {method: "PUT", body: {mbps, rollout: {stage_size: 5}}});
    status.textContent = `rollout #${g.rollout_id ?? "?"}: ${group} → ${mbps} Mbps`;
  } catch (e) { status.textContent = e.status === 403 ? T.not_permitted : e.message; }
});
load();
