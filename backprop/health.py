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
the next rows, and a full ring (or the epoch's end) is counted with one comparison and one
matrix-vector product per layer — a few calls per epoch rather than per batch, and no extra
pass over the data.
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
        self.rings = [np.empty((self.per_ring * B, n), network.dtype) for n in widths]
        self.ones = np.ones(self.per_ring * B, network.dtype)
        self.counts = [np.zeros(n) for n in widths]
        self.batches = batches
        # Where a ring is full or the epoch ends; a list, so the training loop asks no method.
        last = len(batches) - 1
        self.counts_after = [bool(self.rings) and ((i + 1) % self.per_ring == 0 or i == last)
                             for i in range(len(batches))]  # fmt: skip
        self.theta0 = np.empty_like(network.theta)
        self.diff = np.empty_like(network.theta)
        self.square = np.empty(network.theta.shape, np.float64)

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
        trainer calls this only where `counts_after[i]`. ReLU's σ' is already 1 where a > 0
        and 0 elsewhere, so its rows are summed as they are."""
        first = i - i % self.per_ring
        rows = self.batches[i][1] - self.batches[first][0]
        for ring, count in zip(self.rings, self.counts, strict=True):
            flags = ring[:rows]
            if self.kind == "dead" and self.threshold:  # leaky: σ' is slope or 1
                np.greater(flags, self.threshold, out=flags)  # a > 0 on that row: alive
            elif self.kind == "saturated":
                np.less(flags, self.threshold, out=flags)  # saturated on that row
            count += np.dot(self.ones[:rows], flags)

    def _norms(self, theta: np.ndarray) -> np.ndarray:
        """‖W^1‖ … ‖W^L‖, ‖b^1‖ … ‖b^L‖ of a flat θ, squared and summed in float64: a float32
        square overflows from 1.8e19 on."""
        np.square(theta, out=self.square, dtype=np.float64)
        return np.sqrt(np.add.reduceat(self.square, self.network.layout.block_starts))

    def end(self, last: Workspace) -> EpochHealth:
        """The epoch's figures; `last` is the workspace of its last mini-batch. A few calls per
        layer: on a tiny network (XOR) this is most of its cost."""
        net, L = self.network, self.network.L
        np.subtract(net.theta, self.theta0, out=self.diff)
        moved, before = self._norms(self.diff), self._norms(self.theta0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (moved / np.where(before > 0, before, np.nan)).tolist()
        size = 1.0 / last.mean_scale  # the engine's δ carries 1/B; the seed's does not
        mean, top = [], []
        for d in last.delta:
            magnitude = np.abs(d)
            mean.append(float(np.add.reduce(magnitude, axis=None)) * size / d.size)
            top.append(float(np.maximum.reduce(magnitude, axis=None)) * size)
        nan = [math.nan] * L
        if self.kind == "saturated":
            rows = SATURATED_ROWS * self.n
            units = [np.count_nonzero(c >= rows) / c.size for c in self.counts] + [math.nan]
        else:
            units = [np.count_nonzero(c == 0.0) / c.size for c in self.counts] + [math.nan]
        finite = bool(np.isfinite(net.theta).all()) and all(map(math.isfinite, top))
        return EpochHealth(
            update_ratio_weights=ratio[:L],
            update_ratio_biases=ratio[L:],
            dead_fraction=units if self.kind == "dead" else nan,
            saturated_fraction=units if self.kind == "saturated" else nan,
            delta_mean=mean,
            delta_max=top,
            nonfinite=not finite,
        )
