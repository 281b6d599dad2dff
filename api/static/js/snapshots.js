// The network at a snapshot epoch: a heatmap of W^l and b^l with a slider over the epochs that
// have snapshots, and the npz of that epoch.

import { download, request } from "./api.js";
import { errorBox, h, sup } from "./format.js";
import { forkControl } from "./fork.js";
import { heatmap } from "./heatmap.js";

const MAX_PAGES = 20; // 20 × 10,000 snapshot epochs is more than a slider can tell apart

async function snapshotEpochs(jobId) {
  const epochs = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const c = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const answer = await request(`/v1/jobs/${jobId}/snapshots?limit=10000${c}`);
    epochs.push(...answer.items.map((item) => item.epoch));
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return epochs;
}

export function snapshots(job) {
  const L = job.spec.network.layers.length - 1;
  const map = heatmap();
  map.canvas.id = "heatmap";
  const layer = h(
    "select",
    { id: "heatmap-layer", name: "layer" },
    Array.from({ length: L }, (_, i) =>
      h("option", { value: i + 1 }, `W${sup(i + 1)}, b${sup(i + 1)}`),
    ),
  );
  const slider = h("input", {
    type: "range",
    id: "snapshot-slider",
    min: 0,
    max: 0,
    value: 0,
    step: 1,
  });
  const label = h("output", { id: "snapshot-epoch" }, "–");
  const save = h("button", { type: "button", id: "download-npz" }, "download npz");
  const message = h("div");
  let shown = null;
  const fork = forkControl(job, () => shown);
  const node = h(
    "section",
    { class: "card" },
    h("h2", {}, "Parameters at a snapshot"),
    h(
      "div",
      { class: "picker" },
      h("label", {}, "layer ", layer),
      h("label", { class: "grow" }, "epoch ", slider, " ", label),
      save,
      fork.button,
    ),
    fork.form,
    message,
    map.node,
  );
  let epochs = [];
  const cache = new Map(); // epoch → layers, so sliding back and forth reads each once

  const epochAt = () => epochs[Number(slider.value)];

  async function draw() {
    const epoch = epochAt();
    if (epoch === undefined) return;
    label.textContent = String(epoch);
    let layers = cache.get(epoch);
    if (!layers) {
      try {
        layers = (await request(`/v1/jobs/${job.id}/snapshots/${epoch}`)).layers;
      } catch (error) {
        message.replaceChildren(errorBox(error));
        return;
      }
      cache.set(epoch, layers);
    }
    if (epoch !== epochAt()) return; // the slider moved on while this was read
    message.replaceChildren();
    const l = Number(layer.value);
    const { weights, biases } = layers[l - 1];
    shown = epoch;
    fork.update();
    map.draw(l, epoch, weights, biases);
  }

  slider.addEventListener("input", draw);
  layer.addEventListener("change", draw);
  save.addEventListener("click", async () => {
    const epoch = shown ?? "latest";
    try {
      await download(
        `/v1/jobs/${job.id}/snapshots/${epoch}/weights.npz`,
        `${job.name}-${job.id.slice(0, 8)}-epoch-${epoch}.npz`.replace(/[^\w.-]+/g, "_"),
      );
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  });

  // Read the snapshot epochs again (a running job gains some); stays at the same epoch unless
  // the slider was at the end, then it follows the newest.
  async function refresh() {
    let fresh;
    try {
      fresh = await snapshotEpochs(job.id);
    } catch (error) {
      message.replaceChildren(errorBox(error));
      return;
    }
    const atEnd = !epochs.length || Number(slider.value) === epochs.length - 1;
    const current = epochAt();
    epochs = fresh;
    slider.max = String(Math.max(0, epochs.length - 1));
    slider.disabled = epochs.length < 2;
    save.disabled = !epochs.length;
    if (!epochs.length) {
      message.replaceChildren(h("p", { class: "muted" }, "No snapshot yet."));
      return;
    }
    const index = atEnd ? epochs.length - 1 : Math.max(0, epochs.indexOf(current));
    slider.value = String(index);
    if (epochAt() !== shown) await draw();
  }

  return { node, refresh };
}
