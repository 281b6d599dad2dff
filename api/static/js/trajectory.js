// Trajectories: the user picks weights w^l_kj and biases b^l_k (several at once) and sees
// their exact values at every snapshot epoch on one chart — the seed's question of how a
// bias moves next to a weight.

import { request } from "./api.js";
import { lineChart, PALETTE } from "./charts.js";
import { errorBox, h, paramLabel, paramName } from "./format.js";

// The API's name (w^1_{0,1}), which tells two parameters apart, and the label people read (w¹₀₁).
const nameOf = (p) => paramName(p.layer, p.param, p.k, p.j);
const labelOf = (p) => paramLabel(p.layer, p.param, p.k, p.j);

function pathOf(jobId, p) {
  const j = p.param === "weight" ? `&j=${p.j}` : "";
  return `/v1/jobs/${jobId}/trajectory?layer=${p.layer}&param=${p.param}&k=${p.k}${j}`;
}

function options(count, selected) {
  return Array.from({ length: count }, (_, i) =>
    h("option", { value: i, selected: i === selected }, String(i)),
  );
}

export function trajectories(job) {
  const layers = job.spec.network.layers; // n_0 … n_L
  const picked = [
    { layer: 1, param: "weight", k: 0, j: 0 },
    { layer: 1, param: "bias", k: 0 },
  ];
  const chart = h("div", { class: "chart", id: "chart-trajectory" });
  const chips = h("div", { class: "chips", id: "trajectory-picked" });
  const message = h("div");
  const form = picker(layers, (p) => {
    if (!picked.some((q) => nameOf(q) === nameOf(p))) picked.push(p);
    refresh();
  });
  const node = h(
    "section",
    { class: "card" },
    h("h2", {}, "Weight and bias trajectories"),
    h(
      "p",
      { class: "muted" },
      "Each parameter's exact value at every snapshot epoch. wˡₖⱼ is the weight from neuron j " +
        "of layer l−1 to neuron k of layer l; bˡₖ is the bias of neuron k of layer l.",
    ),
    form,
    chips,
    message,
    chart,
  );
  let plot = null;

  async function refresh() {
    chips.replaceChildren(
      ...picked.map((p, i) =>
        h(
          "span",
          { class: "chip", style: `border-color:${PALETTE[i % PALETTE.length]}` },
          labelOf(p),
          h(
            "button",
            {
              type: "button",
              class: "link",
              title: `remove ${labelOf(p)}`,
              onclick: () => (picked.splice(i, 1), refresh()),
            },
            "×",
          ),
        ),
      ),
    );
    const chosen = [...picked]; // the picks may change while their trajectories are read
    let answers;
    try {
      answers = await Promise.all(chosen.map((p) => request(pathOf(job.id, p))));
    } catch (error) {
      message.replaceChildren(errorBox(error));
      return;
    }
    message.replaceChildren();
    // Every trajectory of one job is read at the same snapshot epochs, but a running job may
    // gain one between two reads: join aligns them on epoch, leaving gaps where one is short.
    const data = answers.length ? uPlot.join(answers.map((a) => [a.epochs, a.values])) : [[]];
    const names = answers.map((a) => a.name).join(",");
    if (plot && chart.dataset.names === names) {
      plot.setData(data); // the same parameters, more epochs: keep the chart and its scale
      return;
    }
    const series = chosen.map((p) => ({ label: labelOf(p) }));
    plot = lineChart(chart, { series, yLabel: "value", points: data[0].length <= 60 }, data);
    chart.dataset.names = names;
  }

  return {
    node,
    refresh,
    get chart() {
      return plot;
    },
  };
}

function picker(layers, add) {
  const L = layers.length - 1;
  const layer = h(
    "select",
    { name: "layer" },
    Array.from({ length: L }, (_, i) => h("option", { value: i + 1 }, `layer ${i + 1}`)),
  );
  const param = h(
    "select",
    { name: "param" },
    h("option", { value: "weight" }, "weight w"),
    h("option", { value: "bias" }, "bias b"),
  );
  const k = h("select", { name: "k" });
  const j = h("select", { name: "j" });
  const jLabel = h("label", {}, "j ", j);
  const sync = () => {
    const l = Number(layer.value);
    k.replaceChildren(...options(layers[l], Number(k.value) || 0));
    j.replaceChildren(...options(layers[l - 1], Number(j.value) || 0));
    jLabel.hidden = param.value === "bias";
  };
  layer.addEventListener("change", sync);
  param.addEventListener("change", sync);
  sync();
  const submit = (event) => {
    event.preventDefault();
    const p = { layer: Number(layer.value), param: param.value, k: Number(k.value) };
    if (p.param === "weight") p.j = Number(j.value);
    add(p);
  };
  return h(
    "form",
    { class: "picker", id: "trajectory-picker", onsubmit: submit },
    h("label", {}, "", layer),
    h("label", {}, "", param),
    h("label", {}, "k ", k),
    jLabel,
    h("button", { type: "submit" }, "add"),
  );
}
