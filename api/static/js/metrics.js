// The per-epoch charts of a job page: loss (training and validation), accuracy when the loss
// has one, and the gradient norms ‖∂C/∂W^l‖ and ‖∂C/∂b^l‖ of every layer on one chart.

import { LIGHT, lineChart, PALETTE, scaleToggle } from "./charts.js";
import { h, sup } from "./format.js";

const MAX_POINTS = 2000; // a long history is downsampled by the API (first/last/min/max kept)
const DRAW_MS = 250;
const FIELDS = "loss,val_loss,accuracy,val_accuracy,grad_norm_weights,grad_norm_biases";

export function epochsPath(jobId) {
  return `/v1/jobs/${jobId}/epochs?format=columns&points=${MAX_POINTS}&fields=${FIELDS}`;
}

// A fast job streams tens of thousands of epochs a second: past MAX_LIVE streamed points the
// loss chart keeps every other one of them (and the last) until the history is read again.
const MAX_LIVE = 20000;

function halve(data, from) {
  const last = data[0].length - 1;
  const keep = (_, i) => i < from || (i - from) % 2 === 0 || i === last;
  return data.map((column) => column.filter(keep));
}

const hasValues = (column) => column.some((v) => v !== null);

function section(id, title, ...extra) {
  const chart = h("div", { class: "chart", id });
  const tools = h("div", { class: "tools" });
  return {
    node: h("section", { class: "card" }, h("h2", {}, title, tools), ...extra, chart),
    chart,
    tools,
  };
}

export function metricCharts(job) {
  const L = job.spec.network.layers.length - 1;
  const note = h("p", { class: "muted note" });
  const loss = section("chart-loss", "Loss per epoch", note);
  const accuracy = section("chart-accuracy", "Accuracy per epoch");
  const grads = section(
    "chart-grad",
    "Gradient norms per layer",
    h("p", { class: "muted" }, "‖∂C/∂Wˡ‖ solid, ‖∂C/∂bˡ‖ dashed, one colour per layer l."),
  );
  accuracy.node.hidden = true;
  const charts = {};

  // A fork's chart draws its parent's epochs (≤ k) in a lighter shade, then its own from k on
  // (k in both, so the lines join), and marks the fork epoch.
  const k = job.forked_at_epoch ?? null;
  const split = (column, xs) =>
    k === null
      ? [column]
      : [xs.map((e, i) => (e <= k ? column[i] : null)), xs.map((e, i) => (e >= k ? column[i] : null))];
  const named = (label, stroke, light) =>
    k === null
      ? [{ label, stroke }]
      : [{ label: `${label}, parent's (≤ ${k})`, stroke: light }, { label, stroke }];
  let withVal = false;

  function lossColumns(cols) {
    withVal = job.spec.validation_split > 0 || hasValues(cols.val_loss);
    const data = [cols.epoch, ...split(cols.loss, cols.epoch)];
    const series = named("training loss", PALETTE[0], LIGHT[0]);
    if (withVal) {
      data.push(...split(cols.val_loss, cols.epoch));
      series.push(...named("validation loss", PALETTE[1], LIGHT[1]));
    }
    return { data, series };
  }

  // A streamed point as a row of the loss chart's columns.
  function lossRow(p) {
    const row = [p.epoch, ...split([p.loss], [p.epoch]).map((c) => c[0])];
    if (withVal) row.push(...split([p.val_loss], [p.epoch]).map((c) => c[0]));
    return row;
  }

  function gradColumns(cols) {
    const data = [cols.epoch];
    const series = [];
    for (let l = 0; l < L; l++) {
      const stroke = PALETTE[l % PALETTE.length];
      data.push(cols.grad_norm_weights.map((r) => (r ? r[l] : null)));
      series.push({ label: `‖∂C/∂W${sup(l + 1)}‖`, stroke });
      data.push(cols.grad_norm_biases.map((r) => (r ? r[l] : null)));
      series.push({ label: `‖∂C/∂b${sup(l + 1)}‖`, stroke, dash: [6, 4] });
    }
    return { data, series };
  }

  function accuracyColumns(cols) {
    const data = [cols.epoch, cols.accuracy];
    const series = [{ label: "training accuracy" }];
    if (hasValues(cols.val_accuracy)) {
      data.push(cols.val_accuracy);
      series.push({ label: "validation accuracy" });
    }
    return { data, series };
  }

  function show(name, parts, columns, spec) {
    const { data, series } = columns;
    if (!charts[name] || charts[name].spec.series.length !== series.length) {
      charts[name] = lineChart(parts.chart, { ...spec, series }, data);
      if (spec.toggle) parts.tools.replaceChildren(scaleToggle(charts[name]));
    } else {
      charts[name].setData(data);
    }
  }

  // The whole (possibly downsampled) history, as GET …/epochs?format=columns answers it.
  function update(body) {
    const cols = body.columns;
    const d = body.downsampled;
    note.textContent = d
      ? `${d.points} of ${d.of} epochs shown (first, last, lowest and highest loss kept); drag to zoom, double-click to reset`
      : "drag to zoom, double-click to reset";
    const marks = k === null ? [] : [{ x: k, label: `forked at ${k}` }];
    show("loss", loss, lossColumns(cols), { yLabel: "loss", log: true, toggle: true, marks });
    read = cols.epoch.length;
    show("grads", grads, gradColumns(cols), { yLabel: "norm", log: true, toggle: true });
    accuracy.node.hidden = !hasValues(cols.accuracy);
    if (!accuracy.node.hidden) {
      show("accuracy", accuracy, accuracyColumns(cols), { yLabel: "accuracy", height: 200 });
    }
  }

  // Epochs streamed by the events endpoint ({epoch, loss, val_loss} each), drawn at most a few
  // times a second: a fast job sends thousands of epochs a second.
  let pending = [];
  let read = 0; // points of the loss chart that came from the last read of the history
  let drawing = null;
  function append(points) {
    pending.push(...points);
    drawing = drawing || setTimeout(drawPending, DRAW_MS);
  }

  function drawPending() {
    drawing = null;
    const chart = charts.loss;
    if (!chart) return;
    const xs = chart.data[0];
    const last = xs.length ? xs[xs.length - 1] : -1;
    const rows = pending.filter((p) => p.epoch > last).map(lossRow);
    pending = [];
    if (rows.length) chart.append(rows);
    if (chart.data[0].length - read > MAX_LIVE) chart.setData(halve(chart.data, read));
  }

  // The last epoch drawn or waiting to be: where the events stream resumes.
  const lastEpoch = () => {
    const xs = charts.loss ? charts.loss.data[0] : [];
    const drawn = xs.length ? xs[xs.length - 1] : 0;
    return pending.length ? Math.max(drawn, pending[pending.length - 1].epoch) : drawn;
  };

  return { nodes: [loss.node, accuracy.node, grads.node], update, append, lastEpoch };
}
