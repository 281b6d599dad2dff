// A job page's health panel: each layer's update ratio ‖ΔWˡ‖/‖Wˡ‖ on a log axis with the 1e-3
// guide (CS231n's rule of thumb), its dead and saturated units as fractions, and the alerts
// of the job's rules, each linking to the job page marked at its epoch.

import { request } from "./api.js";
import { lineChart, PALETTE, scaleToggle } from "./charts.js";
import { h, sup } from "./format.js";

const MAX_POINTS = 2000;
const FIELDS = "update_ratio_weights,dead_fraction,saturated_fraction";

const layerColumn = (rows, l) => rows.map((r) => (r && r[l] !== null ? r[l] : null));
const hasValues = (column) => column.some((v) => v !== null);

export function healthPanel(job, epoch) {
  const L = job.spec.network.layers.length - 1;
  const marks = epoch ? [{ x: epoch, label: `epoch ${epoch}` }] : [];
  const alerts = h("ul", { class: "alerts", id: "health-alerts" });
  const ratio = h("div", { class: "chart", id: "chart-update-ratio" });
  const units = h("div", { class: "chart", id: "chart-units" });
  const tools = h("div", { class: "tools" });
  const unitsNote = h("p", { class: "muted" });
  const node = h(
    "section",
    { class: "card wide", id: "health" },
    h("h2", {}, "Health", tools),
    alerts,
    h("p", { class: "muted" }, "Update ratio ‖ΔWˡ‖/‖Wˡ‖ over each epoch; near 1e-3 is healthy."),
    ratio,
    unitsNote,
    units,
  );
  const charts = {};

  function showAlerts(current) {
    const items = (current.health || []).map((a) =>
      h(
        "li",
        { class: a.active ? "alert active" : "alert" },
        h("span", { class: "badge" }, a.active ? "active" : "ended"),
        " ",
        h("a", { href: `#/jobs/${current.id}/epochs/${a.since}` }, a.message),
        a.active ? "" : h("span", { class: "muted" }, ` (until epoch ${a.epoch})`),
      ),
    );
    alerts.replaceChildren(
      ...(items.length ? items : [h("li", { class: "muted" }, "No health rule has fired.")]),
    );
  }

  function draw(cols) {
    const data = [cols.epoch];
    const series = [];
    for (let l = 0; l < L; l++) {
      data.push(layerColumn(cols.update_ratio_weights, l));
      series.push({ label: `‖ΔW${sup(l + 1)}‖/‖W${sup(l + 1)}‖`, stroke: PALETTE[l % 10] });
    }
    const guides = [{ y: 1e-3, label: "1e-3" }];
    const spec = { yLabel: "update ratio", log: true, series, marks, guides, height: 220 };
    charts.ratio = lineChart(ratio, spec, data);
    tools.replaceChildren(scaleToggle(charts.ratio));
    const fractions = [cols.epoch];
    const kinds = [];
    for (let l = 0; l < L - 1; l++) {
      const stroke = PALETTE[l % 10];
      for (const [field, word, dash] of [
        ["dead_fraction", "dead", undefined],
        ["saturated_fraction", "saturated", [6, 4]],
      ]) {
        const column = layerColumn(cols[field], l);
        if (!hasValues(column)) continue;
        fractions.push(column);
        kinds.push({ label: `layer ${l + 1} ${word}`, stroke, dash });
      }
    }
    units.hidden = !kinds.length;
    unitsNote.textContent = kinds.length
      ? "Share of each hidden layer's units dead (ReLU: 0 on every row of the epoch) or " +
        "saturated (σ′ < 1% of its largest on ≥ 99% of rows)."
      : "";
    if (kinds.length) {
      const fspec = { yLabel: "share of units", series: kinds, marks, height: 200 };
      charts.units = lineChart(units, fspec, fractions);
    }
  }

  async function refresh(current) {
    showAlerts(current);
    const query = `format=columns&points=${MAX_POINTS}&fields=${FIELDS}`;
    const body = await request(`/v1/jobs/${current.id}/epochs?${query}`);
    if (body.columns.epoch.length) draw(body.columns);
  }

  return { node, refresh };
}
