"""Health alerts: the rules of `TrainSpec.health` applied to each epoch's figures as training
goes (backprop/health.py), and the rule that ends a run when `TrainSpec.stop_when` names it.

An alert is one rule on one layer (or on the whole network): it fires at the epoch its
condition first holds — at once for dead and saturated units and non-finite values, after
`epochs` epochs in a row for the update ratio, after `patience` epochs without improvement for
a plateau — and reports the epoch its current run began (`since`), the last epoch it held, and
whether it still holds. `Watch.state()` goes into a checkpoint, so a resumed or forked run
reports what an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backprop.spec import TrainSpec

# What held this epoch, by rule and layer: (rule, layer, what it says); rule "" for a run of
# epochs not yet long enough to fire.
Held = dict[str, tuple[str, int | None, str]]


@dataclass
class Alert:
    rule: str
    layer: int | None  # l = 1..L, None for the network as a whole
    since: int  # the first epoch of the run of epochs in which it held
    epoch: int  # the last epoch in which it held
    active: bool  # it held in the latest epoch
    message: str


class Watch:
    """The rules of one run; `update` after each epoch answers the alert that stops it."""

    def __init__(self, spec: TrainSpec) -> None:
        self.rules, self.stop_when = spec.health, set(spec.stop_when)
        self.sizes = spec.network.layers
        self.alerts: dict[str, Alert] = {}  # by rule and layer, in the order they first fired
        self.runs: dict[str, int] = {}  # the first epoch of each condition's current run
        self.best: float | None = None
        self.best_epoch = 0

    def update(self, r: Any) -> Alert | None:
        """Apply the rules to EpochResult `r`; the first alert that fired now and is in
        stop_when, if any. Without health figures (health=False) only the plateau rule runs."""
        held: Held = {}
        if r.dead_fraction is not None:
            self._units(held, "dead_units", r.dead_fraction, self.rules.dead_units, "dead")
            self._units(held, "saturated_units", r.saturated_fraction,
                        self.rules.saturated_units, "saturated")  # fmt: skip
            self._ratios(held, r)
            if r.nonfinite:
                held["nonfinite"] = ("nonfinite", None, "a NaN or infinity appeared")
        self._plateau(held, r)
        return self._record(held, r.epoch)

    def _units(
        self, held: Held, rule: str, fractions: list[float], threshold: float, word: str
    ) -> None:
        for l, fraction in enumerate(fractions[:-1], start=1):
            if fraction > threshold:
                n = self.sizes[l]
                what = f"layer {l}: {round(fraction * n)} of {n} units {word}"
                held[f"{rule}:{l}"] = (rule, l, what)

    def _ratios(self, held: Held, r: Any) -> None:
        rule = self.rules.update_ratio
        for l, ratio in enumerate(r.update_ratio_weights, start=1):
            side = "below" if ratio < rule.low else "above" if ratio > rule.high else None
            key = f"update_ratio:{l}"
            if side is None:  # within the bounds, or NaN (no norm before the epoch)
                continue
            bound = rule.low if side == "below" else rule.high
            since = self.runs.get(key, r.epoch)
            if r.epoch - since + 1 >= rule.epochs:
                what = f"layer {l}: update ratio ‖ΔW‖/‖W‖ {ratio:.2g}, {side} {bound:g}"
                held[key] = ("update_ratio", l, what)
            else:
                held[key] = ("", l, "")  # in a run, not yet long enough to fire

    def _plateau(self, held: Held, r: Any) -> None:
        watched = r.loss if r.val_loss is None else r.val_loss
        name = "loss" if r.val_loss is None else "val_loss"
        rule = self.rules.plateau
        if self.best is None or watched < self.best - rule.min_delta:
            self.best, self.best_epoch = watched, r.epoch
            return
        if r.epoch - self.best_epoch >= rule.patience:
            what = (f"{name} has not fallen below {self.best:.4g} by more than "
                    f"{rule.min_delta:g} in {r.epoch - self.best_epoch} epochs")  # fmt: skip
            held["plateau"] = ("plateau", None, what)
            self.runs.setdefault("plateau", self.best_epoch + 1)

    def _record(self, held: Held, epoch: int) -> Alert | None:
        self.runs = {k: v for k, v in self.runs.items() if k in held}
        stop = None
        for key, (rule, layer, what) in held.items():
            since = self.runs.setdefault(key, epoch)
            if not rule:
                continue
            known = self.alerts.get(key)
            fired = known is None or not known.active
            message = f"{what} since epoch {since}"
            self.alerts[key] = Alert(rule, layer, since, epoch, True, message)
            if fired and stop is None and rule in self.stop_when:
                stop = self.alerts[key]
        for key, alert in self.alerts.items():
            if key not in held or not held[key][0]:
                alert.active = False
        return stop

    def report(self) -> list[dict[str, Any]]:
        """Every alert that fired, JSON-safe, in the order they first fired."""
        return [asdict(a) for a in self.alerts.values()]

    def state(self) -> dict[str, Any]:
        return {"alerts": {k: asdict(a) for k, a in self.alerts.items()}, "runs": self.runs,
                "best": self.best, "best_epoch": self.best_epoch}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        self.alerts = {k: Alert(**a) for k, a in state["alerts"].items()}
        self.runs = dict(state["runs"])
        self.best, self.best_epoch = state["best"], state["best_epoch"]
