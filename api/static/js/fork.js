// Forking a job from the snapshot slider's epoch: a small form of overrides (one PATH=VALUE a
// line, the batch grid's spec paths; a value is JSON when it parses, else a string), and the
// lineage — parent, root and forks — as links.

import { request } from "./api.js";
import { errorBox, h } from "./format.js";

export function parseOverrides(text) {
  const overrides = {};
  for (const [n, line] of text.split("\n").entries()) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`line ${n + 1}: write PATH=VALUE, e.g. optimizer.learning_rate=0.05`);
    const value = line.slice(at + 1).trim();
    try {
      overrides[line.slice(0, at).trim()] = JSON.parse(value);
    } catch {
      overrides[line.slice(0, at).trim()] = value;
    }
  }
  return overrides;
}

// The fork button and its form; `epoch()` is the slider's epoch (null: none yet).
export function forkControl(job, epoch) {
  const button = h("button", { type: "button", id: "fork-open" }, "fork at this epoch");
  const at = h("strong", { id: "fork-epoch" }, "–");
  const text = h("textarea", {
    id: "fork-overrides",
    rows: 3,
    spellcheck: "false",
    placeholder: "optimizer.learning_rate=0.05\nepochs=2000",
  });
  const name = h("input", { id: "fork-name", placeholder: `${job.name} (fork)` });
  const message = h("div", { id: "fork-message" });
  const send = async (event) => {
    event.preventDefault();
    const body = { epoch: epoch() };
    try {
      body.overrides = parseOverrides(text.value);
      if (name.value.trim()) body.name = name.value.trim();
      const fork = await request(`/v1/jobs/${job.id}/fork`, { method: "POST", body });
      location.hash = `#/jobs/${fork.id}`;
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  };
  const form = h(
    "form",
    { class: "fork-form", id: "fork-form", hidden: true, onsubmit: send },
    h("p", {}, "A new job from the exact state after epoch ", at, ", changed by:"),
    text,
    h("label", {}, "name ", name),
    h("button", { type: "submit", id: "fork-submit" }, "fork"),
    message,
  );
  button.addEventListener("click", () => {
    form.hidden = !form.hidden;
    at.textContent = String(epoch() ?? "–");
    if (!form.hidden) text.focus();
  });
  return { button, form, update: () => (at.textContent = String(epoch() ?? "–")) };
}

const link = (id, label) => h("a", { href: `#/jobs/${id}` }, label || id.slice(0, 8));

// "forked from PARENT at epoch k (root ROOT) · forks: A, B", read once for the page.
export async function lineageLine(job) {
  const tree = await request(`/v1/jobs/${job.id}/lineage`);
  const parts = [];
  const parent = tree.ancestors[0];
  if (parent) {
    parts.push("forked from ", link(parent.id, parent.name), ` at epoch ${job.forked_at_epoch}`);
    const root = tree.ancestors[tree.ancestors.length - 1];
    if (root.id !== parent.id) parts.push(" (root ", link(root.id, root.name), ")");
  }
  const forks = tree.descendants.filter((d) => d.parent_id === job.id);
  if (forks.length) {
    if (parts.length) parts.push(" · ");
    parts.push("forks: ");
    forks.forEach((f, i) => {
      if (i) parts.push(", ");
      parts.push(link(f.id, `${f.name} @${f.forked_at_epoch}`));
    });
  }
  return parts;
}
