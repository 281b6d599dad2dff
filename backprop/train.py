"""Trainer: the epoch loop — mini-batches, forward and backward passes, updates — one result each.

One `numpy.random.Generator`, seeded from `spec.seed`, draws in a fixed order: the initial
parameters, then the validation split, then one permutation per epoch. `state()` captures the
generator along with the parameters and optimizer state, so a restored run draws the same
permutations and is bit-identical to one that was never interrupted. It also names the seed that
drew the initial parameters and the validation split (`split_seed`): a fork that re-seeds its
shuffles (backprop/fork.py) keeps its parent's training rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from backprop import data
from backprop.health import Monitor
from backprop.losses import loss as make_loss
from backprop.network import Network, Workspace
from backprop.optimizers import optimizer as make_optimizer
from backprop.results import Diverged, EpochResult
from backprop.rules import Alert, Watch
from backprop.spec import TrainSpec

_CACHE_BYTES = 4 << 20


class Trainer:
    """Trains `Network(spec.network)` on (x, y); see `backprop.data.prepare` for the shapes."""

    def __init__(
        self, spec: TrainSpec, x: npt.ArrayLike, y: npt.ArrayLike, *, health: bool = True
    ) -> None:
        """health=False leaves out the training-health figures (backprop/health.py); the
        training itself is bit-identical either way."""
        self.spec = spec
        self._measure_health = health
        X, Y = data.prepare(spec, x, y)
        net_spec = spec.network
        self.network = Network(
            net_spec.layers,
            net_spec.activation,
            net_spec.output_activation,
            spec.dtype,
            net_spec.leaky_slope,
        )
        self._rng = np.random.default_rng(spec.seed)
        self._split_seed = spec.seed
        self.network.initialize(self._rng, net_spec.init)
        train_rows, val_rows = data.split(X.shape[0], spec.validation_split, self._rng)
        self._x, self._y = X[train_rows], Y[train_rows]
        self._x_val, self._y_val = X[val_rows], Y[val_rows]
        self.loss = make_loss(spec.loss)
        self.optimizer = make_optimizer(spec.optimizer, self.network.n_parameters, X.dtype)
        self.epoch = 0
        self.stopped_early = False
        self.watch = Watch(spec)
        self.stopped_by: Alert | None = None  # the health alert of stop_when that ended it
        self._best: float | None = None
        self._wait = 0
        self._plan_batches()

    def _plan_batches(self) -> None:
        n = self._x.shape[0]
        B = min(self.spec.batch_size or n, n)
        self._batches: list[tuple[int, int, Workspace]] = []
        full = self.network.workspace(B)
        for start in range(0, n, B):
            stop = min(start + B, n)
            ws = full if stop - start == B else self.network.workspace(stop - start)
            self._batches.append((start, stop, ws))
        self._health = None
        self._counts_after = [False] * len(self._batches)  # batches after which to count σ'
        if self._measure_health:
            self._health = Monitor(self.network, [(a, b) for a, b, _ in self._batches])
            views = self._health.workspaces([ws for _, _, ws in self._batches])
            self._batches = [(a, b, ws) for (a, b, _), ws in zip(self._batches, views, strict=True)]
            self._counts_after = self._health.counts_after
        # A full batch is the same set of rows in any order, so it is never permuted.
        self._shuffles = self.spec.shuffle and n > B
        # Data that fits in cache is permuted in one gather per epoch; larger data is gathered
        # batch by batch into buffers that stay in cache for that batch's matmuls.
        self._gather_epoch = self._shuffles and self._x.nbytes + self._y.nbytes <= _CACHE_BYTES
        if self._gather_epoch:
            self._xp, self._yp = np.empty_like(self._x), np.empty_like(self._y)
        self._val_ws = self.network.workspace(self._x_val.shape[0]) if self._x_val.size else None
        if self.spec.is_classification:
            # Each batch writes its decisions here; they are scored once per epoch.
            self._truth = self.loss.truth(self._y)
            self._decided = np.empty_like(self._truth)
        self._l2 = self.spec.l2 / n  # ∂/∂W of (λ/2n)·Σ‖W‖² is (λ/n)·W

    @property
    def weights(self) -> list[np.ndarray]:
        """W^l for l = 1..L in the seed's convention, shape (n_l, n_{l-1}), as copies."""
        return [W.copy() for W in self.network.weights]

    @property
    def biases(self) -> list[np.ndarray]:
        """b^l for l = 1..L, shape (n_l,), as copies."""
        return [b.copy() for b in self.network.biases]

    def learning_rate(self, epoch: int) -> float:
        """α for epoch 1, 2, … under `spec.lr_schedule`."""
        schedule, lr = self.spec.lr_schedule, self.spec.optimizer.learning_rate
        if schedule.name == "step":
            return lr * schedule.gamma ** ((epoch - 1) // schedule.step_size)
        if schedule.name == "exponential":
            return lr * schedule.gamma ** (epoch - 1)
        return lr

    def epochs(self) -> Iterator[EpochResult]:
        """Run the remaining epochs, yielding after each; stops early when the spec says so."""
        while self.epoch < self.spec.epochs and not self.stopped_early and not self.stopped_by:
            result = self._run_epoch()
            self.stopped_by = self.watch.update(result)
            yield result

    def _run_epoch(self) -> EpochResult:
        # A diverging run overflows on its way to a non-finite loss; Diverged reports it.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._train_epoch()

    def _train_epoch(self) -> EpochResult:
        started = time.perf_counter()
        epoch = self.epoch + 1
        lr = self.learning_rate(epoch)
        x, y = self._x, self._y
        perm = rows = self._rng.permutation(x.shape[0]) if self._shuffles else None
        if perm is not None and self._gather_epoch:
            x, y = np.take(x, perm, axis=0, out=self._xp), np.take(y, perm, axis=0, out=self._yp)
            rows = None
        net, loss, theta, grad = self.network, self.loss, self.network.theta, self.network.grad
        n_w, classify = net.n_weights, self.spec.is_classification
        total = penalty = 0.0
        health, counts = self._health, self._counts_after
        if health is not None:
            health.begin()
        for i, (start, stop, ws) in enumerate(self._batches):
            if rows is None:
                xb, yb = x[start:stop], y[start:stop]
            else:
                xb = np.take(x, rows[start:stop], axis=0, out=ws.x)
                yb = np.take(y, rows[start:stop], axis=0, out=ws.y)
            a_L = net.forward(xb, ws)
            total += net.backward(xb, yb, ws, loss)
            if classify:
                loss.decide(a_L, out=self._decided[start:stop])
            if self._l2:
                w = theta[:n_w]
                penalty += (stop - start) * float(np.dot(w, w))  # Σ‖W^l‖² of this forward pass
                grad[:n_w] += self._l2 * w
            if counts[i] and health is not None:  # a ring to count: a few times an epoch
                health.count(i)
            self.optimizer.step(theta, grad, lr)
        n = x.shape[0]
        train_loss = total / n
        # (λ/2n)·Σ‖W‖² at each batch's weights, weighted by its rows like the batch losses.
        penalised = train_loss + self._l2 / 2 * penalty / n if self._l2 else None
        accuracy = None
        if classify:
            truth = self._truth if perm is None else self._truth[perm]
            accuracy = float(np.mean(self._decided == truth))
        if not np.isfinite(train_loss):
            raise Diverged(epoch, train_loss)
        val_loss, val_acc = self._validate()
        self._watch(train_loss if val_loss is None else val_loss)
        self.epoch = epoch
        norms_W, norms_b = net.gradient_norms()
        figures = {} if health is None else health.end(self._batches[-1][2]).fields()
        return EpochResult(
            epoch=epoch,
            loss=train_loss,
            penalised_loss=penalised,
            val_loss=val_loss,
            accuracy=accuracy,
            val_accuracy=val_acc,
            grad_norm_weights=norms_W,
            grad_norm_biases=norms_b,
            learning_rate=lr,
            duration_ms=(time.perf_counter() - started) * 1e3,
            **figures,
        )

    def _validate(self) -> tuple[float | None, float | None]:
        if self._val_ws is None:
            return None, None
        ws, y = self._val_ws, self._y_val
        a_L = self.network.forward(self._x_val, ws)
        n = y.shape[0]
        val_loss = self.loss.value(ws.z, a_L, y, ws.scratch[-1]) / n
        accuracy = None
        if self.spec.is_classification:
            accuracy = float(np.mean(self.loss.decide(a_L) == self.loss.truth(y)))
        return val_loss, accuracy

    def _watch(self, watched: float) -> None:
        """Early stopping: patience runs out after that many epochs without a min_delta gain."""
        rule = self.spec.early_stopping
        if rule is None:
            return
        if self._best is None or watched < self._best - rule.min_delta:
            self._best, self._wait = watched, 0
        else:
            self._wait += 1
            self.stopped_early = self._wait >= rule.patience

    def state(self) -> dict[str, Any]:
        """A checkpoint: {"arrays": {name: ndarray}, "meta": JSON-safe dict}."""
        opt_arrays, opt_meta = self.optimizer.state()
        return {
            "arrays": {"theta": self.network.theta.copy()}
            | {f"optimizer.{k}": v for k, v in opt_arrays.items()},
            "meta": {
                "epoch": self.epoch,
                "optimizer": opt_meta,
                "rng": rng_meta(self._rng),
                "split_seed": self._split_seed,
                "watch": self.watch.state(),
                "early_stopping": {
                    "best": self._best,
                    "wait": self._wait,
                    "stopped": self.stopped_early,
                },
            },
        }

    @classmethod
    def restore(
        cls, spec: TrainSpec, x: npt.ArrayLike, y: npt.ArrayLike, state: dict[str, Any],
        *, health: bool = True,
    ) -> Trainer:  # fmt: skip
        """A Trainer that continues exactly where the one that made `state` was. The initial
        parameters and validation split are drawn from the state's `split_seed` (checkpoints
        written before it existed: the spec's seed); optimizer meta of None starts the optimizer
        afresh (a fork that changed its kind)."""
        arrays, meta = state["arrays"], state["meta"]
        split_seed = int(meta.get("split_seed", spec.seed))
        trainer = cls(spec.model_copy(update={"seed": split_seed}), x, y, health=health)
        trainer.spec, trainer._split_seed = spec, split_seed
        theta = trainer.network.theta
        if arrays["theta"].shape != theta.shape:
            raise ValueError(
                f"checkpoint holds {arrays['theta'].size} parameters, the spec's network "
                f"has {theta.size}"
            )
        theta[...] = arrays["theta"]
        prefix = "optimizer."
        if meta["optimizer"] is not None:
            trainer.optimizer.load_state(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)},
                meta["optimizer"],
            )
        rng = dict(meta["rng"])
        rng["state"] = {k: int(v) for k, v in rng["state"].items()}
        trainer._rng.bit_generator.state = rng
        stop = meta["early_stopping"]
        trainer._best, trainer._wait = stop["best"], stop["wait"]
        trainer.stopped_early = stop["stopped"]
        trainer.epoch = int(meta["epoch"])
        if "watch" in meta:  # checkpoints before health alerts start the rules afresh
            trainer.watch.load_state(meta["watch"])
        return trainer


def rng_meta(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's state, JSON-safe: PCG64's 128-bit integers as text, exact in any parser."""
    state = rng.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {k: str(v) for k, v in state["state"].items()},
        "has_uint32": state["has_uint32"],
        "uinteger": state["uinteger"],
    }
