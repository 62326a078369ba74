// The status page: polls /api/status about once a second, derives message rates from the
// counters between two polls, and draws the jobs table and one throughput plot per job.
// No framework, no build step. A token (when the API asks for one) is given once as
// http://host:port/#token=... and kept in this tab's sessionStorage.
"use strict";

const POLL_MS = 1000;
const HISTORY = 120; // points per plot: two minutes at one poll a second
const RATE_WINDOW_MS = 5000;
const last = new Map(); // unique_id -> [{t, in, out}] of the last RATE_WINDOW_MS
const history = new Map(); // unique_id -> [{in, out}]

function token() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("enrgdaq-token", decodeURIComponent(match[1]));
    window.history.replaceState(null, "", location.pathname); // the token leaves the address bar
  }
  return sessionStorage.getItem("enrgdaq-token");
}

async function fetchStatus() {
  const headers = {};
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  const response = await fetch("/api/status", { headers, cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function rates(job, now) {
  // Over the last few seconds, not between two polls: the counters move once a second (the
  // stats tick), so two polls a second apart would alternate between 0 and double the rate.
  const samples = (last.get(job.unique_id) || []).filter((s) => now - s.t <= RATE_WINDOW_MS);
  const first = samples[0];
  samples.push({ t: now, in: job.messages_in, out: job.messages_out });
  last.set(job.unique_id, samples);
  if (!first || now - first.t < 1500) return null;
  if (job.messages_in < first.in || job.messages_out < first.out) {
    last.set(job.unique_id, [samples[samples.length - 1]]); // a restart reset the counters
    return { in: 0, out: 0 };
  }
  const dt = (now - first.t) / 1000;
  return { in: (job.messages_in - first.in) / dt, out: (job.messages_out - first.out) / dt };
}

function ago(iso) {
  if (!iso) return "-";
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  return seconds >= 0 ? seconds.toFixed(1) + " s ago" : "in " + (-seconds).toFixed(1) + " s";
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function lastLine(text) {
  const lines = (text || "").trim().split("\n");
  return lines[lines.length - 1];
}

function renderTable(jobs, rateOf) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.job = job.unique_id;
    cell(row, job.unique_id);
    cell(row, job.daq_job_type);
    cell(row, job.queue || "-");
    const state = document.createElement("span");
    state.className = "state " + job.state;
    state.textContent = job.state;
    row.insertCell().appendChild(state);
    row.cells[3].className = "state-cell";
    cell(row, job.pid || "-", "pid");
    cell(row, job.hostname || "-");
    cell(row, job.restarts, "num restarts");
    const r = rateOf.get(job.unique_id);
    cell(row, r ? r.in.toFixed(1) : "-", "num");
    cell(row, r ? r.out.toFixed(1) : "-", "num");
    cell(row, job.messages_in, "num");
    cell(row, job.messages_out, "num");
    cell(row, ago(job.last_heartbeat));
    // The error of the present state, else the last run's (a job that crashed and runs again).
    const error = job.error || job.last_error;
    cell(row, error ? lastLine(error) : "", "error");
  }
}

function polyline(points, key, max, cls) {
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  const coords = points.map((p, i) => `${HISTORY - points.length + i},${(1 - p[key] / max) * 100}`);
  line.setAttribute("points", coords.join(" "));
  line.setAttribute("class", cls);
  return line;
}

function renderPlots(jobs) {
  const section = document.getElementById("plots");
  section.replaceChildren();
  for (const job of jobs) {
    const points = history.get(job.unique_id) || [];
    const max = Math.max(1, ...points.map((p) => Math.max(p.in, p.out)));
    const box = document.createElement("div");
    box.className = "plot";
    box.dataset.job = job.unique_id;
    const title = document.createElement("h3");
    title.innerHTML = "<span></span><span class='muted'></span>";
    title.children[0].textContent = job.unique_id;
    title.children[1].textContent = "max " + max.toFixed(1) + "/s";
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", `0 0 ${HISTORY} 100`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.appendChild(polyline(points, "in", max, "in"));
    svg.appendChild(polyline(points, "out", max, "out"));
    box.append(title, svg);
    section.appendChild(box);
  }
}

async function tick() {
  const banner = document.getElementById("problem");
  try {
    const doc = await fetchStatus();
    const now = Date.now();
    const rateOf = new Map();
    for (const job of doc.jobs) {
      const r = rates(job, now);
      if (!r) continue;
      rateOf.set(job.unique_id, r);
      const points = history.get(job.unique_id) || [];
      points.push(r);
      history.set(job.unique_id, points.slice(-HISTORY));
    }
    document.getElementById("supervisor").textContent =
      `supervisor ${doc.supervisor_id} (${doc.supervisor_alive ? "alive" : "NOT RESPONDING"})`;
    document.getElementById("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
    renderTable(doc.jobs, rateOf);
    renderPlots(doc.jobs);
    const problems = document.getElementById("problems");
    problems.replaceChildren(...Object.values(doc.problems || {}).map((text) => {
      const li = document.createElement("li");
      li.textContent = "config problem: " + text;
      return li;
    }));
    banner.hidden = true;
  } catch (error) {
    banner.textContent = "The API does not answer: " + error.message;
    banner.hidden = false;
  } finally {
    setTimeout(tick, POLL_MS);
  }
}

tick();
