"""A batch's scheduler: how its trials are stopped, paused and promoted, or cloned.

    "scheduler": {"name": "asha", "metric": "val_loss", "reduction_factor": 3}

- fifo: every trial trains every epoch (the default; a grid as before).
- sha: one bracket of successive halving. Rungs at min_epochs · η^i below max_epochs; a trial
  that reaches a rung pauses; once every trial of the rung has reached it (or ended), the best
  ⌈n/η⌉ are promoted — resumed from their exact state — and the others stopped.
- hyperband: several brackets of successive halving, each starting at a later rung, trials
  filling the most aggressive bracket first (as Ray Tune's HyperBandScheduler does).
- asha: asynchronous successive halving (Li et al. 2018): a paused trial is promoted as soon
  as it is in the top ⌊n/η⌋ of the n trials that have reached its rung; when no trial can reach
  the rung any more, it is topped up to ⌈n/η⌉, as sha keeps, and the rest are stopped.
- median: a trial is stopped at epoch t ≥ grace_period when its best value is worse than the
  median of the running averages, up to t, of the other trials that reached t (at least
  min_samples of them), as Ray Tune's MedianStoppingRule.
- pbt: population based training (Jaderberg et al. 2017), in generations: every
  perturbation_interval epochs each trial pauses; once all have, the bottom quantile_fraction
  are replaced by forks of top trials at that epoch — their exact state — with perturbed
  hyperparameters (tune/pbt.py), and the others go on.

Defaults are Ray Tune's where it has them in epochs (ASHA's grace period 1 and reduction factor
4, HyperBand's 3; median's min_samples 3; PBT's quantile 0.25, resample probability 0.25 and
factors 1.2 / 0.8). Ray counts the median rule's grace period and PBT's interval in seconds by
default; here they are epochs (5 each).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tune.space import RequestModel

Metric = Literal["loss", "val_loss", "accuracy", "val_accuracy"]
HIGHER_IS_BETTER = frozenset({"accuracy", "val_accuracy"})


class _Scheduler(RequestModel):
    metric: Metric = Field("loss", description="The epoch field trials are ranked by.")
    mode: Literal["min", "max"] | None = Field(
        None, description="min or max is better; by default max for accuracies, min for losses."
    )

    @property
    def maximise(self) -> bool:
        return (self.mode or ("max" if self.metric in HIGHER_IS_BETTER else "min")) == "max"

    @property
    def adaptive(self) -> bool:
        return True


class Fifo(_Scheduler):
    """Every trial trains every epoch."""

    name: Literal["fifo"]

    @property
    def adaptive(self) -> bool:
        return False


Epochs = Annotated[int, Field(ge=1, le=1_000_000)]


class _Halving(_Scheduler):
    min_epochs: Epochs = Field(1, description="The first rung (Ray's grace_period).")
    max_epochs: Epochs | None = Field(
        None, description="Epochs of a trial that is promoted all the way; the spec's epochs "
        "by default (set here, it replaces them in every trial)."
    )  # fmt: skip
    reduction_factor: int = Field(4, ge=2, le=100, description="η: 1/η of a rung go on.")


class Sha(_Halving):
    """One bracket of synchronous successive halving."""

    name: Literal["sha"]


class Asha(_Halving):
    """Asynchronous successive halving: promotion without waiting for the rung."""

    name: Literal["asha"]


class Hyperband(_Halving):
    """Brackets of successive halving, from the most aggressive to plain training."""

    name: Literal["hyperband"]
    reduction_factor: int = Field(3, ge=2, le=100, description="η: 1/η of a rung go on.")


class Median(_Scheduler):
    """Stop a trial whose best is worse than the others' median running average."""

    name: Literal["median"]
    grace_period: Epochs = Field(5, description="No trial is stopped before this epoch.")
    min_samples: int = Field(3, ge=1, le=10_000, description="Other trials needed to compare.")


class Pbt(_Scheduler):
    """Population based training: the weak clone the strong, then explore."""

    name: Literal["pbt"]
    perturbation_interval: Epochs = Field(5, description="Epochs between exploits.")
    quantile_fraction: float = Field(
        0.25, gt=0, le=0.5, description="The bottom fraction that clones the top fraction."
    )
    resample_probability: float = Field(
        0.25, ge=0, le=1, description="Chance that a value is drawn anew instead of perturbed."
    )
    perturbation_factors: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [1.2, 0.8], min_length=1, max_length=10,
        description="A numeric value is multiplied by one of these, chosen at random.",
    )  # fmt: skip


Scheduler = Annotated[Fifo | Sha | Asha | Hyperband | Median | Pbt, Field(discriminator="name")]
HALVING = (Sha, Asha, Hyperband)
