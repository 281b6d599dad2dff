// The compare page: #/compare?job=…&job=… (ticked on the jobs page) or ?batch=… — one epoch
// field of every chosen job on one chart (each line thinned by the API to at most POINTS
// epochs, keeping its first, last, lowest and highest values), a table of the hyperparameters
// the jobs differ in with the chosen summary (last, min, max or the value at an epoch), and for
// a batch a parallel-coordinates chart of those hyperparameters against the summary.

import { query, request } from "./api.js";
import { fmtTick, PALETTE } from "./charts.js";
import { errorBox, fmtLoss, h, statusBadge } from "./format.js";

const POINTS = 500;
const SCALARS = ["loss", "val_loss", "accuracy", "val_accuracy", "learning_rate", "duration_ms"];
const PER_LAYER = [
  "update_ratio_weights",
  "update_ratio_biases",
  "dead_fraction",
  "saturated_fraction",
  "delta_mean",
  "delta_max",
  "grad_norm_weights",
  "grad_norm_biases",
];
const SUMMARIES = { last: "last", min: "min", max: "max", at: "at epoch" };

export function comparePage(view, search) {
  const params = new URLSearchParams(search || "");
  const state = {
    jobs: params.getAll("job"),
    batch: params.get("batch"),
    field: params.get("field") || "loss",
    summary: params.get("summary") || "last",
    at: params.get("at") || "",
  };
  view.append(h("h1", {}, "Compare"));
  if (!state.jobs.length && !state.batch) {
    const table = h("a", { href: "#/jobs" }, "jobs table");
    view.append(h("p", {}, "Tick jobs in the ", table, ", or open a batch and compare its jobs."));
    return null;
  }
  const controls = h("form", { class: "compare-controls", id: "compare-controls" });
  const note = h("p", { class: "muted", id: "compare-note" });
  const chart = h("div", { class: "chart", id: "chart-compare" });
  const table = h("div", { id: "compare-table" });
  const parallel = h("div", { class: "parallel", id: "compare-parallel" });
  const message = h("div");
  view.append(
    controls,
    message,
    h("section", { class: "card" }, h("h2", { class: "field" }), note, chart),
    h("section", { class: "card" }, h("h2", {}, "Hyperparameters and summary"), table),
    parallel,
  );
  let closed = false;
  let u = null;

  async function load() {
    const q = query({
      job_id: state.jobs,
      batch: state.batch,
      field: state.field,
      at: state.at,
      points: POINTS,
    });
    history.replaceState(null, "", `#/compare${query({ ...remembered(state) })}`);
    let found;
    try {
      found = await request(`/v1/compare${q}`);
    } catch (error) {
      message.replaceChildren(errorBox(error));
      return;
    }
    if (closed) return;
    message.replaceChildren();
    controls.replaceChildren(...controlsFor(state, found, load));
    view.querySelector(".field").textContent = `${found.field} of each job`;
    const most = Math.max(0, ...found.jobs.map((j) => j.epochs));
    note.textContent =
      `${found.jobs.length} jobs; each line holds at most ${found.points} of its epochs ` +
      `(of up to ${most}), first, last, lowest and highest kept.`;
    if (u) u.destroy();
    u = draw(chart, found);
    table.replaceChildren(summaryTable(found, state.summary));
    parallel.replaceChildren(...(state.batch ? parallelChart(found, state.summary) : []));
  }

  load();
  return () => {
    closed = true;
    if (u) u.destroy();
  };
}

function remembered(state) {
  return {
    job: state.jobs,
    batch: state.batch,
    field: state.field === "loss" ? "" : state.field,
    summary: state.summary === "last" ? "" : state.summary,
    at: state.at,
  };
}

function controlsFor(state, found, reload) {
  const depth = Math.max(1, ...found.jobs.map((j) => j.layers));
  const fields = [...SCALARS];
  for (const name of PER_LAYER) for (let l = 1; l <= depth; l++) fields.push(`${name}_${l}`);
  const field = h(
    "select",
    { name: "field", id: "compare-field" },
    fields.map((f) => h("option", { value: f, selected: f === state.field }, f)),
  );
  const summary = h(
    "select",
    { name: "summary", id: "compare-summary" },
    Object.entries(SUMMARIES).map(([v, t]) =>
      h("option", { value: v, selected: v === state.summary }, t),
    ),
  );
  const at = h("input", {
    type: "number",
    min: 1,
    name: "at",
    id: "compare-at",
    value: state.at,
    placeholder: "epoch",
  });
  const changed = () => {
    state.field = field.value;
    state.summary = summary.value;
    state.at = at.value;
    if (state.summary === "at" && !state.at) return; // waits for the epoch
    reload();
  };
  for (const control of [field, summary, at]) control.addEventListener("change", changed);
  return [
    h("label", {}, "field ", field),
    h("label", {}, "summary ", summary),
    h("label", {}, "at epoch ", at),
  ];
}

// One line per job, each with its own epochs (uPlot's mode 2): lines thinned differently
// need no common x axis, so 200 jobs cost 200 × POINTS values, not their union.
function draw(container, found) {
  const values = found.jobs.flatMap((j) => j.value.filter((v) => v !== null));
  const log = values.length > 0 && values.every((v) => v > 0);
  const data = [null, ...found.jobs.map((j) => [j.epoch, j.value])];
  const series = [
    {},
    ...found.jobs.map((j, i) => ({
      label: j.name,
      stroke: PALETTE[i % PALETTE.length],
      width: 1.25,
      paths: uPlot.paths.linear(),
      points: { show: false },
      facets: [
        { scale: "x", auto: true },
        { scale: "y", auto: true },
      ],
    })),
  ];
  const u = new uPlot(
    {
      mode: 2,
      width: Math.max(container.clientWidth, 300),
      height: 320,
      legend: { show: false },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: log ? { distr: 3, log: 10 } : {} },
      axes: [
        { label: "epoch" },
        { label: found.field, size: 70, values: (_, ticks) => ticks.map(fmtTick) },
      ],
      series,
    },
    data,
    container,
  );
  container.uplot = u;
  container.dataset.lines = String(found.jobs.length);
  container.dataset.points = String(found.jobs.reduce((n, j) => n + j.epoch.length, 0));
  return u;
}

function summaryTable(found, summary) {
  const keys = found.varying;
  const head = ["", "job", "status", ...keys, "epochs", ...Object.values(SUMMARIES).slice(0, 3)];
  if (found.at !== null) head.push(`at ${found.at}`);
  const rows = found.jobs.map((j, i) =>
    h(
      "tr",
      { dataset: { jobId: j.id } },
      h("td", {}, h("span", { class: "swatch", style: `background:${PALETTE[i % 10]}` })),
      h("td", {}, h("a", { href: `#/jobs/${j.id}` }, j.name)),
      h("td", {}, statusBadge(j.status)),
      keys.map((k) => h("td", { class: "mono" }, JSON.stringify(j.hyperparameters[k]))),
      h("td", { class: "num" }, String(j.epochs)),
      ["last", "min", "max", ...(found.at !== null ? ["at"] : [])].map((k) =>
        h(
          "td",
          { class: k === summary ? "num chosen" : "num", dataset: { summary: k } },
          fmtLoss(j.summary[k]),
        ),
      ),
    ),
  );
  return h(
    "table",
    { class: "jobs compare" },
    h("thead", {}, h("tr", {}, head.map((n) => h("th", {}, n)))),
    h("tbody", {}, rows),
  );
}

// Parallel coordinates: one vertical axis per varying hyperparameter (numbers on a linear or,
// when they span two decades, a log scale; anything else as evenly spaced categories) and a
// last one for the summary; one polyline per job, coloured by its summary (blue = lowest).
function parallelChart(found, summary) {
  const keys = found.varying;
  const jobs = found.jobs.filter((j) => j.summary[summary] !== null);
  if (!keys.length || !jobs.length) return [];
  const W = 1000;
  const H = 280;
  const top = 24;
  const bottom = H - 24;
  const axes = keys.map((k) => axis(jobs.map((j) => j.hyperparameters[k]), k));
  axes.push(axis(jobs.map((j) => j.summary[summary]), summary));
  const x = (i) => 60 + (i * (W - 120)) / Math.max(1, axes.length - 1);
  const y = (t) => bottom - t * (bottom - top);
  // Parsed as markup, the <svg> gets SVG's namespace; its children are made in that one.
  const holder = h("div");
  holder.innerHTML = `<svg id="parallel-svg" viewBox="0 0 ${W} ${H}"></svg>`;
  const svg = holder.firstChild;
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(svg.namespaceURI, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const scores = jobs.map((j) => axes[axes.length - 1].at(j.summary[summary]));
  jobs.forEach((j, n) => {
    const values = [...keys.map((k) => j.hyperparameters[k]), j.summary[summary]];
    const d = values
      .map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(axes[i].at(v)).toFixed(1)}`)
      .join("");
    const hue = 220 - 220 * scores[n]; // blue (low) to red (high)
    add("path", { d, stroke: `hsl(${hue}, 70%, 45%)`, "data-job-id": j.id });
  });
  axes.forEach((a, i) => {
    add("line", { x1: x(i), x2: x(i), y1: top, y2: bottom, stroke: "#9ca3af" });
    add("text", { x: x(i), y: 14, "text-anchor": "middle" }, a.name);
    add("text", { x: x(i) + 4, y: bottom + 14 }, a.low);
    add("text", { x: x(i) + 4, y: top - 2 }, a.high);
  });
  return [h("section", { class: "card" }, h("h2", {}, `Hyperparameters against ${summary}`), svg)];
}

function axis(values, name) {
  const numbers = values.every((v) => typeof v === "number");
  if (!numbers) {
    const kinds = [...new Set(values.map((v) => JSON.stringify(v)))].sort();
    const at = (v) =>
      kinds.length < 2 ? 0.5 : kinds.indexOf(JSON.stringify(v)) / (kinds.length - 1);
    return { name, at, low: kinds[0], high: kinds[kinds.length - 1] };
  }
  const low = Math.min(...values);
  const high = Math.max(...values);
  const log = low > 0 && high / low >= 100;
  const f = log ? Math.log10 : (v) => v;
  const span = f(high) - f(low) || 1;
  return { name, at: (v) => (f(v) - f(low)) / span, low: fmtLoss(low), high: fmtLoss(high) };
}
