// The jobs page (a filtered, paged table with loss sparklines, refreshed while jobs run) and
// the new-job form.

import { query, request } from "./api.js";
import { sparkline } from "./charts.js";
import {
  errorBox,
  fmtDuration,
  fmtLoss,
  fmtTime,
  h,
  jobDuration,
  progress,
  STATUSES,
  statusBadge,
  TERMINAL,
} from "./format.js";

const PAGE = 25;
const REFRESH_MS = 2000;
const ORDERS = { "-created_at": "newest first", created_at: "oldest first", final_loss: "lowest final loss" };

export function jobsPage(view, search) {
  const params = new URLSearchParams(search || "");
  const state = {
    status: params.getAll("status"),
    name: params.get("name") || "",
    order: params.get("order_by") || "-created_at",
    cursors: [null], // the cursor of each page seen so far, for "newer"
    timer: null,
  };
  const sparks = new Map(); // job id → {done, columns}: redrawn only when epochs_done moves
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  const message = h("div");
  view.append(
    h("h1", {}, "Jobs"),
    filters(state, () => reload(true)),
    message,
    h("table", { class: "jobs", id: "jobs-table" }, head(), body),
    pager,
  );

  async function reload(fromStart = false) {
    clearTimeout(state.timer);
    if (fromStart) state.cursors = [null];
    remember(state);
    const cursor = state.cursors[state.cursors.length - 1];
    let page;
    try {
      page = await request(
        `/v1/jobs${query({ status: state.status, name: state.name, order_by: state.order, limit: PAGE, cursor })}`,
      );
    } catch (error) {
      message.replaceChildren(errorBox(error));
      return;
    }
    message.replaceChildren();
    for (const cell of body.querySelectorAll(".spark")) if (cell.uplot) cell.uplot.destroy();
    body.replaceChildren(...page.items.map((job) => row(job, sparks)));
    if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No jobs match.")));
    pager.replaceChildren(...pagerButtons(state, page.next_cursor, reload));
    if (page.items.some((job) => !TERMINAL.has(job.status))) {
      state.timer = setTimeout(reload, REFRESH_MS);
    }
  }

  reload();
  return () => clearTimeout(state.timer);
}

// The filters stay in the address (#/jobs?status=…&name=…) so a filtered view can be shared.
function remember(state) {
  const q = query({ status: state.status, name: state.name, order_by: state.order === "-created_at" ? "" : state.order });
  history.replaceState(null, "", `#/jobs${q}`);
}

function filters(state, apply) {
  const boxes = STATUSES.map((status) =>
    h(
      "label",
      { class: `chip status-${status}` },
      h("input", {
        type: "checkbox",
        name: "status",
        value: status,
        checked: state.status.includes(status),
        onchange: (event) => {
          const on = event.target.checked;
          state.status = on ? [...state.status, status] : state.status.filter((s) => s !== status);
          apply();
        },
      }),
      status,
    ),
  );
  let typing = null;
  const name = h("input", {
    type: "search",
    name: "name",
    placeholder: "name starts with…",
    value: state.name,
    oninput: (event) => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        state.name = event.target.value.trim();
        apply();
      }, 300);
    },
  });
  const order = h(
    "select",
    { name: "order_by", onchange: (event) => ((state.order = event.target.value), apply()) },
    Object.entries(ORDERS).map(([value, text]) => h("option", { value, selected: value === state.order }, text)),
  );
  return h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, boxes, name, order);
}

function head() {
  const names = ["name", "status", "progress", "final loss", "best loss", "loss", "created", "duration"];
  return h("thead", {}, h("tr", {}, names.map((n) => h("th", {}, n))));
}

function row(job, sparks) {
  const cell = h("td", { class: "spark" });
  drawSpark(cell, job, sparks);
  return h(
    "tr",
    { dataset: { jobId: job.id, status: job.status } },
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, job.name)),
    h("td", {}, statusBadge(job.status)),
    h("td", {}, progress(job.epochs_done, job.epochs_total)),
    h("td", { class: "num" }, fmtLoss(job.final_loss)),
    h("td", { class: "num" }, fmtLoss(job.best_loss)),
    cell,
    h("td", {}, fmtTime(job.created_at)),
    h("td", { class: "num" }, fmtDuration(jobDuration(job))),
  );
}

async function drawSpark(cell, job, sparks) {
  if (!job.epochs_done) return;
  let cached = sparks.get(job.id);
  if (!cached || cached.done !== job.epochs_done) {
    try {
      const r = await request(`/v1/jobs/${job.id}/epochs?points=40&fields=loss&format=columns`);
      cached = { done: job.epochs_done, columns: r.columns };
      sparks.set(job.id, cached);
    } catch {
      return; // a deleted job or a lost key: the row shows no sparkline
    }
  }
  sparkline(cell, cached.columns.epoch, cached.columns.loss);
}

function pagerButtons(state, next, reload) {
  const newer = h("button", { type: "button", disabled: state.cursors.length < 2 }, "← newer");
  newer.addEventListener("click", () => {
    state.cursors.pop();
    reload();
  });
  const older = h("button", { type: "button", disabled: !next }, "older →");
  older.addEventListener("click", () => {
    state.cursors.push(next);
    reload();
  });
  return [newer, h("span", { class: "muted" }, `page ${state.cursors.length}`), older];
}

const EXAMPLE = {
  name: "xor",
  network: { layers: [2, 4, 1] },
  optimizer: { learning_rate: 2.0 },
  epochs: 3000,
  snapshot_every: 100,
  dataset: { builtin: "xor" },
};

export function newJobPage(view) {
  const text = h("textarea", { id: "spec", rows: 16, spellcheck: "false" }, JSON.stringify(EXAMPLE, null, 2));
  const message = h("div");
  const submit = async (event) => {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(text.value);
    } catch (error) {
      message.replaceChildren(errorBox(new Error(`not JSON: ${error.message}`)));
      return;
    }
    try {
      const job = await request("/v1/jobs", { method: "POST", body });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  };
  view.append(
    h("h1", {}, "New job"),
    h("p", { class: "muted" }, "A job body as for POST /v1/jobs: the seed's XOR example to start from."),
    h("form", { class: "new-job", onsubmit: submit }, text, h("button", { type: "submit" }, "Submit"), message),
  );
}
