// One job: its summary and actions, the per-epoch charts (live through the events stream while
// it runs), trajectories, the snapshot heatmap, its spec and its attempts.

import { request, stream } from "./api.js";
import {
  errorBox,
  fmtDuration,
  fmtLoss,
  fmtTime,
  h,
  jobDuration,
  progress,
  statusBadge,
  TERMINAL,
} from "./format.js";
import { lineageLine } from "./fork.js";
import { healthPanel } from "./health.js";
import { epochsPath, metricCharts } from "./metrics.js";
import { snapshots } from "./snapshots.js";
import { trajectories } from "./trajectory.js";

const REFRESH_MS = 3000; // while running: gradient norms, accuracy, snapshots, trajectories
const RETRY_MS = 2000;

export function jobPage(view, jobId, epoch) {
  const abort = new AbortController();
  let timer = null;
  const closed = () => abort.signal.aborted;

  (async () => {
    let job;
    try {
      job = await request(`/v1/jobs/${jobId}`);
    } catch (error) {
      view.replaceChildren(h("p", {}, h("a", { href: "#/jobs" }, "← jobs")), errorBox(error));
      return;
    }
    const page = layout(view, job, epoch ? Number(epoch) : null);
    await page.loadHistory();
    if (epoch) page.health.node.scrollIntoView();
    if (closed() || TERMINAL.has(job.status)) return;
    live(page, jobId, abort.signal);
    // A long history takes the API a while to thin out: the page waits at least ten times
    // as long as the last read took before reading again.
    const tick = async () => {
      const started = performance.now();
      await page.loadHistory();
      const wait = Math.max(REFRESH_MS, 10 * (performance.now() - started));
      if (!closed() && !TERMINAL.has(page.job.status)) timer = setTimeout(tick, wait);
    };
    timer = setTimeout(tick, REFRESH_MS);
  })();

  return () => {
    abort.abort();
    clearTimeout(timer);
  };
}

function layout(view, job, epoch) {
  const page = { job, metrics: metricCharts(job), health: healthPanel(job, epoch) };
  const head = header(page);
  const paths = trajectories(job);
  const params = snapshots(job);
  const details = h("div", { class: "details" });
  const message = h("div");
  view.replaceChildren(
    h("p", {}, h("a", { href: "#/jobs" }, "← jobs")),
    head.node,
    message,
    h("div", { class: "grid" }, ...page.metrics.nodes, paths.node, params.node, page.health.node),
    details,
  );
  let attempts = null;

  page.setJob = (fresh) => {
    page.job = fresh;
    head.update(fresh);
    // Redrawn only when they change (events carry none), so a selection in the spec stays.
    const seen = JSON.stringify(fresh.attempts);
    if (seen !== attempts) {
      attempts = seen;
      details.replaceChildren(...specAndAttempts(fresh));
    }
  };
  // Everything the events stream does not carry, read again.
  page.loadHistory = async () => {
    try {
      page.metrics.update(await request(epochsPath(job.id)));
      await Promise.all([params.refresh(), paths.refresh()]);
      page.setJob(await request(`/v1/jobs/${job.id}`));
      await page.health.refresh(page.job);
      message.replaceChildren();
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  };
  page.setJob(job);
  return page;
}

// New epochs and status changes from GET …/events, read from after the last epoch drawn. A
// dropped connection is retried until the job ends or the page is left.
async function live(page, jobId, signal) {
  while (!signal.aborted && !TERMINAL.has(page.job.status)) {
    try {
      await stream(`/v1/jobs/${jobId}/events`, {
        lastEventId: page.metrics.lastEpoch(),
        signal,
        onEvent: (event) => onEvent(page, event),
      });
    } catch (error) {
      if (signal.aborted) return;
    }
    if (!TERMINAL.has(page.job.status)) await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

function onEvent(page, event) {
  if (event.event === "epochs") {
    page.metrics.append(event.data.epochs);
    const last = event.data.epochs[event.data.epochs.length - 1];
    page.setJob({
      ...page.job,
      epochs_done: Math.max(page.job.epochs_done, last.epoch),
      latest_loss: last.loss,
    });
  } else if (event.event === "status") {
    const changed = event.data.status !== page.job.status;
    page.setJob({ ...page.job, ...event.data });
    // The end of a job: read what the stream does not carry (snapshots, timings, attempts).
    if (changed || TERMINAL.has(event.data.status)) page.loadHistory();
  }
}

// The header is built once and updated in place: events arrive several times a second, and a
// button rebuilt between mousedown and mouseup would never see its click.
function header(page) {
  const badge = h("span");
  const cancel = h("button", { type: "button", id: "cancel", class: "danger" }, "cancel");
  const facts = h("dl", { class: "facts", id: "job-facts" });
  const ident = h("p", { class: "muted mono" });
  const lineage = h("p", { class: "lineage", id: "job-lineage" });
  lineageLine(page.job).then(
    (parts) => lineage.replaceChildren(...parts),
    (err) => lineage.replaceChildren(errorBox(err)),
  );
  const error = h("p", { class: "error", id: "job-error", hidden: true });
  const title = h("span");
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      page.setJob({
        ...page.job,
        ...(await request(`/v1/jobs/${page.job.id}/cancel`, { method: "POST" })),
      });
    } catch (err) {
      error.hidden = false;
      error.textContent = err.message;
    }
  });
  const node = h(
    "div",
    { class: "job-head" },
    h("h1", {}, title, " ", badge, " ", cancel),
    ident,
    lineage,
    facts,
    error,
  );
  const update = (job) => {
    title.textContent = job.name;
    badge.replaceChildren(statusBadge(job.status));
    cancel.hidden = TERMINAL.has(job.status);
    cancel.disabled = Boolean(job.cancel_requested_at);
    cancel.textContent = job.cancel_requested_at ? "cancel requested" : "cancel";
    const tags = Object.entries(job.tags || {}).map(([k, v]) =>
      h("span", { class: "chip" }, `${k}: ${v}`),
    );
    ident.replaceChildren(job.id, " ", ...tags);
    facts.replaceChildren(
      ...factList(job).map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value))),
    );
    error.hidden = !job.error;
    error.textContent = job.error || "";
  };
  return { node, update };
}

function factList(job) {
  const facts = [
    ["epochs", progress(job.epochs_done, job.epochs_total)],
    ["latest loss", fmtLoss(job.latest_loss)],
    ["best loss", fmtLoss(job.best_loss)],
    ["final loss", fmtLoss(job.final_loss)],
    ["created", fmtTime(job.created_at)],
    ["started", fmtTime(job.started_at)],
    ["finished", fmtTime(job.finished_at)],
    ["duration", fmtDuration(jobDuration(job))],
    ["attempt", String(job.attempt)],
  ];
  if (job.batch_id) {
    facts.push(["batch", h("a", { href: `#/batches/${job.batch_id}` }, job.batch_id.slice(0, 8))]);
  }
  return facts;
}

function specAndAttempts(job) {
  const rows = (job.attempts || []).map((a) =>
    h(
      "tr",
      {},
      h("td", { class: "num" }, String(a.attempt)),
      h("td", {}, a.worker),
      h("td", { class: "num" }, String(a.start_epoch)),
      h("td", {}, fmtTime(a.started_at)),
      h("td", {}, fmtTime(a.ended_at)),
      h("td", {}, a.reason || "–"),
    ),
  );
  return [
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Attempts"),
      h(
        "table",
        { class: "attempts" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["#", "worker", "from epoch", "started", "ended", "how it ended"].map((n) =>
              h("th", {}, n),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          rows.length
            ? rows
            : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No worker has claimed it yet.")),
        ),
      ),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Spec"),
      h("pre", { class: "spec", id: "job-spec" }, JSON.stringify(job.spec, null, 2)),
    ),
  ];
}
