"""What one request may ask of the service: each limit a DELTAFLOW_MAX_* setting, each breach a
422 that names the limit and the value."""

from __future__ import annotations

import itertools

import numpy as np

from api.errors import unprocessable
from backprop.spec import TrainSpec
from settings import Settings


def check(spec: TrainSpec, x: np.ndarray, settings: Settings, where: list[str]) -> None:
    """Raise a 422 at `where` (plus the field) if the job is larger than the limits allow."""
    layers = spec.network.layers
    n_parameters = sum((a + 1) * b for a, b in itertools.pairwise(layers))
    for value, setting, field, what in (
        (spec.epochs, "max_epochs", ["epochs"], "epochs"),
        (len(layers) - 1, "max_layers", ["network", "layers"], "layers with parameters"),
        (n_parameters, "max_parameters", ["network", "layers"], "parameters"),
        (x.size, "max_data_values", ["dataset"], "data values (samples × features)"),
    ):
        limit = getattr(settings, setting)
        if value > limit:
            raise unprocessable(
                ["body", *where, *field],
                f"{value:,} {what} is over the limit of {limit:,} (DELTAFLOW_{setting.upper()})",
            )
