// A scheduled batch on its page: the scheduler, the rung ladder, the trials and their latest
// decisions, and for PBT who cloned whom.

import { fmtLoss, h, shortId, statusBadge } from "./format.js";

// The scheduler's name, metric and mode, its other settings, and the epochs trained so far.
export function schedulerFacts(batch) {
  const { name, metric, mode, ...settings } = batch.scheduler;
  const better = ["accuracy", "val_accuracy"].includes(metric) ? "max" : "min";
  const facts = [
    ["scheduler", name],
    ["metric", metric || "loss"],
    ["mode", mode || `${better} (default)`],
    ["epochs trained", String(batch.epochs_trained ?? 0)],
    ...Object.entries(settings)
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([key, value]) => [
        key.replaceAll("_", " "),
        Array.isArray(value) ? value.join(", ") : String(value),
      ]),
  ];
  return h(
    "dl",
    { class: "facts", id: "batch-scheduler" },
    facts.map(([key, value]) =>
      h("div", { dataset: { fact: key } }, h("dt", {}, key), h("dd", {}, value)),
    ),
  );
}

const LADDER_COLUMNS = [
  "bracket",
  "rung",
  "epoch",
  "reached",
  "heading",
  "paused",
  "promoted",
  "stopped",
];
// The bar's segments: a rung's trials by where they are; "ended" are those that reached it and
// then failed or were cancelled.
const SEGMENTS = [
  ["promoted", "promoted"],
  ["paused", "paused"],
  ["stopped", "stopped"],
  ["ended", "ended there"],
  ["heading", "heading there"],
];

// One row per rung (per bracket): the counts, and a bar of where the rung's trials are.
export function ladder(batch) {
  const widest = Math.max(1, ...batch.rungs.map((r) => r.reached + r.heading));
  const rows = batch.rungs.map((r) => {
    const share = {
      ...r,
      ended: Math.max(0, r.reached - r.promoted - r.paused - r.stopped),
    };
    const bar = h(
      "span",
      { class: "ladder-bar" },
      SEGMENTS.filter(([key]) => share[key] > 0).map(([key, label]) =>
        h("span", {
          class: `seg seg-${key}`,
          title: `${share[key]} ${label}`,
          style: `width:${((share[key] / widest) * 100).toFixed(2)}%`,
        }),
      ),
    );
    return h(
      "tr",
      { dataset: { bracket: r.bracket, rung: r.rung, epoch: r.epoch } },
      LADDER_COLUMNS.map((key) => h("td", { class: `num ${key}` }, String(r[key]))),
      h("td", { class: "bar-cell" }, bar),
    );
  });
  const legend = h(
    "p",
    { class: "legend ladder-legend" },
    SEGMENTS.map(([key, label]) => h("span", {}, h("span", { class: `swatch seg-${key}` }), label)),
  );
  return h(
    "div",
    {},
    h(
      "table",
      { class: "ladder", id: "ladder" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          LADDER_COLUMNS.map((n) => h("th", { class: "num" }, n)),
          h("th", {}, "trials"),
        ),
      ),
      h("tbody", {}, rows),
    ),
    legend,
  );
}

export function trialTable(batch) {
  const metric = batch.scheduler.metric || "loss";
  const rows = batch.trials.map((t) =>
    h(
      "tr",
      { dataset: { jobId: t.job_id, trial: t.trial } },
      h(
        "td",
        {},
        h("a", { href: `#/jobs/${t.job_id}` }, `trial ${t.trial}`),
        " ",
        h("span", { class: "muted mono" }, shortId(t.job_id)),
        t.parent_id
          ? h(
              "span",
              { class: "muted" },
              " ↳ fork of ",
              h("a", { href: `#/jobs/${t.parent_id}`, class: "mono" }, shortId(t.parent_id)),
              ` at epoch ${t.forked_at_epoch}`,
            )
          : null,
      ),
      h("td", {}, statusBadge(t.status)),
      h("td", { class: "num" }, t.rung === null ? "–" : String(t.rung)),
      h("td", { class: "num" }, String(t.epochs_done)),
      h("td", { class: "decision" }, decisionText(t.decision, metric)),
    ),
  );
  if (!rows.length) {
    rows.push(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No trials yet.")));
  }
  return h(
    "table",
    { class: "trials", id: "trials" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["trial", "status", "rung", "epochs", "latest decision"].map((n) => h("th", {}, n)),
      ),
    ),
    h("tbody", {}, rows),
  );
}

function decisionText(d, metric) {
  if (!d) return h("span", { class: "muted" }, "–");
  const detail = d.detail || {};
  let why = detail.reason;
  if (!why) {
    const bits = [];
    if (detail.rank !== undefined) bits.push(`ranked ${detail.rank} of ${detail.of}`);
    if (detail.value !== undefined) bits.push(`${metric} ${fmtLoss(detail.value)}`);
    if (d.action === "cloned") bits.push(`a clone of trial ${detail.source_trial}`);
    if ("next_stop" in detail) {
      bits.push(detail.next_stop === null ? "on to the end" : `on to epoch ${detail.next_stop}`);
    }
    why = bits.join(", ");
  }
  return [
    h("span", { class: `action action-${d.action}` }, d.action),
    ` at epoch ${d.epoch}`,
    why ? h("span", { class: "muted" }, ` — ${why}`) : null,
  ];
}

// PBT's exploits: every clone, the trial it cloned, and the values it explored.
export function cloneList(batch) {
  const clones = batch.decisions.filter((d) => d.action === "cloned");
  if (!clones.length) return h("p", { class: "muted", id: "clones" }, "No clones yet.");
  return h(
    "ul",
    { class: "clones", id: "clones" },
    clones.map((d) => {
      const detail = d.detail || {};
      return h(
        "li",
        { dataset: { jobId: d.job_id } },
        h("a", { href: `#/jobs/${d.job_id}` }, `trial ${d.trial}`),
        " cloned ",
        h("a", { href: `#/jobs/${detail.source}` }, `trial ${detail.source_trial}`),
        ` at epoch ${d.epoch}: `,
        h("span", { class: "mono" }, changeText(detail.source_point, detail.point)),
      );
    }),
  );
}

function changeText(before, after) {
  const old = before || {};
  const now = after || {};
  const paths = [...new Set([...Object.keys(old), ...Object.keys(now)])];
  const changes = paths.map((path) =>
    old[path] === now[path]
      ? `${path} ${short(now[path])}`
      : `${path} ${short(old[path])}→${short(now[path])}`,
  );
  return changes.length ? changes.join(", ") : "same point";
}

function short(value) {
  if (value === undefined) return "–";
  if (typeof value === "number" && !Number.isInteger(value)) return String(+value.toPrecision(4));
  return JSON.stringify(value);
}
