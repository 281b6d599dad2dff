// The dashboard's router: #/jobs, #/jobs/{id} (#/jobs/{id}/epochs/{k}: marked at epoch k),
// #/compare?job=…, #/batches, #/batches/{id}, #/new. Each page is a function (view, params…)
// that may return a cleanup (closing an event stream, a timer).
// The API key field appears when the server answers 401.

import { getKey, setKey } from "./api.js";
import { batchPage, batchesPage } from "./batches.js";
import { comparePage } from "./compare.js";
import { h } from "./format.js";
import { jobPage } from "./job.js";
import { jobsPage } from "./jobs.js";
import { newJobPage } from "./newjob.js";

const ROUTES = [
  [/^#\/jobs\/([0-9a-f-]{36})(?:\/epochs\/(\d+))?$/, jobPage, "jobs"],
  [/^#\/compare(?:\?(.*))?$/, comparePage, "compare"],
  [/^#\/jobs(?:\?(.*))?$/, jobsPage, "jobs"],
  [/^#\/batches\/([0-9a-f-]{36})$/, batchPage, "batches"],
  [/^#\/batches$/, batchesPage, "batches"],
  [/^#\/new$/, newJobPage, "new"],
];

const view = document.getElementById("view");
let cleanup = null;

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const hash = location.hash || "#/jobs";
  for (const [pattern, page, nav] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle("active", a.dataset.nav === nav);
    }
    view.replaceChildren();
    cleanup = page(view, ...match.slice(1)) || null;
    return;
  }
  view.replaceChildren(h("p", {}, "No such page. ", h("a", { href: "#/jobs" }, "All jobs")));
}

function keyForm() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const message = document.getElementById("key-message");
  const forget = document.getElementById("key-forget");
  const sync = () => {
    forget.hidden = !getKey();
  };
  window.addEventListener("deltaflow:unauthorized", (event) => {
    form.hidden = false;
    message.textContent = getKey()
      ? `this key was refused: ${event.detail}`
      : "this server needs a key";
    input.focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(input.value.trim());
    input.value = "";
    form.hidden = true;
    sync();
    route();
  });
  forget.addEventListener("click", () => {
    setKey("");
    sync();
    route();
  });
  sync();
}

keyForm();
window.addEventListener("hashchange", route);
route();
