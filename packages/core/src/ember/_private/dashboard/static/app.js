// Ember dashboard: polls the JSON API (app.py) and renders it. No framework, no
// build step; data is only ever inserted as text (textContent), never as HTML.
"use strict";

const POLL_MS = 1500;
const LOG_LIST_EVERY = 4;          // refresh the list of logs every 4th poll

// ------------------------------------------------------------------ helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k === "title") node.title = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function fmtNum(x) {
  return Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 2 : 1).replace(/\.?0+$/, "");
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  const m = Math.floor(s / 60), sec = Math.floor(s % 60);
  if (m < 60) return `${m}m ${sec}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "–";
}

function short(id, n = 8) {
  return id ? String(id).slice(0, n) : "–";
}

function fmtResources(res) {
  const parts = Object.entries(res || {}).filter(([, v]) => v)
    .map(([k, v]) => (k.includes("memory") ? `${k} ${fmtBytes(v)}` : `${k} ${fmtNum(v)}`));
  return parts.length ? parts.join(", ") : "–";
}

function badge(state) {
  return el("span", {class: "state state-" + state, "data-state": state}, state);
}

function replaceRows(tbody, rows, emptyText, columns) {
  tbody.replaceChildren(...(rows.length ? rows
    : [el("tr", {class: "empty"}, el("td", {colSpan: columns}, emptyText))]));
}

async function getJSON(path) {
  const reply = await fetch(path, {credentials: "same-origin", cache: "no-store"});
  if (reply.status === 401) throw new Error(
    "not authorized: open this page once as …/?token=<cluster token>");
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error || reply.statusText);
  return body;
}

// ------------------------------------------------------------------ overview
function bar(label, used, total, fmt) {
  const pct = total > 0 ? Math.min(100, (100 * used) / total) : 0;
  const fill = el("div", {class: "bar-fill" + (pct > 90 ? " hot" : "")});
  fill.style.width = pct.toFixed(1) + "%";
  return el("div", {class: "bar-row", "data-resource": label},
    el("span", {class: "bar-label"}, label),
    el("div", {class: "bar"}, fill),
    el("span", {class: "bar-value"}, `${fmt(used)} / ${fmt(total)}`));
}

function resourceBars(node) {
  const out = [];
  const r = node.resources || {};
  if (r.CPU) out.push(bar("CPU", r.CPU.used, r.CPU.total, fmtNum));
  if (r.GPU) out.push(bar("GPU", r.GPU.used, r.GPU.total, fmtNum));
  if (r.memory) out.push(bar("Memory (logical)", r.memory.used, r.memory.total, fmtBytes));
  if (node.machine_memory) out.push(bar("Memory (machine)", node.machine_memory.used,
                                        node.machine_memory.total, fmtBytes));
  const store = node.object_store || {};
  if (store.capacity_bytes) out.push(bar("Object store", store.used_bytes,
                                         store.capacity_bytes, fmtBytes));
  for (const [k, u] of Object.entries(node.custom_resources || {})) {
    if (u) out.push(bar(k, u.used, u.total, fmtNum));
  }
  return out;
}

function renderNode(node) {
  const store = node.object_store || {};
  const facts = [
    `${node.workers} workers (${node.idle_workers} idle)`,
    `${store.num_objects} objects in store`,
  ];
  if (store.spilled_bytes) facts.push(`${fmtBytes(store.spilled_bytes)} spilled`);
  if (node.pending_leases) facts.push(`${node.pending_leases} pending leases`);
  const card = el("div", {class: "node-card", "data-node-id": node.node_id,
                          "data-state": node.state},
    el("div", {class: "node-head"},
      el("span", {class: "node-id", title: node.node_id}, short(node.node_id, 12)),
      node.is_head ? el("span", {class: "tag"}, "head") : null,
      el("span", {class: "muted"}, node.address),
      badge(node.state)),
    ...resourceBars(node),
    el("div", {class: "node-facts muted"}, facts.join(" · ")));
  if (node.infeasible && node.infeasible.length) {
    card.append(el("div", {class: "warn"}, "Infeasible: " + node.infeasible.join("; ")));
  }
  return card;
}

function countsText(counts) {
  const entries = Object.entries(counts || {});
  return entries.length ? entries.map(([k, v]) => `${v} ${k}`).join(", ") : "none";
}

function card(title, value, detail) {
  return el("div", {class: "card"},
    el("div", {class: "card-title"}, title),
    el("div", {class: "card-value"}, value),
    detail ? el("div", {class: "card-detail muted"}, detail) : null);
}

function renderCluster(c) {
  document.getElementById("cluster-address").textContent = c.address;
  const t = c.totals || {};
  const cards = [
    card("Nodes", String(c.nodes_alive), c.nodes_dead ? `${c.nodes_dead} dead` : "all alive"),
  ];
  for (const [key, label] of [["CPU", "CPU"], ["GPU", "GPU"]]) {
    if (t[key]) cards.push(card(label, `${fmtNum(t[key].used)} / ${fmtNum(t[key].total)}`,
                               "in use / total"));
  }
  if (t.memory) cards.push(card("Memory", `${fmtBytes(t.memory.used)} / ${fmtBytes(t.memory.total)}`,
                               "logical, in use / total"));
  const s = c.object_store || {};
  cards.push(card("Object store", fmtBytes(s.used_bytes || 0),
                  s.capacity_bytes ? `of ${fmtBytes(s.capacity_bytes)}` : ""));
  cards.push(card("Actors", String(Object.values(c.actors).reduce((a, b) => a + b, 0)),
                  countsText(c.actors)));
  cards.push(card("Tasks", String(Object.values(c.tasks).reduce((a, b) => a + b, 0)),
                  countsText(c.tasks)));
  cards.push(card("Jobs", String(Object.values(c.jobs).reduce((a, b) => a + b, 0)),
                  countsText(c.jobs)));
  document.getElementById("summary-cards").replaceChildren(...cards);
  document.getElementById("nodes").replaceChildren(...c.nodes.map(renderNode));
}

// ------------------------------------------------------------------ tables
function renderActors(data) {
  const rows = data.actors.map((a) => el("tr", {
      class: "actor", "data-actor-id": a.actor_id, "data-class": a.class_name,
      "data-state": a.state},
    el("td", {class: "strong"}, a.class_name),
    el("td", null, a.name || "–"),
    el("td", null, badge(a.state)),
    el("td", {class: "mono", title: a.actor_id}, short(a.actor_id, 12)),
    el("td", {class: "mono", title: a.node_id || ""}, short(a.node_id)),
    el("td", null, a.pid || "–"),
    el("td", null, a.num_restarts ?? 0),
    el("td", null, fmtResources(a.required_resources)),
    el("td", {class: "error-text", title: a.death_cause || ""}, a.death_cause || ""),
    el("td", null, a.pid && a.node_id && a.state !== "DEAD"
      ? el("button", {class: "link", onclick: () => openWorkerLog(a.node_id, a.pid)}, "log")
      : "")));
  document.getElementById("actors-count").textContent = `${data.actors.length}`;
  replaceRows(document.getElementById("actors-body"), rows, "No actors.", 10);
}

function renderTasks(data) {
  const rows = data.tasks.map((t) => el("tr", {
      class: "task", "data-task-id": t.task_id, "data-name": t.name, "data-state": t.state},
    el("td", {class: "strong"}, t.name),
    el("td", null, badge(t.state)),
    el("td", {class: "muted"}, t.type),
    el("td", null, fmtDuration(t.duration_s)),
    el("td", {class: "mono", title: t.node_id || ""}, short(t.node_id)),
    el("td", null, t.worker_pid || "–"),
    el("td", {class: "mono small", title: t.task_id}, t.task_id),
    el("td", null, t.attempt_number),
    el("td", {class: "error-text", title: t.error ? t.error.message : ""},
       t.error ? (t.error.type || "error") : "")));
  const shown = data.tasks.length;
  document.getElementById("tasks-count").textContent =
    shown < data.total ? `${shown} newest of ${data.total}` : `${data.total}`;
  replaceRows(document.getElementById("tasks-body"), rows, "No tasks yet.", 9);
}

function renderJobs(data) {
  const rows = data.jobs.map((j) => el("tr", {class: "job", "data-job-id": j.job_id,
                                            "data-state": j.status},
    el("td", {class: "mono"}, j.job_id),
    el("td", null, badge(j.status)),
    el("td", {class: "mono ellipsis", title: j.entrypoint || ""}, j.entrypoint || "–"),
    el("td", null, (j.driver_info && j.driver_info.pid) || "–"),
    el("td", {class: "mono"}, short(j.driver_node_id)),
    el("td", null, fmtTime(j.start_time)),
    el("td", null, fmtDuration(j.duration_s))));
  document.getElementById("jobs-count").textContent = `${data.jobs.length}`;
  replaceRows(document.getElementById("jobs-body"), rows, "No jobs.", 7);
}

function renderPlacementGroups(data) {
  const rows = data.placement_groups.map((g) => el("tr", {
      class: "pg", "data-pg-id": g.placement_group_id, "data-state": g.state},
    el("td", {class: "mono", title: g.placement_group_id}, short(g.placement_group_id, 12)),
    el("td", null, g.name || "–"),
    el("td", null, badge(g.state)),
    el("td", null, g.bundles.map((b) =>
      `#${b.index} ${fmtResources(b.resources)} @ ${short(b.node_id)}`).join("; ") || "–"),
    el("td", null, g.is_detached ? "yes" : "no")));
  document.getElementById("pgs-count").textContent = `${data.placement_groups.length}`;
  replaceRows(document.getElementById("pgs-body"), rows, "No placement groups.", 5);
}

// ------------------------------------------------------------------ logs
const logState = {sources: [], key: ""};

function sourceKey(s) {
  return s.pid ? `${s.node_id}|pid|${s.pid}` : `${s.node_id}|name|${s.name}`;
}

function renderLogSources(data) {
  const select = document.getElementById("log-source");
  logState.sources = data.logs;
  const previous = select.value || logState.key;
  const options = [el("option", {value: ""}, "— pick a log —")];
  for (const s of data.logs) {
    options.push(el("option", {value: sourceKey(s)},
                    `${s.label} · node ${short(s.node_id)} (${fmtBytes(s.size)})`));
  }
  select.replaceChildren(...options);
  select.value = data.logs.some((s) => sourceKey(s) === previous) ? previous : "";
}

function openWorkerLog(nodeId, pid) {
  logState.key = `${nodeId}|pid|${pid}`;
  const select = document.getElementById("log-source");
  if (![...select.options].some((o) => o.value === logState.key)) {
    select.append(el("option", {value: logState.key}, `worker pid ${pid} · node ${short(nodeId)}`));
  }
  select.value = logState.key;
  document.getElementById("logs").scrollIntoView();
  refreshLog();
}

async function refreshLog() {
  const key = document.getElementById("log-source").value;
  logState.key = key;
  const pre = document.getElementById("log-text");
  const info = document.getElementById("log-info");
  if (!key) return;
  const [nodeId, kind, what] = key.split("|");
  const params = new URLSearchParams({node_id: nodeId,
                                      tail: document.getElementById("log-tail").value});
  if (kind === "pid") {
    params.set("pid", what);
    params.set("err", document.getElementById("log-stream").value);
  } else {
    params.set("name", what);
  }
  try {
    const data = await getJSON("/api/logs?" + params);
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
    pre.textContent = data.text || "(empty)";
    if (atBottom) pre.scrollTop = pre.scrollHeight;
    info.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    info.textContent = String(e.message || e);
  }
}

// ------------------------------------------------------------------ polling
let tick = 0;

function setStatus(ok, text) {
  const s = document.getElementById("status");
  s.dataset.state = ok ? "ok" : "error";
  s.textContent = text;
}

async function poll() {
  const jobs = [
    getJSON("/api/cluster").then(renderCluster),
    getJSON("/api/actors").then(renderActors),
    getJSON("/api/tasks").then(renderTasks),
    getJSON("/api/jobs").then(renderJobs),
    getJSON("/api/placement_groups").then(renderPlacementGroups),
  ];
  if (tick % LOG_LIST_EVERY === 0) jobs.push(getJSON("/api/logs").then(renderLogSources));
  if (logState.key) jobs.push(refreshLog());
  const results = await Promise.allSettled(jobs);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) setStatus(false, String(failed.reason.message || failed.reason));
  else setStatus(true, `live · updated ${new Date().toLocaleTimeString()}`);
  document.body.dataset.polls = String(++tick);
  setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["log-source", "log-stream", "log-tail"]) {
    document.getElementById(id).addEventListener("change", refreshLog);
  }
  poll();
});
