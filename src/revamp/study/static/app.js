"use strict";
// Blind rating page: join, then one picture at a time, every version scored, until done.
const $ = (id) => document.getElementById(id);
let token = null, current = null, scores = {}, view = { x: 0, y: 0, s: 1 };

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["X-Rater-Token"] = token;
  const res = await fetch(path, { ...options, headers });
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function show(id) {
  for (const s of ["join", "rate", "done"]) $(s).hidden = s !== id;
}

async function start() {
  const { studies } = await api("/api/studies");
  const select = $("study");
  for (const s of studies) select.add(new Option(s.name, s.name));
  const saved = localStorage.getItem("revamp-study-token");
  if (saved) {
    token = saved;
    try { return await next(); } catch (e) { token = null; localStorage.removeItem("revamp-study-token"); }
  }
  show("join");
}

$("join-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("join-error").textContent = "";
  try {
    const data = await api("/api/join", { method: "POST", body: JSON.stringify({ study: $("study").value, name: $("name").value }) });
    token = data.token;
    localStorage.setItem("revamp-study-token", token);
    await next();
  } catch (e) { $("join-error").textContent = e.message; }
});

async function next() {
  current = await api("/api/next");
  $("progress").textContent = `${current.progress.done} / ${current.progress.total} scored`;
  if (current.finished) { $("done-name").textContent = current.rater; return show("done"); }
  scores = {};
  view = { x: 0, y: 0, s: 1 };
  const panels = $("panels");
  panels.replaceChildren();
  const entries = current.reference ? [{ label: "Reference", url: current.reference, reference: true }, ...current.stimuli] : current.stimuli;
  for (const st of entries) {
    const panel = document.createElement("div");
    panel.className = "panel";
    const title = document.createElement("h2");
    title.textContent = st.label;
    const box = document.createElement("div");
    box.className = "view";
    const img = document.createElement("img");
    img.src = `${st.url}?token=${encodeURIComponent(token)}`;
    img.alt = st.label;
    img.draggable = false;
    box.append(img);
    panel.append(title, box);
    if (!st.reference) {
      const row = document.createElement("div");
      row.className = "scores";
      for (let v = current.scores[0]; v <= current.scores[1]; v++) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = v;
        b.dataset.stimulus = st.id;
        b.dataset.score = v;
        b.addEventListener("click", () => choose(st.id, v, row, b));
        row.append(b);
      }
      panel.append(row);
    }
    panels.append(panel);
    attachZoom(box);
  }
  $("submit").disabled = true;
  applyView();
  show("rate");
}

function choose(id, value, row, button) {
  scores[id] = value;
  for (const b of row.children) b.classList.toggle("chosen", b === button);
  $("submit").disabled = Object.keys(scores).length !== current.stimuli.length;
}

$("submit").addEventListener("click", async () => {
  $("submit").disabled = true;
  $("rate-error").textContent = "";
  try {
    await api("/api/vote", { method: "POST", body: JSON.stringify({ item: current.item, scores }) });
    await next();
  } catch (e) { $("rate-error").textContent = e.message; $("submit").disabled = false; }
});

// Zoom and pan: one transform shared by every picture, so details line up.
function applyView() {
  for (const img of document.querySelectorAll(".view img")) img.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.s})`;
}
function attachZoom(box) {
  box.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = box.getBoundingClientRect(), f = e.deltaY < 0 ? 1.25 : 0.8;
    const px = e.clientX - r.left, py = e.clientY - r.top;
    view.x = px - (px - view.x) * f; view.y = py - (py - view.y) * f; view.s *= f;
    applyView();
  }, { passive: false });
  let drag = null;
  box.addEventListener("pointerdown", (e) => { drag = { x: e.clientX - view.x, y: e.clientY - view.y }; box.setPointerCapture(e.pointerId); });
  box.addEventListener("pointermove", (e) => { if (drag) { view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; applyView(); } });
  box.addEventListener("pointerup", () => { drag = null; });
}
$("reset").addEventListener("click", () => { view = { x: 0, y: 0, s: 1 }; applyView(); });

start().catch((e) => { $("join-error").textContent = e.message; show("join"); });
