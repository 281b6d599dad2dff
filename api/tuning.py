"""A batch's scheduler at submission: its settings checked against the batch (422s naming the
field), and each trial's starting schedule (tune/)."""

from __future__ import annotations

from typing import Any

from api.errors import unprocessable
from api.schemas import BatchCreate
from backprop.fork import FIXED
from backprop.spec import TrainSpec
from tune import plans
from tune.schedulers import Fifo, Pbt, _Halving, _Scheduler

LOC = ["body", "scheduler"]


def resolve(body: BatchCreate, base: dict[str, Any]) -> tuple[_Scheduler, dict[str, Any]]:
    """The scheduler as stored (sha's, asha's and hyperband's max_epochs filled in) and the
    base body every trial starts from (its epochs set to max_epochs when given); 422 for
    settings the batch cannot run with."""
    cfg = body.scheduler
    if not cfg.adaptive:
        return cfg, base
    for where in ("grid", "space"):
        if "epochs" in getattr(body, where):
            raise unprocessable(
                ["body", where, "epochs"],
                f"a {cfg.name} batch trains every trial to the same epochs; set them in the "
                "base" + (" or as scheduler.max_epochs" if isinstance(cfg, _Halving) else ""),
            )
    if isinstance(cfg, _Halving):
        if cfg.max_epochs is not None:
            base = base | {"epochs": cfg.max_epochs}
        max_epochs = base.get("epochs", TrainSpec.model_fields["epochs"].default)
        if cfg.min_epochs >= max_epochs:
            raise unprocessable(
                [*LOC, "min_epochs"],
                f"min_epochs ({cfg.min_epochs}) must be below max_epochs ({max_epochs}): "
                "the first rung comes before the end",
            )
        cfg = cfg.model_copy(update={"max_epochs": max_epochs})
    if isinstance(cfg, Pbt):
        _check_pbt(cfg, body)
    return cfg, base


def _check_pbt(cfg: Pbt, body: BatchCreate) -> None:
    paths = [*body.grid, *body.space]
    if not [p for p in paths if p.split(".")[0] not in FIXED]:
        raise unprocessable(
            ["body", "space"],
            "pbt explores hyperparameters: give at least one in space or grid that a fork may "
            f"change (not {', '.join(sorted(FIXED))})",
        )
    if body.num_samples * max(1, _grid_size(body)) < 2:
        raise unprocessable(["body", "num_samples"], "pbt needs a population of at least 2")


def _grid_size(body: BatchCreate) -> int:
    n = 1
    for values in body.grid.values():
        n *= len(values)
    return n


def check_specs(cfg: _Scheduler, specs: list[TrainSpec]) -> None:
    """422 unless every trial reports the scheduler's metric."""
    if isinstance(cfg, Fifo):
        return
    for spec in specs:
        if cfg.metric.startswith("val_") and spec.validation_split == 0:
            raise unprocessable(
                [*LOC, "metric"],
                f"{cfg.metric} needs a validation split: set base.validation_split above 0, "
                "or rank by loss",
            )
        if cfg.metric.endswith("accuracy") and not spec.is_classification:
            raise unprocessable(
                [*LOC, "metric"],
                f"{cfg.metric} is defined for classification losses only (the loss is "
                f"{spec.loss}); rank by loss or val_loss",
            )


def trial_columns(cfg: _Scheduler, trial: int, max_epochs: int) -> dict[str, Any]:
    """A trial's index and first pause, as its job row holds them."""
    if not cfg.adaptive:
        return {}
    bracket = plans.bracket_of(cfg, trial, max_epochs)
    return {"trial": trial, "stop_at": plans.next_stop(cfg, bracket, max_epochs, 0)}
