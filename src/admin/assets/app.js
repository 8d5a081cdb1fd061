// The /admin/s3-proxy page: the merged credential view from /api/v1, filters, and the
// actions on SQLite rows. Vanilla JS, served from the binary; every value is written
// with textContent (never parsed as HTML).
"use strict";

const csrf = document.querySelector('meta[name="stowage-csrf"]').content;
let nextCursor = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

function status(text, isError) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Stowage-CSRF": csrf } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    window.location.reload();
    throw new Error("signed out");
  }
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) {
    const e = (data && data.error) || {};
    const field = e.field ? ` (${e.field})` : "";
    throw new Error(`${e.message || r.statusText}${field}`);
  }
  return data;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

function quotaText(b) {
  const parts = [b.bucket + (b.pattern ? " (pattern)" : "") + ":"];
  if (b.quota) {
    const q = b.quota;
    const caps = [];
    if (q.hard_bytes !== null) caps.push(`hard ${fmtBytes(q.hard_bytes)}`);
    if (q.soft_bytes !== null) caps.push(`soft ${fmtBytes(q.soft_bytes)}`);
    if (q.max_objects !== null) caps.push(`max ${q.max_objects} objects`);
    parts.push(`${caps.join(", ")} [${q.source}]`);
  } else if (!b.pattern) {
    parts.push("no quota");
  }
  if (b.usage) {
    const u = b.usage;
    parts.push(u.known ? `used ${fmtBytes(u.bytes)}, ${u.objects} objects` : "usage not yet measured");
  }
  return parts.join(" ");
}

function scopeText(s) {
  return s.prefix ? `${s.bucket}:${s.access}:${s.prefix}` : `${s.bucket}:${s.access}`;
}

function actionButton(action, label, ak, run) {
  const b = el("button", { type: "button", "data-action": action }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await run(ak);
    } catch (e) {
      status(`${label} ${ak}: ${e.message}`, true);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function actions(c) {
  if (!c.editable) {
    const k = c.kubernetes || {};
    return el("span", { class: "managed" }, `managed by claim ${k.namespace}/${k.name}`);
  }
  const cell = el("span", {});
  if (c.enabled) cell.append(actionButton("disable", "Disable", c.access_key_id, (ak) => setEnabled(ak, false)));
  else cell.append(actionButton("enable", "Enable", c.access_key_id, (ak) => setEnabled(ak, true)));
  cell.append(actionButton("rotate", "Rotate secret", c.access_key_id, rotate));
  cell.append(actionButton("delete", "Delete", c.access_key_id, remove));
  return cell;
}

function row(c) {
  const label = c.source === "kubernetes" && c.kubernetes
    ? `kubernetes ${c.kubernetes.namespace}/${c.kubernetes.name}` : c.source;
  const tr = el("tr", { "data-ak": c.access_key_id, "data-source": c.source, "data-enabled": String(c.enabled) },
    el("td", {}, el("code", {}, c.access_key_id)),
    el("td", {}, el("span", { class: `source source-${c.source}` }, label)),
    el("td", {}, c.backend),
    el("td", {}, ...c.scopes.map((s) => el("div", {}, scopeText(s)))),
    el("td", {}, c.expires_at ? c.expires_at + (c.expired ? " (expired)" : "") : "never"),
    el("td", { class: "enabled" }, c.enabled ? "yes" : "no"),
    el("td", {}, ...c.buckets.map((b) => el("div", {}, quotaText(b)))),
    el("td", {}, c.description),
    el("td", { class: "actions" }, actions(c)));
  if (!c.enabled) tr.classList.add("disabled-row");
  return tr;
}

function query(cursor) {
  const p = new URLSearchParams();
  const source = document.getElementById("filter-source").value;
  const backend = document.getElementById("filter-backend").value;
  const bucket = document.getElementById("filter-bucket").value.trim();
  if (source) p.set("source", source);
  if (backend) p.set("backend", backend);
  if (bucket) p.set("bucket", bucket);
  if (cursor) p.set("cursor", cursor);
  return p.toString();
}

async function load(append) {
  const tbody = document.querySelector("#credentials tbody");
  try {
    const page = await api("GET", `/api/v1/credentials?${query(append ? nextCursor : null)}`);
    if (!append) tbody.replaceChildren();
    for (const c of page.credentials) tbody.append(row(c));
    nextCursor = page.next_cursor;
    document.getElementById("load-more").hidden = !nextCursor;
    if (!append) status(`${tbody.rows.length} credential(s) shown`, false);
  } catch (e) {
    status(`Cannot load credentials: ${e.message}`, true);
  }
}

async function setEnabled(ak, enabled) {
  await api("PATCH", `/api/v1/credentials/${encodeURIComponent(ak)}`, { enabled });
  status(`${ak} ${enabled ? "enabled" : "disabled"}`, false);
  await load(false);
}

function showSecret(ak, secret) {
  document.getElementById("secret-ak").textContent = ak;
  document.getElementById("secret-value").textContent = secret;
  document.getElementById("secret-box").hidden = false;
}

async function rotate(ak) {
  if (!window.confirm(`Rotate the secret of ${ak}? The old secret stops working.`)) return;
  const r = await api("POST", `/api/v1/credentials/${encodeURIComponent(ak)}/rotate-secret`);
  showSecret(r.access_key_id, r.secret_access_key);
  await load(false);
}

async function remove(ak) {
  if (!window.confirm(`Delete ${ak}? Clients using it are refused at once.`)) return;
  await api("DELETE", `/api/v1/credentials/${encodeURIComponent(ak)}`);
  status(`${ak} deleted`, false);
  await load(false);
}

function parseScopes(text) {
  return text.split("\n").map((l) => l.trim()).filter((l) => l).map((l) => {
    const [bucket, access, ...prefix] = l.split(":");
    const s = { bucket, access: access || "read-write" };
    if (prefix.length) s.prefix = prefix.join(":");
    return s;
  });
}

async function create(ev) {
  ev.preventDefault();
  const body = {
    backend: document.getElementById("create-backend").value,
    scopes: parseScopes(document.getElementById("create-scopes").value),
    description: document.getElementById("create-description").value,
  };
  const expires = document.getElementById("create-expires").value.trim();
  if (expires) body.expires_in = expires;
  try {
    const r = await api("POST", "/api/v1/credentials", body);
    showSecret(r.access_key_id, r.secret_access_key);
    document.getElementById("create-form").reset();
    status(`${r.access_key_id} created`, false);
    await load(false);
  } catch (e) {
    status(`Cannot create: ${e.message}`, true);
  }
}

async function backends() {
  try {
    const r = await api("GET", "/api/v1/backends");
    for (const id of r.backends) {
      document.getElementById("filter-backend").append(el("option", { value: id }, id));
      document.getElementById("create-backend").append(el("option", { value: id }, id));
    }
  } catch (e) {
    status(`Cannot load backends: ${e.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
  document.getElementById("load-more").addEventListener("click", () => load(true));
  document.getElementById("create-form").addEventListener("submit", create);
  document.getElementById("secret-dismiss").addEventListener("click", () => {
    document.getElementById("secret-value").textContent = "";
    document.getElementById("secret-box").hidden = true;
  });
  await backends();
  await load(false);
});
