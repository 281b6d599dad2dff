// DOM building and number/time formatting shared by the pages. Text goes in as text nodes,
// never as HTML, so job names and errors cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmtLoss(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  return abs >= 1e4 || abs < 1e-3 ? value.toExponential(3) : value.toPrecision(4);
}

export function fmtValue(value) {
  return value === null || value === undefined ? "–" : Number(value).toPrecision(6);
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const [hours, minutes, rest] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return hours ? `${hours} h ${minutes} min` : `${minutes} min ${rest} s`;
}

// Training time: from the first claim to the end, or to now while the job runs.
export function jobDuration(job) {
  if (!job.started_at) return null;
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return Math.max(0, (end - new Date(job.started_at)) / 1000);
}

export const STATUSES = [
  "queued",
  "running",
  "paused",
  "succeeded",
  "failed",
  "cancelled",
  "stopped",
];
export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "stopped"]);

export function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

export function progress(done, total) {
  const share = total ? Math.min(1, done / total) : 0;
  return h(
    "span",
    { class: "progress", title: `${(share * 100).toFixed(1)} %` },
    h("span", { class: "bar" }, h("span", { style: `width:${(share * 100).toFixed(1)}%` })),
    h("span", { class: "count" }, `${done}/${total}`),
  );
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

const SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹";
const SUB = "₀₁₂₃₄₅₆₇₈₉";
const script = (digits, n) => [...String(n)].map((d) => digits[d]).join("");

// A parameter in the seed's notation with real indices: w¹₀₁, b²₀; the indices k and j are
// separated by a comma once either has two digits (w¹₁₂,₃ is w^1_{12,3}).
export function paramLabel(layer, param, k, j) {
  if (param === "bias") return `b${script(SUP, layer)}${script(SUB, k)}`;
  const sep = k > 9 || j > 9 ? "," : "";
  return `w${script(SUP, layer)}${script(SUB, k)}${sep}${script(SUB, j)}`;
}

// The API's name of a parameter (backprop/layout.py): braced indices, so that w^1_{11,0} and
// w^1_{1,10} differ whatever the layer widths. Charts and readouts key on it.
export function paramName(layer, param, k, j) {
  return param === "bias" ? `b^${layer}_{${k}}` : `w^${layer}_{${k},${j}}`;
}

export const sup = (n) => script(SUP, n);
