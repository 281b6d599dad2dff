// uPlot (vendored, the global `uPlot`) behind two helpers: a line chart with a linear/log
// toggle and drag-zoom (double-click resets), and a sparkline. Each chart's container keeps
// its uPlot instance as `container.uplot` and its point count in data-points, which the
// browser tests read.

import { fmtValue, h } from "./format.js";

export const PALETTE = [
  "#2563eb",
  "#dc2626",
  "#16a34a",
  "#9333ea",
  "#ea580c",
  "#0891b2",
  "#be185d",
  "#65a30d",
  "#4f46e5",
  "#b45309",
];

// Lighter shades of the first colours: a fork's chart draws its parent's epochs in them.
export const LIGHT = ["#93c5fd", "#fca5a5", "#86efac", "#d8b4fe"];

// A dashed vertical line at each {x, label} of spec.marks (a fork's epoch, an alert's), and a
// dashed horizontal one at each {y, label} of spec.guides (the update ratio's 1e-3).
function marker(marks, guides) {
  return {
    hooks: {
      draw: (u) => {
        const { ctx, bbox } = u;
        ctx.save();
        ctx.strokeStyle = "#6b7280";
        ctx.fillStyle = "#374151";
        ctx.setLineDash([4, 4]);
        ctx.font = `${11 * devicePixelRatio}px sans-serif`;
        for (const { x, label } of marks) {
          const px = u.valToPos(x, "x", true);
          ctx.beginPath();
          ctx.moveTo(px, bbox.top);
          ctx.lineTo(px, bbox.top + bbox.height);
          ctx.stroke();
          ctx.fillText(label, px + 4 * devicePixelRatio, bbox.top + 12 * devicePixelRatio);
        }
        for (const { y, label } of guides) {
          const py = u.valToPos(y, "y", true);
          if (!(py >= bbox.top && py <= bbox.top + bbox.height)) continue;
          ctx.beginPath();
          ctx.moveTo(bbox.left, py);
          ctx.lineTo(bbox.left + bbox.width, py);
          ctx.stroke();
          ctx.fillText(label, bbox.left + 4 * devicePixelRatio, py - 4 * devicePixelRatio);
        }
        ctx.restore();
      },
    },
  };
}

const positive = (column) => column.map((v) => (v === null || !(v > 0) ? null : v));

function view(data, log) {
  return log ? [data[0], ...data.slice(1).map(positive)] : data;
}

function options(spec, width, log) {
  return {
    width,
    height: spec.height || 260,
    scales: { x: { time: false }, y: log ? { distr: 3, log: 10 } : { auto: true } },
    axes: [
      { label: spec.xLabel || "epoch", size: 40 },
      { label: spec.yLabel || "", size: 70, values: (u, ticks) => ticks.map(fmtTick) },
    ],
    series: [
      { label: spec.xLabel || "epoch" },
      ...spec.series.map((s, i) => ({
        label: s.label,
        stroke: s.stroke || PALETTE[i % PALETTE.length],
        dash: s.dash,
        width: s.width || 1.5,
        points: { show: spec.points || false, size: 5 },
        spanGaps: true,
        value: (u, v) => fmtValue(v),
      })),
    ],
    legend: { live: true },
    cursor: { drag: { x: true, y: false }, points: { size: 6 } },
    plugins:
      (spec.marks || []).length || (spec.guides || []).length
        ? [marker(spec.marks || [], spec.guides || [])]
        : [],
  };
}

export function fmtTick(v) {
  if (v === null) return "";
  const abs = Math.abs(v);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e5) ? v.toExponential(0) : String(+v.toPrecision(4));
}

// A line chart in `container`. spec: {series: [{label, stroke?, dash?}], xLabel, yLabel,
// height, log, points, marks: [{x, label}], guides: [{y, label}]}. data: uPlot's aligned
// columns [xs, ys1, ys2, …].
export function lineChart(container, spec, data) {
  const chart = { container, spec, data, log: Boolean(spec.log), u: null };
  if (container.uplot) container.uplot.destroy(); // a chart drawn again in the same place
  if (container.resizer) container.resizer.disconnect();
  const plot = h("div", { class: "plot" });
  container.replaceChildren(plot);

  chart.render = () => {
    if (chart.u) chart.u.destroy();
    const width = Math.max(container.clientWidth, 300);
    chart.u = new uPlot(options(spec, width, chart.log), view(chart.data, chart.log), plot);
    container.uplot = chart.u;
    mark(container, chart.data);
    container.dataset.scale = chart.log ? "log" : "linear";
    container.dataset.marks = (spec.marks || []).map((m) => m.x).join(",");
    container.dataset.guides = (spec.guides || []).map((g) => g.y).join(",");
  };
  chart.setLog = (log) => {
    chart.log = log;
    chart.render();
  };
  chart.setData = (data) => {
    chart.data = data;
    mark(container, data);
    chart.u.setData(view(data, chart.log), true);
  };
  // New rows at the end: the scales follow them unless the user has zoomed into the past.
  chart.append = (rows) => {
    const xs = chart.data[0];
    const last = xs.length ? xs[xs.length - 1] : null;
    const max = chart.u.scales.x.max;
    const following = last === null || max === undefined || max === null || max >= last;
    for (const row of rows) row.forEach((v, i) => chart.data[i].push(v));
    mark(container, chart.data);
    chart.u.setData(view(chart.data, chart.log), following);
  };
  container.resizer = new ResizeObserver(() => {
    if (chart.u && container.clientWidth && container.clientWidth !== chart.u.width) {
      chart.u.setSize({ width: container.clientWidth, height: chart.u.height });
    }
  });
  container.resizer.observe(container);
  chart.render();
  return chart;
}

// What the chart holds, for the browser tests and anyone inspecting the page.
function mark(container, data) {
  const xs = data[0];
  container.dataset.points = String(xs.length);
  container.dataset.lastX = xs.length ? String(xs[xs.length - 1]) : "";
}

// A linear/log switch bound to a chart.
export function scaleToggle(chart) {
  const button = h("button", { type: "button", class: "toggle", "aria-pressed": chart.log });
  const label = () => {
    button.textContent = chart.log ? "scale: log" : "scale: linear";
    button.title = chart.log ? "show on a linear scale" : "show on a log scale";
    button.setAttribute("aria-pressed", String(chart.log));
  };
  button.addEventListener("click", () => {
    chart.setLog(!chart.log);
    label();
  });
  label();
  return button;
}

// A small loss curve without axes, on a log scale when every value is positive.
export function sparkline(container, xs, ys, stroke = PALETTE[0]) {
  const log = ys.length > 0 && ys.every((v) => v !== null && v > 0);
  const u = new uPlot(
    {
      width: 120,
      height: 28,
      cursor: { show: false },
      legend: { show: false },
      select: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: false }, y: log ? { distr: 3, log: 10 } : { auto: true } },
      series: [{}, { stroke, width: 1.25, spanGaps: true }],
    },
    [xs, ys],
    container,
  );
  container.uplot = u;
  container.dataset.points = String(xs.length);
  return u;
}
