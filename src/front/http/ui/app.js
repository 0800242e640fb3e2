// The workbench page: a phone simulator, the live dialogues and the flows' graphs.
// Plain JavaScript, no library. The admin token lives in sessionStorage (this tab only) and
// goes out in the Authorization header of each /admin call, never in a URL.
"use strict";

const KEY = "ussd-gateway-admin-token";
const $ = (sel, root) => (root || document).querySelector(sel);

function token() { return sessionStorage.getItem(KEY); }

async function api(path, body) {
  const init = { headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401 || r.status === 403) {
    logout((await r.text()).trim());
    throw new Error("not logged in");
  }
  if (!r.ok) throw new Error((await r.text()).trim() || r.statusText);
  return r.json();
}

// --- Login -----------------------------------------------------------------------------------

function logout(why) {
  sessionStorage.removeItem(KEY);
  $("#tabs").hidden = true;
  document.querySelectorAll(".tab").forEach((t) => { t.hidden = true; });
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
}

async function enter() {
  let status;
  try { status = await api("/admin/status"); } catch (e) { return; }
  $("#login").hidden = true;
  $("#tabs").hidden = false;
  const routes = status.routes.map((r) => r.service_code);
  for (const sel of [$("#new-route"), $("#graph-route"), $("#journey-route")]) {
    sel.replaceChildren(...routes.map((c) => new Option(c, c)));
  }
  show("sim");
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("#token").value);
  $("#token").value = "";
  enter();
});
$("#logout").addEventListener("click", () => logout());

// --- Tabs ------------------------------------------------------------------------------------

let inspectorTimer = null;

function show(name) {
  document.querySelectorAll(".tab").forEach((t) => { t.hidden = t.id !== name; });
  document.querySelectorAll("#tabs [data-tab]").forEach((b) => {
    b.classList.toggle("on", b.dataset.tab === name);
  });
  clearInterval(inspectorTimer);
  if (name === "inspector") {
    refreshDialogues();
    inspectorTimer = setInterval(refreshDialogues, 2000);
  }
  if (name === "flows") drawGraph();
}
document.querySelectorAll("#tabs [data-tab]").forEach((b) => {
  b.addEventListener("click", () => show(b.dataset.tab));
});

// --- Simulator -------------------------------------------------------------------------------

function clock(ms) {
  const s = Math.floor(ms / 1000);
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// One simulated phone: its own session, inputs and timer.
function phone(dial, number) {
  const card = $("#phone-template").content.firstElementChild.cloneNode(true);
  const screen = $(".screen", card);
  const reply = $(".reply", card);
  let session, inputs, started, timer, ended, busy = false;
  $(".code", card).textContent = dial;
  $(".who", card).textContent = number;

  async function hop(text) {
    busy = true;
    try {
      const a = await api("/admin/ui/hop", { session, dial, phone: number, text });
      render(a);
    } catch (e) {
      screen.textContent = "Error: " + e.message;
      stop();
    } finally { busy = false; }
  }

  function render(a) {
    const end = a.status !== 200 || !a.body.startsWith("CON ");
    screen.textContent = a.status === 200 ? a.body.slice(4) : "HTTP " + a.status + ": " + a.body;
    screen.classList.toggle("ended", end);
    $(".kind", card).textContent = a.status === 200 ? a.body.slice(0, 3) : "";
    const count = $(".count", card);
    count.textContent = a.units + "/" + a.limit + " " + a.alphabet;
    count.classList.toggle("over", a.units > a.limit);
    $(".page", card).textContent = a.page ? "page " + a.page[0] + "/" + a.page[1] : "";
    $(".ms", card).textContent = a.ms + " ms";
    if (end) stop();
    else reply.focus();
  }

  function stop() {
    ended = true;
    clearInterval(timer);
    reply.disabled = true;
  }

  function start() {
    session = "wb-" + Math.random().toString(36).slice(2, 12);
    inputs = [];
    ended = false;
    started = Date.now();
    reply.disabled = false;
    reply.value = "";
    clearInterval(timer);
    $(".timer", card).textContent = "0:00";
    timer = setInterval(() => { $(".timer", card).textContent = clock(Date.now() - started); }, 1000);
    hop("");
  }

  $(".answer", card).addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (ended || busy) return;
    inputs.push(reply.value);
    reply.value = "";
    hop(inputs.join("*"));
  });
  $(".keypad", card).addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    if (b.classList.contains("redial")) start();
    else if (b.classList.contains("del")) reply.value = reply.value.slice(0, -1);
    else if (!ended) reply.value += b.textContent;
  });
  $(".close", card).addEventListener("click", () => { clearInterval(timer); card.remove(); });
  $("#phones").prepend(card);
  start();
}

$("#new-phone-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const code = $("#new-code").value.trim() || $("#new-route").value;
  if (code) phone(code, $("#new-phone").value.trim());
});

// --- Inspector -------------------------------------------------------------------------------

async function refreshDialogues() {
  let list;
  try { list = (await api("/admin/dialogues")).dialogues; } catch (e) { return; }
  list.sort((a, b) => a.age_ms - b.age_ms);
  $("#dialogues").replaceChildren(...list.map((d) => cells(
    [d.msisdn, d.service_code, d.screen || "", d.hops, clock(d.age_ms), clock(d.idle_ms), d.front])));
  $("#no-dialogues").hidden = list.length > 0;
  refreshJourneys();
}

function cells(values) {
  const tr = document.createElement("tr");
  for (const v of values) {
    const td = document.createElement("td");
    td.textContent = v;
    tr.append(td);
  }
  return tr;
}

function seconds(ms) { return ms === null || ms === undefined ? "" : (ms / 1000).toFixed(1) + " s"; }

async function refreshJourneys() {
  const route = $("#journey-route").value;
  let j;
  try { j = await api("/admin/journeys?route=" + encodeURIComponent(route)); } catch (e) { return; }
  $("#funnel").replaceChildren(...j.screens.map((s) => cells(
    [s.screen, s.arrived, s.went_on, s.ended, s.timed_out, s.aborted, seconds(s.median_ms)])));
  $("#recent").replaceChildren(...j.recent.map((r) => {
    const li = document.createElement("li");
    const steps = r.journey.map((st) => st.screen + " " + seconds(st.ms)).join(" → ");
    li.textContent = r.msisdn + " " + r.route + " (" + r.reason + "): " + steps + (r.input ? ", typed " + r.input : "");
    return li;
  }));
}
$("#journey-route").addEventListener("change", refreshJourneys);
$("#refresh").addEventListener("click", refreshDialogues);

// --- Flow view -------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Layers by distance from the start; boxes side by side in each layer; straight edges.
async function drawGraph() {
  const route = $("#graph-route").value;
  if (!route) return;
  let g;
  try { g = await api("/admin/ui/graph?route=" + encodeURIComponent(route)); }
  catch (e) { $("#graph").textContent = e.message; return; }
  const depth = { [g.start]: 0 };
  const queue = [g.start];
  while (queue.length) {
    const n = queue.shift();
    for (const e of g.edges) {
      if (e.from === n && depth[e.to] === undefined) { depth[e.to] = depth[n] + 1; queue.push(e.to); }
    }
  }
  // A layer wider than PER_ROW boxes wraps onto more rows, so the drawing stays narrow.
  const PER_ROW = 4;
  const byDepth = [];
  for (const n of g.nodes) {
    const d = depth[n.id] === undefined ? 0 : depth[n.id];
    (byDepth[d] = byDepth[d] || []).push(n);
  }
  const layers = [];
  for (const layer of byDepth) {
    for (let i = 0; layer && i < layer.length; i += PER_ROW) layers.push(layer.slice(i, i + PER_ROW));
  }
  const W = 150, H = 34, GX = 24, GY = 70;
  const pos = {};
  const width = Math.max(...layers.map((l) => (l ? l.length : 0))) * (W + GX) + GX;
  layers.forEach((layer, y) => {
    (layer || []).forEach((n, x) => {
      const off = (width - layer.length * (W + GX) + GX) / 2;
      pos[n.id] = { x: off + x * (W + GX), y: GY / 2 + y * (H + GY) };
    });
  });
  const height = layers.length * (H + GY);
  // Scaled down to the page's width on a small screen (zoom in to read it).
  const svg = el("svg", {
    viewBox: "0 0 " + width + " " + height, width, height, role: "img", "aria-label": "flow of " + route,
  });
  const defs = el("defs");
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
  marker.append(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#5b6675" }));
  defs.append(marker);
  svg.append(defs);
  for (const e of g.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
    const line = el("line", { x1, y1, x2, y2: y2 <= y1 ? y2 + H : y2, stroke: "#8a94a3", "marker-end": "url(#arrow)" });
    line.append(el("title", {}, e.from + " → " + e.to + ": " + e.label));
    svg.append(line);
    svg.append(el("text", { x: (x1 + x2) / 2 + 3, y: (y1 + y2) / 2, fill: "#5b6675" }, e.label.slice(0, 24)));
  }
  for (const n of g.nodes) {
    const p = pos[n.id];
    const box = el("rect", {
      x: p.x, y: p.y, width: W, height: H, rx: n.shown ? 8 : 2,
      fill: n.shown ? "#e8f3ff" : "#fff", stroke: "#1d2430",
      "stroke-width": n.id === g.start ? 3 : 1, "stroke-dasharray": n.shown ? "" : "4 3",
    });
    box.append(el("title", {}, n.id + " (" + n.kind + ")"));
    svg.append(box);
    svg.append(el("text", { x: p.x + 6, y: p.y + 14 }, n.id.slice(0, 22)));
    svg.append(el("text", { x: p.x + 6, y: p.y + 28, fill: "#5b6675" }, n.kind));
  }
  $("#graph").replaceChildren(svg);
  $("#edges").replaceChildren(...g.edges.map((e) => {
    const li = document.createElement("li");
    li.textContent = e.from + " → " + e.to + " (" + e.label + ")";
    return li;
  }));
}
$("#graph-route").addEventListener("change", drawGraph);

if (token()) enter(); else logout();
