// impediments playground and live doctor: one page, vanilla JS, canvas charts, Server-Sent Events.
// The server sends the whole state of every run on each update ("state" events); this page only draws.
"use strict";

const LABELS = { dataset: "dataset", depth: "depth", width: "width", activation: "activation", init: "init",
  bias: "bias init", norm: "norm", norm_position: "norm placed", dropout: "dropout", optimizer: "optimizer",
  lr: "learning rate", batch_size: "batch size", inputs: "inputs", steps: "steps", seed: "seed" };
const HISTORY = 90;                 // histogram frames kept per layer for the over-time view
const pg = { info: null, updates: 0, last: null, history: {}, hashErrors: [], lesson: null };
window.__pg = pg;                   // read by the browser tests

// ------------------------------------------------------------------ settings and the URL
function settingsForm() { return document.getElementById("settings"); }

function buildControls(info) {
  const form = settingsForm();
  for (const field of info.fields) {
    const label = document.createElement("label");
    label.textContent = LABELS[field] || field;
    const select = document.createElement("select");
    select.name = field; select.id = "cfg-" + field;
    for (const value of info.choices[field]) {
      const opt = document.createElement("option");
      opt.value = String(value); opt.textContent = String(value);
      if (field === "init" && info.init_help[value]) opt.title = info.init_help[value];
      select.appendChild(opt);
    }
    select.value = String(info.defaults[field]);
    select.addEventListener("change", () => writeHash());
    label.appendChild(select);
    form.appendChild(label);
  }
}

function readConfig() {
  const config = {};
  for (const field of pg.info.fields) {
    const raw = document.getElementById("cfg-" + field).value;
    config[field] = typeof pg.info.defaults[field] === "number" ? Number(raw) : raw;
  }
  return config;
}

function fragmentOf(config) {
  return new URLSearchParams(Object.entries(config).map(([k, v]) => [k, String(v)])).toString();
}

function writeHash() {
  const fragment = fragmentOf(readConfig()) + (pg.lesson ? "&lesson=" + encodeURIComponent(pg.lesson.name) : "");
  history.replaceState(null, "", "#" + fragment);
  document.getElementById("share").href = "#" + fragment;
}

// Set the controls from the URL fragment; values the page does not offer are reported, not used.
function applyHash() {
  pg.hashErrors = [];
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (params.has("lesson")) {             // a lesson's settings first; fields given beside it override them
    const lesson = (pg.info.lessons || []).find((l) => l.name === params.get("lesson"));
    if (lesson) for (const [field, value] of Object.entries(lesson.config)) setControl(field, value);
    else pg.hashErrors.push("lesson=" + params.get("lesson"));
    showLesson(lesson || null);
    params.delete("lesson");
  } else showLesson(null);
  for (const [field, value] of params) if (!setControl(field, value)) pg.hashErrors.push(field + "=" + value);
  showProblem(pg.hashErrors.length ? "ignored settings not offered: " + pg.hashErrors.join(", ") : "");
  writeHash();
}

// Select the offered option equal to value (numbers compared as numbers); false when none is offered.
function setControl(field, value) {
  value = String(value);
  const select = document.getElementById("cfg-" + field);
  const offered = select && Array.from(select.options).find((o) => Number.isNaN(Number(o.value)) || Number.isNaN(Number(value))
    ? o.value === value : Number(o.value) === Number(value));
  if (offered) select.value = offered.value;
  return Boolean(offered);
}

// A page opened without a setup in its URL (a reload of the bare address, a second tab) shows runs that
// another page started: the controls and the link take run A's setup, so that they describe what is on
// screen. A URL that names a setup keeps it, and so does a control the user has changed.
function adoptRunSetup(state) {
  if (!pg.adoptRunSetup) return;
  pg.adoptRunSetup = false;
  const a = state.runs.find((r) => r.label === "A");
  if (!a || !a.config) return;
  for (const field of pg.info.fields) if (field in a.config) setControl(field, a.config[field]);
  writeHash();
}

// ------------------------------------------------------------------ lessons
function buildLessons(info) {
  const nav = document.getElementById("lessons");
  for (const lesson of info.lessons || []) {
    const a = document.createElement("a");
    a.href = "#" + lesson.fragment; a.textContent = lesson.title; a.dataset.lesson = lesson.name;
    nav.appendChild(a);
  }
}

function showLesson(lesson) {
  pg.lesson = lesson;
  showHint(pg.last);
  const box = document.getElementById("lesson");
  box.hidden = !lesson;
  for (const a of document.querySelectorAll("#lessons a")) a.setAttribute("aria-current", String(Boolean(lesson) && a.dataset.lesson === lesson.name));
  if (!lesson) return;
  box.dataset.lesson = lesson.name;
  box.querySelector(".lesson-title").textContent = lesson.title + ".";
  box.querySelector(".look-for").textContent = lesson.look_for;
  const link = box.querySelector(".notebook");
  link.textContent = "notebooks/" + lesson.notebook; link.href = "/notebooks/" + lesson.notebook;
  box.querySelector(".section").textContent = lesson.section;
  box.querySelector(".reproduce").textContent = "impediments reproduce " + lesson.experiment;
}

function showHint(state) {
  document.getElementById("hint").hidden = Boolean(pg.lesson) || Boolean(state && state.runs.some((r) => r.step > 0));
}

function showProblem(text) {
  const el = document.getElementById("problem");
  el.textContent = text; el.hidden = !text;
}

async function post(action, body) {
  const response = await fetch("/api/" + action, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}) });
  if (!response.ok) showProblem((await response.json()).error || response.statusText);
  else showProblem("");
}

// ------------------------------------------------------------------ drawing helpers
function ctx2d(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  return ctx;
}

function fmt(x) {
  if (x === null || x === undefined) return "–";
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-2 || a >= 1e4) ? x.toExponential(0) : String(Math.round(x * 100) / 100);
}

// Line chart: series [{xs, ys, color, label, axis: "left"|"right"}], left axis from the data or from
// scale {lo, hi} (shared by the runs side by side), right axis [0, 1].
function lineChart(canvas, series, scale) {
  const ctx = ctx2d(canvas), W = canvas.width, H = canvas.height, L = 40, R = 34, T = 8, B = 18;
  const xs = series.flatMap((s) => s.xs), left = series.filter((s) => s.axis !== "right").flatMap((s) => s.ys)
    .filter((y) => y !== null && Number.isFinite(y));
  if (!xs.length) { ctx.fillStyle = "#999"; ctx.fillText("no data yet: press Train", L, H / 2); return; }
  const x0 = Math.min(...xs), x1 = Math.max(x0 + 1, ...xs);
  const y0 = scale ? scale.lo : Math.min(0, ...left), y1 = scale ? scale.hi : Math.max(1e-9, ...left);
  const px = (x) => L + (W - L - R) * (x - x0) / (x1 - x0);
  ctx.strokeStyle = "#ccc"; ctx.strokeRect(L, T, W - L - R, H - T - B);
  ctx.fillStyle = "#555";
  ctx.fillText(fmt(y1), 2, T + 8); ctx.fillText(fmt(y0), 2, H - B);
  ctx.fillText("1", W - R + 4, T + 8); ctx.fillText("0", W - R + 4, H - B);
  ctx.fillText("step " + x0, L, H - 4); ctx.fillText(String(x1), W - R - 30, H - 4);
  let legend = L + 6;
  for (const s of series) {
    const lo = s.axis === "right" ? 0 : y0, hi = s.axis === "right" ? 1 : y1;
    const py = (y) => T + (H - T - B) * (1 - (y - lo) / (hi - lo || 1));
    ctx.strokeStyle = s.color; ctx.lineWidth = s.axis === "right" ? 1 : 1.5; ctx.setLineDash(s.axis === "right" ? [4, 3] : []);
    ctx.beginPath();
    let pen = false;
    s.xs.forEach((x, i) => {
      const y = s.ys[i];
      if (y === null || !Number.isFinite(y)) { pen = false; return; }
      if (pen) ctx.lineTo(px(x), py(y)); else ctx.moveTo(px(x), py(y));
      pen = true;
    });
    ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = s.color; ctx.fillText(s.label, legend, T + 12); legend += ctx.measureText(s.label).width + 12;
  }
}

// Grouped bars per layer: series [{values, color or colors (one per layer), label}], values in [0, 1], or log10
// when log is true, with decades from scale {lo, hi} (shared by the runs side by side) or from the data.
function barChart(canvas, layers, series, log, scale) {
  const ctx = ctx2d(canvas), W = canvas.width, H = canvas.height, L = 36, T = 16, B = 30;
  if (!layers.length) { ctx.fillStyle = "#999"; ctx.fillText("no layers recorded yet", L, H / 2); return; }
  let lo = 0, hi = 1;
  const tr = (v) => (log ? Math.log10(Math.max(v, 1e-12)) : v);
  if (log) {
    const all = series.flatMap((s) => s.values).filter((v) => v !== null && v > 0).map(tr);
    if (!all.length) { ctx.fillStyle = "#999"; ctx.fillText("all zero: no gradient reaches these weights", L + 8, H / 2); }
    lo = scale ? scale.lo : Math.floor(Math.min(-6, ...all)); hi = scale ? scale.hi : Math.ceil(Math.max(0, ...all));
  }
  const py = (v) => T + (H - T - B) * (1 - (tr(v) - lo) / (hi - lo));
  ctx.strokeStyle = "#ccc"; ctx.strokeRect(L, T, W - L - 4, H - T - B);
  ctx.fillStyle = "#555";
  ctx.fillText(log ? "1e" + hi : "100%", 2, T + 8); ctx.fillText(log ? "1e" + lo : "0", 2, H - B);
  const group = (W - L - 8) / layers.length, bar = Math.max(2, group / (series.length + 1));
  layers.forEach((name, i) => {
    series.forEach((s, j) => {
      const v = s.values[i];
      if (v === null || v === undefined || (log && v <= 0)) return;
      ctx.fillStyle = s.colors ? s.colors[i] : s.color;
      const top = py(v);
      ctx.fillRect(L + 4 + i * group + j * bar, top, bar - 1, H - B - top);
    });
    ctx.fillStyle = "#555";
    ctx.save(); ctx.translate(L + 4 + i * group, H - B + 10); ctx.fillText(short(name), 0, 0); ctx.restore();
  });
  let legend = L + 6;
  for (const s of series) for (const [label, color] of s.legend || [[s.label, s.color]]) {
    ctx.fillStyle = color; ctx.fillText(label, legend, 11); legend += ctx.measureText(label).width + 12;
  }
}

function short(name) { return name.replace(/\.act$/, "").replace(/^hidden/, "h").replace(/\.linear\.weight$|\.weight$/, "").replace(/\.linear$/, ""); }

function histogramBars(canvas, counts, edges) {
  const ctx = ctx2d(canvas), W = canvas.width, H = canvas.height;
  const total = counts.reduce((a, b) => a + b, 0) || 1, top = Math.max(...counts) / total || 1;
  const w = W / counts.length;
  ctx.fillStyle = "#1f6feb";
  counts.forEach((c, i) => { const h = (H - 10) * (c / total) / top; ctx.fillRect(i * w, H - 10 - h, Math.max(1, w - 0.5), h); });
  ctx.fillStyle = "#555";
  ctx.fillText(fmt(edges[0]), 0, H); const right = fmt(edges[edges.length - 1]);
  ctx.fillText(right, W - ctx.measureText(right).width, H);
}

function histogramHeat(canvas, frames) {
  const ctx = ctx2d(canvas), W = canvas.width, H = canvas.height;
  if (!frames.length) return;
  const w = W / HISTORY, bins = frames[0].length, h = (H - 10) / bins;
  frames.forEach((counts, t) => {
    const total = counts.reduce((a, b) => a + b, 0) || 1, peak = Math.max(...counts) / total || 1;
    counts.forEach((c, i) => {
      const v = Math.sqrt((c / total) / peak);
      ctx.fillStyle = `rgba(31, 111, 235, ${v.toFixed(3)})`;
      ctx.fillRect(W - (frames.length - t) * w, H - 10 - (i + 1) * h, w + 0.5, h + 0.5);
    });
  });
}

// ------------------------------------------------------------------ runs
function runPanel(run) {
  let el = document.querySelector(`.run[data-label="${run.label}"]`);
  if (!el) {
    el = document.getElementById("run-template").content.firstElementChild.cloneNode(true);
    el.dataset.label = run.label;
    el.id = "run-" + run.label;
    document.getElementById("runs").appendChild(el);
  }
  return el;
}

function histogramOf(run) {
  if (run.hist) return run.hist;
  if (run.monitor_hist) return { layers: run.layers, edges: run.monitor_hist.edges, counts: run.monitor_hist.counts,
    scale: "signed-log", step: run.monitor_hist.step };
  return null;
}

function drawHistograms(el, run) {
  const box = el.querySelector(".hists"), hist = histogramOf(run);
  el.querySelector(".hist-scale").textContent = hist && hist.scale === "signed-log"
    ? " (the monitor's signed-log bins: ±10^k, 4 per decade; the middle bin holds exact zeros)" : "";
  const key = run.label;
  if (!pg.history[key] || pg.history[key].id !== run.id) pg.history[key] = { id: run.id, step: -1, frames: {} };
  const memory = pg.history[key];
  if (!hist) { box.textContent = "no histograms yet"; delete box.dataset.layers; return; }   // rows rebuilt later
  if (hist.step !== memory.step) {
    memory.step = hist.step;
    hist.layers.forEach((name, i) => {
      if (!hist.counts[i]) return;
      const frames = memory.frames[name] || (memory.frames[name] = []);
      frames.push(hist.counts[i]);
      if (frames.length > HISTORY) frames.shift();
    });
  }
  if (box.dataset.layers !== hist.layers.join(",")) {
    box.textContent = ""; box.dataset.layers = hist.layers.join(",");
    for (const name of hist.layers) {
      const row = document.createElement("div");
      row.className = "hist-row"; row.dataset.layer = name;
      const label = document.createElement("span"); label.textContent = name;
      const now = document.createElement("canvas"); now.width = 300; now.height = 56; now.className = "now";
      const time = document.createElement("canvas"); time.width = 300; time.height = 56; time.className = "time";
      row.append(label, now, time); box.appendChild(row);
    }
  }
  hist.layers.forEach((name, i) => {
    const row = box.querySelector(`.hist-row[data-layer="${CSS.escape(name)}"]`);
    if (!row || !hist.counts[i]) return;
    histogramBars(row.querySelector(".now"), hist.counts[i], hist.edges);
    histogramHeat(row.querySelector(".time"), memory.frames[name] || []);
  });
}

function drawFindings(el, run) {
  const list = el.querySelector(".findings");
  list.textContent = "";
  const findings = run.findings || [];
  if (!findings.length) {
    const li = document.createElement("li"); li.className = "none";
    li.textContent = run.findings ? "no findings so far" : "waiting for the monitor's first sampled step";
    list.appendChild(li);
  }
  for (const f of findings) {
    const li = document.createElement("li");
    li.className = "finding"; li.dataset.code = f.code; li.dataset.severity = f.severity;
    const head = document.createElement("div");
    const code = document.createElement("span"); code.className = "code"; code.textContent = f.code;
    head.append(code, " · " + f.severity);
    const where = document.createElement("div"); where.className = "where";
    where.textContent = "where: " + f.where.join(", ") + (f.more ? ` (+${f.more} more)` : "");
    const why = document.createElement("div"); why.className = "where"; why.textContent = f.explanation;
    const remedy = document.createElement("div"); remedy.className = "remedy"; remedy.textContent = "remedy: " + f.remedy;
    const see = document.createElement("div"); see.className = "see";
    see.append("see: ");
    if (f.experiment_link && pg.info && pg.info.mode === "playground") {
      const a = document.createElement("a"); a.href = f.experiment_link; a.textContent = f.experiment + " in the playground";
      a.className = "experiment"; see.append(a, " · ");
    }
    const cmd = document.createElement("code"); cmd.textContent = f.reproduce; see.append(cmd);
    li.append(head, where, why, remedy, see);
    if (run.label === "A" && pg.info.mode === "playground") {
      for (const option of f.remedies || []) {         // one remedy per button: run B changes only that
        const b = document.createElement("button"); b.type = "button"; b.className = "apply-remedy";
        b.dataset.remedy = option.remedy;
        b.textContent = "Apply: " + option.label;
        b.title = "run B = run A with " + Object.entries(option.changes).map(([k, v]) => (LABELS[k] || k) + " → " + v).join(", ");
        b.addEventListener("click", () => post("remedy", { code: f.code, remedy: option.remedy }));
        li.appendChild(b);
      }
    }
    list.appendChild(li);
  }
}

const FLAT_COLORS = { saturated: "#e8590c", inactive: "#868e96" };

function percent(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %"; }

// The run's numbers: the final ones (whole test and training sets, eval mode) once it has ended, else the
// latest curve point (the test subset the curve evaluates, and the mean training loss since the last update).
function drawNumbers(el, run) {
  const box = el.querySelector(".numbers");
  box.textContent = "";
  const add = (label, value) => { const b = document.createElement("b"); b.textContent = value; box.append(label, b); };
  if (run.final) {
    box.dataset.final = "true";
    add(`final, step ${run.final.step}: test accuracy `, percent(run.final.test_acc));
    add(` (${run.final.test_examples} examples) · training loss `, fmtLoss(run.final.train_loss));
    add(" · test loss ", fmtLoss(run.final.test_loss));
    return;
  }
  delete box.dataset.final;
  const curve = run.curve;
  if (!curve || !curve.step.length) return;
  const i = curve.step.length - 1;
  add(`step ${curve.step[i]}: test accuracy `, percent(curve.acc[i]));
  add(" (subset) · training loss ", fmtLoss(curve.loss[i]));
}

function fmtLoss(x) { return x === null || x === undefined ? "–" : x < 0.01 ? x.toExponential(2) : x.toFixed(3); }

// Scales shared by the runs on screen: the loss axis and the ratio chart's decades.
function sharedScales(runs) {
  const losses = runs.flatMap((r) => (r.curve ? r.curve.loss : (r.loss_windows || []).map((p) => p[1])))
    .filter((y) => y !== null && Number.isFinite(y));
  const ratios = runs.flatMap((r) => (r.grad_ratio || []).concat(r.update_ratio || []))
    .filter((v) => v !== null && v > 0).map((v) => Math.log10(v));
  return {
    loss: losses.length ? { lo: Math.min(0, ...losses), hi: Math.max(1e-9, ...losses) } : null,
    ratio: ratios.length ? { lo: Math.floor(Math.min(-6, ...ratios)), hi: Math.ceil(Math.max(0, ...ratios)) } : null,
  };
}

function drawRun(run, scales) {
  const el = runPanel(run);
  el.querySelector(".label").textContent = run.label === "A" || run.label === "B" ? "Run " + run.label : run.label;
  el.querySelector(".status").textContent = run.status;
  el.dataset.status = run.status;
  el.querySelector(".step").textContent = "step " + run.step + (run.steps ? " / " + run.steps : "");
  el.dataset.step = run.step;
  el.querySelector(".note").textContent = run.note || "";
  const error = el.querySelector(".error"); error.hidden = !run.error; error.textContent = run.error || "";
  const curve = run.curve || { step: (run.loss_windows || []).map((p) => p[0]), loss: (run.loss_windows || []).map((p) => p[1]), acc: [] };
  const series = [{ xs: curve.step, ys: curve.loss, color: "#1f6feb", label: "loss" }];
  if (curve.acc.length) series.push({ xs: curve.step, ys: curve.acc, color: "#2b8a3e", label: "test acc (right)", axis: "right" });
  lineChart(el.querySelector(".curves"), series, scales.loss);
  el.dataset.lossScale = scales.loss ? [scales.loss.lo, scales.loss.hi].join(",") : "";
  const flat = run.flat_name || [], flatNames = [...new Set(flat)];
  el.dataset.flat = flatNames.join(",");
  barChart(el.querySelector(".fractions"), run.layers || [], [
    { values: run.dead || [], color: "#6f42c1", label: "dead" },
    { values: run.saturated || [], colors: flat.map((n) => FLAT_COLORS[n]), legend: flatNames.map((n) => [n, FLAT_COLORS[n]]) }]);
  barChart(el.querySelector(".ratios"), run.param_layers || [], [
    { values: run.grad_ratio || [], color: "#0b7285", label: "|grad|/|w|" }, { values: run.update_ratio || [], color: "#a61e4d", label: "|update|/|w|" }], true, scales.ratio);
  drawNumbers(el, run);
  drawHistograms(el, run);
  drawFindings(el, run);
}

function onState(state) {
  pg.updates += 1; pg.last = state;
  if (pg.info.mode === "playground") adoptRunSetup(state);
  const labels = new Set(state.runs.map((r) => r.label));
  for (const el of document.querySelectorAll(".run")) if (!labels.has(el.dataset.label)) el.remove();
  const scales = sharedScales(state.runs);
  pg.scales = scales;                      // read by the browser tests
  state.runs.forEach((run) => drawRun(run, scales));
  if (pg.info.mode === "playground") showHint(state);
  document.body.dataset.training = String(state.training);
}

// ------------------------------------------------------------------ start
function connect() {
  const events = new EventSource("/events");
  const status = document.getElementById("connection");
  events.onopen = () => { status.textContent = "live"; };
  events.onerror = () => { status.textContent = "reconnecting…"; };
  events.addEventListener("state", (e) => onState(JSON.parse(e.data)));
  events.addEventListener("problem", (e) => showProblem(JSON.parse(e.data).message));
}

async function main() {
  pg.info = await (await fetch("/api/info")).json();
  document.getElementById("title").textContent = pg.info.title;
  document.title = pg.info.title;
  if (pg.info.mode === "playground") {
    document.getElementById("controls").hidden = false;
    buildControls(pg.info);
    buildLessons(pg.info);
    pg.adoptRunSetup = !location.hash.replace(/^#/, "");
    settingsForm().addEventListener("change", () => { pg.adoptRunSetup = false; });
    applyHash();
    showHint(null);
    window.addEventListener("hashchange", applyHash);
    document.getElementById("train").addEventListener("click", () => post("train", { config: readConfig() }));
    document.getElementById("pause").addEventListener("click", () => post("pause"));
    document.getElementById("step").addEventListener("click", () => post("step", { config: readConfig() }));
    document.getElementById("reset").addEventListener("click", () => post("reset", { config: readConfig() }));
  }
  connect();
  document.body.dataset.ready = "true";
}

main();
