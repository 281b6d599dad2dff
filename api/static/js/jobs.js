// The jobs page: a filtered, paged table with loss sparklines, refreshed while jobs run; the
// jobs ticked in its last column open together on the compare page.

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
const ORDERS = {
  "-created_at": "newest first",
  created_at: "oldest first",
  final_loss: "lowest final loss",
};

export function jobsPage(view, search) {
  const params = new URLSearchParams(search || "");
  const state = {
    status: params.getAll("status"),
    name: params.get("name") || "",
    order: params.get("order_by") || "-created_at",
    limit: Math.min(500, Math.max(1, Number(params.get("limit")) || PAGE)),
    cursors: [null], // the cursor of each page seen so far, for "newer"
    timer: null,
  };
  const sparks = new Map(); // job id → {done, columns}: redrawn only when epochs_done moves
  let rows = new Map(); // job id → its row, updated in place so a click is never lost
  let closed = false;
  const body = h("tbody");
  const pages = pager(state, () => reload());
  const message = h("div");
  const selected = new Set(); // kept across pages and refreshes
  const compare = h("a", { class: "button", id: "compare-selected", hidden: true });
  const picked = () => {
    compare.hidden = selected.size < 1;
    compare.textContent = `compare ${selected.size} selected`;
    compare.href = `#/compare${query({ job: [...selected] })}`;
  };
  state.pick = (jobId, on) => {
    if (on) selected.add(jobId);
    else selected.delete(jobId);
    picked();
  };
  state.selected = selected;
  view.append(
    h("h1", {}, "Jobs ", compare),
    filters(state, () => reload(true)),
    message,
    h("table", { class: "jobs", id: "jobs-table" }, head(), body),
    pages.node,
  );

  let latest = 0; // a filter changed twice in a row: only the last request's answer is shown

  async function reload(fromStart = false) {
    clearTimeout(state.timer);
    if (fromStart) state.cursors = [null];
    remember(state);
    const { status, name, order, limit } = state;
    const cursor = state.cursors[state.cursors.length - 1];
    const mine = ++latest;
    let page;
    try {
      page = await request(`/v1/jobs${query({ status, name, order_by: order, limit, cursor })}`);
    } catch (error) {
      if (mine === latest) message.replaceChildren(errorBox(error));
      return;
    }
    if (closed || mine !== latest) return;
    message.replaceChildren();
    rows = show(body, page.items, rows, sparks, state);
    pages.update(page.next_cursor);
    if (page.items.some((job) => !TERMINAL.has(job.status))) {
      state.timer = setTimeout(reload, REFRESH_MS);
    }
  }

  reload();
  return () => {
    closed = true;
    clearTimeout(state.timer);
  };
}

// The page's rows: existing ones updated, new ones made, the others dropped; the table is
// only reordered when the order changed.
function show(body, jobs, rows, sparks, state) {
  const kept = new Map();
  for (const job of jobs) {
    const row = rows.get(job.id) || makeRow(job.id, state);
    row.update(job, sparks);
    kept.set(job.id, row);
  }
  for (const [id, row] of rows) if (!kept.has(id)) row.drop();
  const order = [...kept.values()].map((row) => row.tr);
  const same =
    order.length === body.children.length && order.every((tr, i) => body.children[i] === tr);
  if (!same) body.replaceChildren(...order);
  if (!jobs.length)
    body.replaceChildren(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No jobs match.")));
  return kept;
}

// The filters stay in the address (#/jobs?status=…&name=…) so a filtered view can be shared.
function remember(state) {
  const q = query({
    status: state.status,
    name: state.name,
    order_by: state.order === "-created_at" ? "" : state.order,
    limit: state.limit === PAGE ? "" : state.limit,
  });
  history.replaceState(null, "", `#/jobs${q}`);
}

// Every change reads all the controls, so a box ticked while a name is still being typed
// filters by both.
function filters(state, apply) {
  let typing = null;
  const changed = () => {
    clearTimeout(typing);
    const form = new FormData(node);
    state.status = form.getAll("status");
    state.name = String(form.get("name")).trim();
    state.order = String(form.get("order_by"));
    apply();
  };
  const boxes = STATUSES.map((status) =>
    h(
      "label",
      { class: `chip status-${status}` },
      h("input", {
        type: "checkbox",
        name: "status",
        value: status,
        checked: state.status.includes(status),
        onchange: changed,
      }),
      status,
    ),
  );
  const name = h("input", {
    type: "search",
    name: "name",
    placeholder: "name starts with…",
    value: state.name,
    oninput: () => {
      clearTimeout(typing);
      typing = setTimeout(changed, 300);
    },
  });
  const order = h(
    "select",
    { name: "order_by", onchange: changed },
    Object.entries(ORDERS).map(([value, text]) =>
      h("option", { value, selected: value === state.order }, text),
    ),
  );
  const node = h("form", { class: "filters", onsubmit: (e) => (e.preventDefault(), changed()) });
  node.append(...boxes, name, order);
  return node;
}

function head() {
  const names = [
    "name",
    "status",
    "progress",
    "final loss",
    "best loss",
    "loss",
    "created",
    "duration",
    "compare",
  ];
  return h(
    "thead",
    {},
    h(
      "tr",
      {},
      names.map((n) => h("th", {}, n)),
    ),
  );
}

function makeRow(jobId, state) {
  const cells = Array.from({ length: 9 }, () => h("td"));
  cells[8].append(
    h("input", {
      type: "checkbox",
      class: "pick",
      title: "compare this job with the others ticked",
      checked: state.selected.has(jobId),
      onchange: (event) => state.pick(jobId, event.target.checked),
    }),
  );
  const link = h("a", { href: `#/jobs/${jobId}` });
  cells[0].append(link);
  for (const i of [3, 4, 7]) cells[i].className = "num";
  cells[5].className = "spark";
  const tr = h("tr", { dataset: { jobId } }, cells);
  let drawn = null; // epochs_done of the sparkline shown
  const update = (job, sparks) => {
    tr.dataset.status = job.status;
    link.textContent = job.name;
    cells[1].replaceChildren(statusBadge(job.status));
    cells[2].replaceChildren(progress(job.epochs_done, job.epochs_total));
    cells[3].textContent = fmtLoss(job.final_loss);
    cells[4].textContent = fmtLoss(job.best_loss);
    cells[6].textContent = fmtTime(job.created_at);
    cells[7].textContent = fmtDuration(jobDuration(job));
    if (job.epochs_done && job.epochs_done !== drawn) {
      drawn = job.epochs_done;
      drawSpark(cells[5], job, sparks);
    }
  };
  const drop = () => cells[5].uplot && cells[5].uplot.destroy();
  return { tr, update, drop };
}

async function drawSpark(cell, job, sparks) {
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
  if (cell.uplot) cell.uplot.destroy();
  cell.replaceChildren();
  sparkline(cell, cached.columns.epoch, cached.columns.loss);
}

// "newer" walks back the cursors seen; "older" follows the API's next_cursor.
function pager(state, reload) {
  let next = null;
  const newer = h("button", { type: "button" }, "← newer");
  const older = h("button", { type: "button" }, "older →");
  const label = h("span", { class: "muted" });
  newer.addEventListener("click", () => {
    state.cursors.pop();
    reload();
  });
  older.addEventListener("click", () => {
    state.cursors.push(next);
    reload();
  });
  const update = (cursor) => {
    next = cursor;
    newer.disabled = state.cursors.length < 2;
    older.disabled = !next;
    label.textContent = `page ${state.cursors.length}`;
  };
  return { node: h("div", { class: "pager" }, newer, label, older), update };
}
