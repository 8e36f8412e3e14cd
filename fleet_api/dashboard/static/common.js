// Shared helpers: strings, API calls with the session cookie, role-gated controls.
"use strict";
const T = JSON.parse(document.getElementById("i18n").textContent);
const ROLES = ["viewer", "technician", "operator", "admin"];
const ROLE = document.body.dataset.role || "viewer";

function may(role) { return ROLES.indexOf(ROLE) >= ROLES.indexOf(role); }

// The API still enforces roles; this only hides what this role may not do.
for (const role of ["technician", "operator", "admin"]) {
  if (!may(role)) document.querySelectorAll(".needs-" + role).forEach(el => el.remove());
}

async function api(path, options = {}) {
  const init = Object.assign({credentials: "same-origin", headers: {}}, options);
  if (init.body && typeof init.body !== "string") {
    init.body = JSON.stringify(init.body);
    init.headers["content-type"] = "application/json";
  }
  const res = await fetch(path, init);
  if (res.status === 401) { location.href = "/"; throw new Error("signed out"); }
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((body && body.detail && JSON.stringify(body.detail)) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g,
    c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
}

function ago(iso) {
  if (!iso) return T.never;
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function stateLabel(state) { return T[state] || state; }
