// Batches: the list (newest first, paged) and one batch's progress and leaderboard, refreshed
// while its jobs run; for a batch with a scheduler also its rung ladder, its trials and their
// latest decisions, and PBT's clones.

import { query, request } from "./api.js";
import { cloneList, ladder, schedulerFacts, trialTable } from "./ladder.js";
import {
  errorBox,
  fmtLoss,
  fmtTime,
  h,
  progress,
  STATUSES,
  statusBadge,
} from "./format.js";

const REFRESH_MS = 2000;

export function batchesPage(view) {
  const cursors = [null];
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  const message = h("div");
  view.append(
    h("h1", {}, "Batches"),
    message,
    h(
      "table",
      { class: "batches" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["name", "grid", "created"].map((n) => h("th", {}, n)),
        ),
      ),
      body,
    ),
    pager,
  );

  async function load() {
    let page;
    try {
      page = await request(
        `/v1/batches${query({ limit: 25, cursor: cursors[cursors.length - 1] })}`,
      );
    } catch (error) {
      message.replaceChildren(errorBox(error));
      return;
    }
    body.replaceChildren(
      ...page.items.map((b) =>
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/batches/${b.id}` }, b.name)),
          h("td", { class: "mono" }, gridText(b.grid)),
          h("td", {}, fmtTime(b.created_at)),
        ),
      ),
    );
    if (!page.items.length) {
      body.append(h("tr", {}, h("td", { colspan: 3, class: "muted" }, "No batches yet.")));
    }
    const newer = h("button", { type: "button", disabled: cursors.length < 2 }, "← newer");
    newer.addEventListener("click", () => (cursors.pop(), load()));
    const older = h("button", { type: "button", disabled: !page.next_cursor }, "older →");
    older.addEventListener("click", () => (cursors.push(page.next_cursor), load()));
    pager.replaceChildren(newer, older);
  }

  load();
}

function gridText(grid) {
  return Object.entries(grid)
    .map(([path, values]) => `${path} ∈ {${values.map((v) => JSON.stringify(v)).join(", ")}}`)
    .join(" × ");
}

function pointText(point) {
  if (!point) return "–";
  return Object.entries(point)
    .map(([path, value]) => `${path}=${JSON.stringify(value)}`)
    .join(", ");
}

export function batchPage(view, batchId) {
  let timer = null;
  let closed = false;
  const content = h("div");
  view.append(content);

  async function load() {
    let batch;
    try {
      batch = await request(`/v1/batches/${batchId}`);
    } catch (error) {
      content.replaceChildren(errorBox(error));
      return;
    }
    if (closed) return;
    content.replaceChildren(...render(batch));
    if (batch.done < batch.total) timer = setTimeout(load, REFRESH_MS);
  }

  load();
  return () => {
    closed = true;
    clearTimeout(timer);
  };
}

// A batch's statuses in a fixed order: the shared ones, then a scheduler's paused and stopped,
// then anything else the counts hold.
function isScheduled(batch) {
  const name = batch.scheduler && batch.scheduler.name;
  return Boolean(name) && name !== "fifo";
}

function render(batch) {
  const scheduled = isScheduled(batch);
  const known = STATUSES.concat(Object.keys(batch.counts).filter((s) => !STATUSES.includes(s)));
  const counts = known
    .filter((s) => batch.counts[s])
    .map((s) => h("span", { class: "count-chip" }, statusBadge(s), ` ${batch.counts[s]}`));
  const searched = [gridText(batch.grid), spaceText(batch.space)].filter(Boolean).join(" × ");
  const parts = [
    h("p", {}, h("a", { href: "#/batches" }, "← batches")),
    h(
      "h1",
      {},
      batch.name,
      " ",
      h(
        "a",
        { class: "button", id: "compare-batch", href: `#/compare?batch=${batch.id}` },
        "compare its jobs",
      ),
    ),
    h(
      "p",
      { class: "muted" },
      scheduled
        ? `created ${fmtTime(batch.created_at)} · ${searched || "no search space"}`
        : `created ${fmtTime(batch.created_at)} · grid ${gridText(batch.grid)}`,
    ),
    h("p", {}, progress(batch.done, batch.total), " ", counts),
  ];
  if (scheduled) {
    parts.push(schedulerFacts(batch));
    if (batch.rungs && batch.rungs.length) parts.push(h("h2", {}, "Rung ladder"), ladder(batch));
  }
  parts.push(h("h2", {}, "Leaderboard"), leaderboard(batch, scheduled));
  if (scheduled) {
    parts.push(h("h2", {}, "Trials"), trialTable(batch));
    if (batch.scheduler.name === "pbt") parts.push(h("h2", {}, "Clones"), cloneList(batch));
  }
  return parts;
}

function leaderboard(batch, scheduled) {
  const metric = scheduled ? batch.scheduler.metric || "loss" : null;
  const rows = batch.leaderboard.map((r, i) =>
    h(
      "tr",
      { dataset: { jobId: r.job_id } },
      h("td", { class: "num" }, String(i + 1)),
      scheduled && h("td", { class: "num" }, r.trial === null ? "–" : String(r.trial)),
      h("td", { class: "mono" }, h("a", { href: `#/jobs/${r.job_id}` }, pointText(r.grid_point))),
      h("td", {}, statusBadge(r.status)),
      scheduled &&
        h(
          "td",
          { class: "num value", title: `${metric} at epoch ${r.epoch ?? "–"}` },
          fmtLoss(r.value),
          r.epoch === null || r.epoch === undefined
            ? null
            : h("span", { class: "muted" }, ` @ ${r.epoch}`),
        ),
      h("td", { class: "num" }, fmtLoss(r.best_loss)),
      h("td", { class: "num" }, fmtLoss(r.final_loss)),
    ),
  );
  const columns = scheduled
    ? ["#", "trial", "grid point", "status", `value (${metric})`, "best loss", "final loss"]
    : ["#", "grid point", "status", "best loss", "final loss"];
  return h(
    "table",
    { class: "leaderboard", id: "leaderboard" },
    h("thead", {}, h("tr", {}, columns.map((n) => h("th", {}, n)))),
    h("tbody", {}, rows),
  );
}

function spaceText(space) {
  return Object.entries(space || {})
    .map(([path, dim]) =>
      Object.entries(dim)
        .map(([kind, args]) =>
          kind === "choice"
            ? `${path} ∈ {${args.map((v) => JSON.stringify(v)).join(", ")}}`
            : `${path} ~ ${kind}(${[].concat(args).join(", ")})`,
        )
        .join(" "),
    )
    .join(" × ");
}
