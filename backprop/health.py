"""Training health of one epoch, per layer l = 1..L, measured as the engine trains.

- update ratio ‖W^l_e − W^l_{e−1}‖ / ‖W^l_{e−1}‖ (Frobenius), and the same for b^l: how far the
  epoch's updates moved each layer, relative to its size before the epoch (CS231n's rule of
  thumb: near 1e-3). NaN where the norm before is 0 (biases start at 0).
- dead fraction (ReLU, leaky ReLU hidden layers): units whose activation a^l_k was ≤ 0 on
  every training row of the epoch's own forward passes (for ReLU: exactly 0).
- saturated fraction (sigmoid, tanh hidden layers): units with σ'(z^l_k) below SATURATION of
  σ's largest slope on at least SATURATED_ROWS of the epoch's training rows.
- mean and max |δ^l| over the epoch's last mini-batch (as the gradient norms are of its last
  update), per sample: δ^l of eq. (8)–(9), not the 1/B-scaled δ the engine propagates.
- nonfinite: a NaN or infinity reached the parameters or the last error signals this epoch.
  A forward pass's non-finite value reaches the loss (Diverged) or, through the gradient, the
  parameters; only one a ReLU turns into 0 is not seen.

Dead and saturated units need σ'(z^l) of every row. The backward pass computes it anyway
(Activation.scale_by_derivative writes it into the workspace's scratch), so the hidden
layers' scratch arrays are made views into a ring of rows here: each batch writes its σ' into
the next rows, and a full ring (or the epoch's end) is counted — a few calls per epoch rather
than per batch, and no extra pass over the data. ReLU's σ' is its own 0/1 flag, summed over
the rows with one matrix-vector product; other activations are compared into a ring of bool
flags whose bytes are summed eight columns at a time as uint64 lanes (a lane's bytes cannot
carry into each other within 255 rows), which is about twice as fast as a comparison written
back as floats.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from backprop.network import Network, Workspace

SATURATION = 0.01  # σ' below 1 % of its largest value: sigmoid 0.0025 (|z| > 6), tanh 0.01
SATURATED_ROWS = 0.99
RING_BYTES = 16 << 20
_MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0}
_KIND = {"relu": "dead", "leaky_relu": "dead", "sigmoid": "saturated", "tanh": "saturated"}


@dataclass(frozen=True, slots=True)
class EpochHealth:
    update_ratio_weights: list[float]
    update_ratio_biases: list[float]
    dead_fraction: list[float]  # NaN for layers whose activation cannot die, and for layer L
    saturated_fraction: list[float]  # NaN for layers whose activation cannot saturate
    delta_mean: list[float]
    delta_max: list[float]
    nonfinite: bool

    def fields(self) -> dict[str, Any]:
        """As EpochResult's fields: `nonfinite` a number like every stored epoch field."""
        values = {name: getattr(self, name) for name in self.__slots__}
        return values | {"nonfinite": float(self.nonfinite)}


class Monitor:
    """Accumulates one epoch's health while a Trainer runs it: `workspaces` once, then per
    epoch `begin`, `count(i)` after each batch i where `counts_after[i]`, and `end`."""

    def __init__(self, network: Network, batches: list[tuple[int, int]]) -> None:
        self.network = network
        self.n = batches[-1][1] if batches else 0
        hidden = network.hidden.name
        self.kind = _KIND.get(hidden)
        self.threshold = (
            SATURATION * _MAX_SLOPE[hidden] if self.kind == "saturated"
            else getattr(network.hidden, "slope", 0.0)  # scratch is slope where a ≤ 0
        )  # fmt: skip
        widths = network.sizes[1:-1] if self.kind else ()
        self.B = B = max((stop - start for start, stop in batches), default=1)
        per_row = sum(widths) * network.dtype.itemsize
        self.per_ring = max(1, min(len(batches), RING_BYTES // max(1, per_row * B)))
        rows = self.per_ring * B
        self.rings = [np.empty((rows, n), network.dtype) for n in widths]
        # ReLU's σ' is already 0/1, summed by a product with ones; the others are compared into
        # flags (saturated: below the threshold; leaky: above its slope, alive), padded to whole
        # uint64 lanes of 8 bytes.
        compared = self.kind == "saturated" or bool(self.threshold)
        self.ones = np.ones(0 if compared else rows, network.dtype)
        self.compare = np.less if self.kind == "saturated" else np.greater
        self.flags = [np.zeros((rows, -(-n // 8) * 8), bool) for n in widths if compared]
        self.counts = [np.zeros(n) for n in widths]
        self.batches = batches
        # Where a ring is full or the epoch ends; a list, so the training loop asks no method.
        last = len(batches) - 1
        self.counts_after = [bool(self.rings) and ((i + 1) % self.per_ring == 0 or i == last)
                             for i in range(len(batches))]  # fmt: skip
        # Each count's rows, and where its flags' chunks of at most 255 rows start.
        self.rows = {i: stop - batches[i - i % self.per_ring][0]
                     for i, (_, stop) in enumerate(batches) if self.counts_after[i]}  # fmt: skip
        self.chunks = {i: np.arange(0, rows, 255) for i, rows in self.rows.items()}
        self._norm_buffers()
        self.magnitude = [np.empty((B, n), network.dtype) for n in network.sizes[1:]]

    def _norm_buffers(self) -> None:
        """Squares of θ_e − θ_{e−1} and of θ_{e−1}, side by side in float64 (a float32 square
        overflows from 1.8e19 on): one reduceat gives every layer's two norms."""
        theta = self.network.theta
        self.square = np.empty(2 * theta.size, np.float64)
        starts = self.network.layout.block_starts
        self.starts = np.concatenate([starts, starts + theta.size])
        wide = theta.dtype == np.float64  # then the halves are the arrays themselves
        self.diff = self.square[: theta.size] if wide else np.empty_like(theta)
        self.theta0 = self.square[theta.size :] if wide else np.empty_like(theta)

    def workspaces(self, shared: list[Workspace]) -> list[Workspace]:
        """Each batch's workspace with its hidden layers' σ' written into the ring."""
        if not self.rings:
            return shared
        out = []
        for i, ((start, stop), ws) in enumerate(zip(self.batches, shared, strict=True)):
            at = (i % self.per_ring) * self.B
            mine = copy.copy(ws)
            mine.scratch = [ring[at : at + stop - start] for ring in self.rings]
            mine.scratch.append(ws.scratch[-1])
            out.append(mine)
        return out

    def begin(self) -> None:
        self.theta0[...] = self.network.theta
        for count in self.counts:
            count[...] = 0.0

    def count(self, i: int) -> None:
        """Count the ring that batch i filled (or that the epoch's last batch ended): the
        trainer calls this only where `counts_after[i]`."""
        rows = self.rows[i]
        if not self.flags:  # ReLU: rows where a > 0, summed as they are
            for ring, count in zip(self.rings, self.counts, strict=True):
                count += np.dot(self.ones[:rows], ring[:rows])
            return
        chunks = self.chunks[i]
        for ring, flags, count in zip(self.rings, self.flags, self.counts, strict=True):
            n = ring.shape[1]
            self.compare(ring[:rows], self.threshold, out=flags[:rows, :n])
            lanes = np.add.reduceat(flags[:rows].view(np.uint64), chunks, axis=0)
            count += np.add.reduce(lanes.view(np.uint8)[:, :n], axis=0, dtype=np.int64)

    def end(self, last: Workspace) -> EpochHealth:
        """The epoch's figures; `last` is the workspace of its last mini-batch. A few calls per
        layer: on a tiny network (XOR) this is most of its cost."""
        net, L = self.network, self.network.L
        np.subtract(net.theta, self.theta0, out=self.diff)
        if self.diff.base is not self.square:
            np.copyto(self.square[: net.theta.size], self.diff)
            np.copyto(self.square[net.theta.size :], self.theta0)
        np.multiply(self.square, self.square, out=self.square)
        norms = np.sqrt(np.add.reduceat(self.square, self.starts)).tolist()
        moved, before = norms[: 2 * L], norms[2 * L :]
        ratio = [m / b if b > 0 else math.nan for m, b in zip(moved, before, strict=True)]
        size = 1.0 / last.mean_scale  # the engine's δ carries 1/B; the seed's does not
        mean, top = [], []
        for d, buffer in zip(last.delta, self.magnitude, strict=True):
            magnitude = np.abs(d, out=buffer[: d.shape[0]])
            mean.append(float(np.add.reduce(magnitude, axis=None)) * size / d.size)
            top.append(float(np.maximum.reduce(magnitude, axis=None)) * size)
        nan = [math.nan] * L
        if self.kind == "saturated":
            rows = SATURATED_ROWS * self.n
            units = [np.count_nonzero(c >= rows) / c.size for c in self.counts] + [math.nan]
        else:
            units = [np.count_nonzero(c == 0.0) / c.size for c in self.counts] + [math.nan]
        # Finite norms mean a finite θ; an infinite one may be a finite θ whose square is not.
        finite = all(map(math.isfinite, norms)) or bool(np.isfinite(net.theta).all())
        return EpochHealth(
            update_ratio_weights=ratio[:L],
            update_ratio_biases=ratio[L : 2 * L],
            dead_fraction=units if self.kind == "dead" else nan,
            saturated_fraction=units if self.kind == "saturated" else nan,
            delta_mean=mean,
            delta_max=top,
            nonfinite=not (finite and all(map(math.isfinite, top))),
        )
