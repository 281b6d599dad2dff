// W^l (rows k, columns j) and, set apart on the right, b^l as a heatmap on a canvas: blue
// below zero, white at zero, red above, scaled to the largest magnitude shown. Hovering a
// cell names it in the seed's notation (w^l_kj, b^l_k) with its value.

import { fmtValue, h, paramLabel, paramName, sup } from "./format.js";

const MAX_WIDTH = 640;
const GAP = 1; // a cell's share of pixels kept as a grid line when the cells are large

function colour(value, scale) {
  if (value === null || !Number.isFinite(value)) return "#888";
  const t = scale ? Math.max(-1, Math.min(1, value / scale)) : 0;
  const fade = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},${fade},255)`;
}

function geometry(rows, cols) {
  const cell = Math.max(2, Math.min(56, Math.floor(MAX_WIDTH / (cols + 2))));
  return { cell, biasX: (cols + 1) * cell, width: (cols + 2) * cell, height: rows * cell };
}

export function heatmap() {
  const canvas = h("canvas", { class: "heatmap", role: "img" });
  const readout = h("p", { class: "readout muted" }, "hover a cell");
  const legend = h("p", { class: "legend muted" });
  const node = h("div", { class: "heatmap-box" }, canvas, legend, readout);
  let state = null;

  function cellAt(event) {
    if (!state) return null;
    const rect = canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * canvas.width) / rect.width / devicePixelRatio;
    const y = ((event.clientY - rect.top) * canvas.height) / rect.height / devicePixelRatio;
    const { cell, biasX } = state.geo;
    const k = Math.floor(y / cell);
    if (k < 0 || k >= state.W.length) return null;
    if (x >= biasX && x < biasX + cell) return { k, bias: true };
    const j = Math.floor(x / cell);
    return j >= 0 && j < state.W[0].length ? { k, j } : null;
  }

  canvas.addEventListener("mousemove", (event) => show(cellAt(event)));
  canvas.addEventListener("mouseleave", () => show(null));

  // The hovered cell in words; data-cell and data-value carry it exactly, for scripts.
  function show(hit) {
    if (!hit) {
      readout.textContent = "hover a cell";
      readout.dataset.cell = readout.dataset.value = "";
      return;
    }
    const { layer, epoch, W, b } = state;
    const { k, j, bias } = hit;
    const value = bias ? b[k] : W[k][j];
    const param = bias ? "bias" : "weight";
    readout.textContent = `${paramLabel(layer, param, k, j)} = ${fmtValue(value)} at epoch ${epoch}`;
    readout.dataset.cell = paramName(layer, param, k, j);
    readout.dataset.value = String(value);
  }

  // Draw W^layer and b^layer of the snapshot at `epoch`.
  function draw(layer, epoch, W, b) {
    const geo = geometry(W.length, W[0].length);
    state = { layer, epoch, W, b, geo };
    const scale = Math.max(...W.flat().map(Math.abs), ...b.map(Math.abs)) || 1;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = geo.width * ratio;
    canvas.height = geo.height * ratio;
    canvas.style.width = `${geo.width}px`;
    canvas.style.height = `${geo.height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, geo.width, geo.height);
    const gap = geo.cell >= 8 ? GAP : 0;
    const paint = (x, y, v) => {
      ctx.fillStyle = colour(v, scale);
      ctx.fillRect(x, y, geo.cell - gap, geo.cell - gap);
      if (geo.cell >= 44) label(ctx, x, y, geo.cell, v, scale);
    };
    W.forEach((row, k) => row.forEach((v, j) => paint(j * geo.cell, k * geo.cell, v)));
    b.forEach((v, k) => paint(geo.biasX, k * geo.cell, v));
    canvas.dataset.layer = String(layer);
    canvas.dataset.epoch = String(epoch);
    canvas.setAttribute(
      "aria-label",
      `W${sup(layer)} (${W.length}×${W[0].length}) and b${sup(layer)} at epoch ${epoch}`,
    );
    legend.textContent =
      `W${sup(layer)}: ${W.length}×${W[0].length}, row k, column j; b${sup(layer)} on the right. ` +
      `Colour: −${fmtValue(scale)} blue … 0 white … +${fmtValue(scale)} red.`;
    show(null);
  }

  return { node, canvas, readout, draw };
}

function label(ctx, x, y, cell, v, scale) {
  ctx.fillStyle = Math.abs(v) / scale > 0.6 ? "#fff" : "#111";
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(Number(v).toPrecision(3), x + cell / 2, y + cell / 2);
}
