// sagactl console: live runs list, live run page (graph colours, timeline, log, output).
// Everything shown is set with textContent: names, errors and output are attacker text.
"use strict";

const KINDS = [
  "run_created", "run_started", "run_resumed", "run_compensating", "run_stuck", "run_finished",
  "action_started", "action_progress", "action_succeeded", "action_failed", "action_retrying",
  "compensation_started", "action_compensated", "compensation_failed", "action_skipped",
];
const SETTLED = new Set(["succeeded", "compensated", "abandoned", "cancelled", "stuck"]);

function utc(at) {
  if (!at) return "";
  return new Date(at * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function token() { return sessionStorage.getItem("sagactlToken"); }

async function post(url, body) {
  // A same-origin fetch: the browser sends its Origin, which the server checks.
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const send = () => fetch(url, {
    method: "POST",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let answer = await send();
  if (answer.status === 401) {
    const given = window.prompt("This server needs its token to change anything:");
    if (given) { sessionStorage.setItem("sagactlToken", given); answer = await send(); }
  }
  return answer;
}

function fillTimes(root) {
  for (const cell of root.querySelectorAll(".time[data-at]")) {
    cell.textContent = utc(parseFloat(cell.dataset.at));
  }
}

// -- runs page -------------------------------------------------------------------------

function runRow(run) {
  const row = el("tr");
  row.dataset.run = run.run_id;
  const link = el("a", run.run_id);
  link.href = "/runs/" + encodeURIComponent(run.run_id);
  const first = el("td"); first.append(link); row.append(first);
  row.append(el("td", run.saga));
  const state = el("td"); state.append(el("span", run.state, "state state-" + run.state));
  row.append(state);
  row.append(el("td", utc(run.started)), el("td", utc(run.finished)), el("td", run.owner || ""));
  return row;
}

function liveRuns(table) {
  const body = table.tBodies[0];
  const params = new URLSearchParams(window.location.search);
  params.delete("before");
  const limit = Math.max(body.rows.length, 50);
  params.set("limit", String(Math.min(limit, 500)));
  async function refresh() {
    try {
      const answer = await fetch("/api/runs?" + params.toString());
      if (answer.ok) {
        const page = await answer.json();
        if (page.runs.length) body.replaceChildren(...page.runs.map(runRow));
      }
    } finally {
      setTimeout(refresh, 2000);
    }
  }
  setTimeout(refresh, 2000);
}

// -- run page --------------------------------------------------------------------------

class RunPage {
  constructor(data) {
    this.id = data.run_id;
    this.state = data.state;
    this.colours = data.colours;
    this.actions = {};  // name -> {state, attempts, error, outputs, reason}, in topological order
    for (const name of data.order) this.actions[name] = { state: data.actions[name] };
    this.spans = {};  // name -> [{kind, start, end, failed}]
    this.lastSeq = 0;
    this.first = null;
    this.last = null;
    this.nodes = {};
    for (const g of document.querySelectorAll("#graph g.node")) {
      const title = g.querySelector("title");
      if (title) this.nodes[title.textContent] = g;
    }
    this.rows = {};
    for (const row of document.querySelectorAll("#actions tr[data-action]")) {
      this.rows[row.dataset.action] = row;
    }
    this.dirty = new Set(Object.keys(this.actions));  // what paint() must look at
    this.drawing = null;
    this.logBody = document.querySelector("#log tbody");
    this.output = document.getElementById("output");
    for (const event of data.events) this.apply(event);
    for (const name of data.order) {  // the last thing each action said, until live lines come
      const last = data.progress[name];
      if (last && last.message) this.say(name, last.message);
    }
    this.paint();
    this.drawTimeline();
    if (!SETTLED.has(this.state)) this.follow();
    setInterval(() => { if (!SETTLED.has(this.state)) this.drawTimeline(); }, 1000);
    for (const button of document.querySelectorAll("button.operator")) {
      button.addEventListener("click", () => this.operate(button.dataset.verb));
    }
  }

  follow() {
    if (this.source) return;
    const source = new EventSource(
      "/api/runs/" + encodeURIComponent(this.id) + "/stream?after=" + this.lastSeq);
    this.source = source;
    const onEvent = (message) => {
      const event = JSON.parse(message.data);
      if (event.seq && event.seq <= this.lastSeq) return;  // already shown
      this.apply(event);
      this.redraw();
    };
    for (const kind of KINDS) source.addEventListener(kind, onEvent);
    source.addEventListener("progress", onEvent);
    source.addEventListener("end", () => { source.close(); this.source = null; });
  }

  async operate(verb) {
    const shown = document.getElementById("operator-answer");
    shown.textContent = verb + "…";
    const answer = await post("/api/runs/" + encodeURIComponent(this.id) + "/" + verb);
    const body = await answer.json().catch(() => ({}));
    shown.textContent = answer.ok ? verb + ": " + (body.state || "ok") : (body.error || answer.statusText);
    if (answer.ok) this.follow();
  }

  redraw() {
    // Events come in bursts (a thousand actions finish within seconds): the page is
    // painted once per burst, not once per event, so it stays responsive.
    if (this.drawing !== null) return;
    this.drawing = setTimeout(() => {
      this.drawing = null;
      this.paint();
      this.drawTimeline();
    }, 100);
  }

  apply(event) {
    if (event.action) this.dirty.add(event.action);
    if (event.seq) {
      this.lastSeq = Math.max(this.lastSeq, event.seq);
      this.logRow(event);
    }
    const at = event.at;
    if (this.first === null || at < this.first) this.first = at;
    if (this.last === null || at > this.last) this.last = at;
    const data = event.data || {};
    if (!event.action) {
      if (data.state) this.state = data.state;
      if (event.kind === "run_finished" || event.kind === "run_stuck") this.error = data.error || null;
      return;
    }
    const action = this.actions[event.action] || (this.actions[event.action] = {});
    const spans = this.spans[event.action] || (this.spans[event.action] = []);
    const open = (kind) => spans.slice().reverse().find((s) => s.kind === kind && s.end === null);
    switch (event.kind) {
      case "action_started":
        action.state = "running"; action.attempts = data.attempt; action.error = null;
        spans.push({ kind: "attempt", start: at, end: null, failed: false });
        break;
      case "action_succeeded": {
        action.state = "succeeded"; action.outputs = data.outputs;
        const span = open("attempt"); if (span) span.end = at;
        break;
      }
      case "action_failed": {
        action.state = "failed"; action.error = data.error;
        const span = open("attempt"); if (span) { span.end = at; span.failed = true; }
        break;
      }
      case "compensation_started":
        action.state = "compensating";
        if (!open("compensation")) spans.push({ kind: "compensation", start: at, end: null });
        break;
      case "action_compensated": {
        action.state = "compensated";
        const span = open("compensation"); if (span) span.end = at;
        break;
      }
      case "compensation_failed":
        action.error = data.error;
        break;
      case "action_skipped":  // a condition's skip says why (`reason`); a compensation's does not
        action.state = "skipped"; action.reason = data.reason || null;
        break;
      case "action_progress":
        if (data.message && !event.seq) this.say(event.action, data.message);
        break;
      default:
        break;
    }
  }

  say(action, message) {
    const out = this.output;
    out.append(document.createTextNode("[" + action + "] " + message + "\n"));
    while (out.childNodes.length > 5000) out.removeChild(out.firstChild);
    out.scrollTop = out.scrollHeight;
  }

  logRow(event) {
    const row = el("tr");
    row.append(el("td", event.seq), el("td", utc(event.at)), el("td", event.kind),
      el("td", event.action || ""), el("td", JSON.stringify(event.data)));
    this.logBody.append(row);
  }

  paint() {
    const runState = document.getElementById("run-state");
    runState.textContent = this.state;
    runState.className = "state state-" + this.state;
    if (this.error !== undefined) document.getElementById("run-error").textContent = this.error || "";
    document.getElementById("retry").hidden = this.state !== "stuck";  // only a stuck run is retried
    const dirty = this.dirty;
    this.dirty = new Set();
    for (const name of dirty) {
      const action = this.actions[name];
      if (!action) continue;
      const g = this.nodes[name];
      if (g && g.dataset.state !== action.state) {
        g.dataset.state = action.state;
        const shape = g.querySelector("polygon, path, ellipse");
        if (shape) shape.setAttribute("fill", this.colours[action.state] || "#ffffff");
      }
      const row = this.rows[name];
      if (!row) continue;
      const cell = row.querySelector(".action-state span");
      if (cell.textContent !== action.state) {
        cell.textContent = action.state;
        cell.className = "state state-" + action.state;
      }
      if (action.attempts !== undefined) row.querySelector(".attempts").textContent = action.attempts;
      if (action.error !== undefined) row.querySelector(".error").textContent = action.error || "";
      if (action.reason !== undefined) row.querySelector(".reason").textContent = action.reason || "";
      if (action.outputs) row.querySelector(".outputs").textContent = JSON.stringify(action.outputs, null, 1);
    }
  }

  drawTimeline() {
    const box = document.getElementById("timeline");
    if (this.first === null) return;
    const running = !SETTLED.has(this.state);
    const end = running ? Math.max(this.last, Date.now() / 1000) : this.last;
    const span = Math.max(end - this.first, 0.001);
    const labelWidth = 190;
    const width = Math.max(box.clientWidth - labelWidth - 10, 200);
    const rows = [];
    for (const name of Object.keys(this.actions)) {
      const row = el("div", null, "row");
      row.dataset.action = name;
      row.append(el("span", name, "label"));
      for (const s of this.spans[name] || []) {
        const stop = s.end === null ? end : s.end;
        const bar = el("span", null, "bar " + s.kind + (s.failed ? " failed" : ""));
        bar.dataset.start = String(s.start);
        bar.dataset.end = String(stop);
        bar.style.left = (labelWidth + ((s.start - this.first) / span) * width) + "px";
        bar.style.width = Math.max(((stop - s.start) / span) * width, 2) + "px";
        bar.title = name + " " + s.kind + " " + (stop - s.start).toFixed(3) + "s";
        row.append(bar);
      }
      rows.push(row);
    }
    box.replaceChildren(...rows);
  }
}

// -- app page ---------------------------------------------------------------------------

function rollbackButtons(root) {
  const shown = document.getElementById("rollback-answer");
  for (const button of root.querySelectorAll("button.rollback")) {
    button.addEventListener("click", async () => {
      const app = button.dataset.app;
      const version = parseInt(button.dataset.number, 10);
      shown.textContent = "rolling back to version " + version + "…";
      const answer = await post("/api/apps/" + encodeURIComponent(app) + "/rollback", { version });
      const body = await answer.json().catch(() => ({}));
      if (answer.ok) {
        shown.textContent = "active: " + body.active_version;
        window.location.reload();
      } else {
        shown.textContent = body.error || answer.statusText;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  fillTimes(document);
  rollbackButtons(document);
  const runs = document.getElementById("runs");
  if (runs && runs.dataset.live === "yes") liveRuns(runs);
  const data = document.getElementById("run-data");
  if (data) window.sagactlRun = new RunPage(JSON.parse(data.textContent));
});
