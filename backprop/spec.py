"""TrainSpec: the validated description of one training run.

Every field has the default a user of scikit-learn or Keras would expect; every meaningless
combination is rejected with a sentence that says what to change.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HiddenActivation = Literal["sigmoid", "tanh", "relu", "leaky_relu", "identity"]
OutputActivation = Literal["sigmoid", "softmax", "identity", "tanh"]
LossName = Literal["mse", "binary_cross_entropy", "cross_entropy"]

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
UnitFloat = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class _Strict(BaseModel):
    # strict: a spec is JSON, and "100" or 100.0 for epochs, or 0 or "yes" for shuffle, is a
    # mistake to report rather than to coerce (an int is still a float).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NetworkSpec(_Strict):
    """Layer sizes n_0 (inputs) … n_L (outputs) and the activations σ of eq. (2)."""

    layers: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=2,
        description="Neurons per layer, input size first and output size last, e.g. [2, 4, 1].",
    )
    activation: HiddenActivation = Field("sigmoid", description="σ of the hidden layers.")
    output_activation: OutputActivation = Field("sigmoid", description="σ of the output layer.")
    init: Literal["xavier", "he", "uniform"] = "xavier"
    leaky_slope: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.01, description="Slope of leaky_relu for z < 0."
    )


class _Optimizer(_Strict):
    learning_rate: PositiveFloat = Field(0.1, description="α in eq. (11) and (15).")


class Sgd(_Optimizer):
    """Plain gradient descent, exactly eq. (11) and (15)."""

    name: Literal["sgd"] = "sgd"


class Momentum(_Optimizer):
    """Polyak's heavy ball: v ← μv − α∇C, θ ← θ + v."""

    name: Literal["momentum"] = "momentum"
    momentum: UnitFloat = 0.9


class Nesterov(_Optimizer):
    """Nesterov's accelerated gradient in the form of Sutskever et al. (2013)."""

    name: Literal["nesterov"] = "nesterov"
    momentum: UnitFloat = 0.9


class Adagrad(_Optimizer):
    """Duchi, Hazan and Singer (2011)."""

    name: Literal["adagrad"] = "adagrad"
    learning_rate: PositiveFloat = 0.01
    eps: PositiveFloat = 1e-10


class RmsProp(_Optimizer):
    """Hinton's lecture 6e: a running mean of g² with decay ρ."""

    name: Literal["rmsprop"] = "rmsprop"
    learning_rate: PositiveFloat = 0.001
    rho: UnitFloat = 0.9
    eps: PositiveFloat = 1e-8


class Adam(_Optimizer):
    """Kingma and Ba (2015), with bias-corrected moments."""

    name: Literal["adam"] = "adam"
    learning_rate: PositiveFloat = 0.001
    beta1: UnitFloat = 0.9
    beta2: UnitFloat = 0.999
    eps: PositiveFloat = 1e-8


OptimizerConfig = Sgd | Momentum | Nesterov | Adagrad | RmsProp | Adam
OptimizerSpec = Annotated[OptimizerConfig, Field(discriminator="name")]


class ConstantLr(_Strict):
    name: Literal["constant"] = "constant"


class StepLr(_Strict):
    """α_e = α · γ^⌊(e−1)/step_size⌋ for epoch e = 1, 2, …"""

    name: Literal["step"] = "step"
    step_size: Annotated[int, Field(ge=1)] = 10
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.5


class ExponentialLr(_Strict):
    """α_e = α · γ^(e−1) for epoch e = 1, 2, …"""

    name: Literal["exponential"] = "exponential"
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.99


LrScheduleSpec = Annotated[ConstantLr | StepLr | ExponentialLr, Field(discriminator="name")]


class EarlyStopping(_Strict):
    """Stop when the watched loss has not fallen by more than min_delta for `patience` epochs."""

    patience: Annotated[int, Field(ge=1)] = 10
    min_delta: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class UpdateRatioRule(_Strict):
    """‖ΔW^l‖/‖W^l‖ outside [low, high] for `epochs` epochs in a row (CS231n: near 1e-3)."""

    low: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e-5
    high: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e-1
    epochs: Annotated[int, Field(ge=1)] = 20

    @model_validator(mode="after")
    def _ordered(self) -> UpdateRatioRule:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class PlateauRule(_Strict):
    """The watched loss (val_loss with a validation split, else loss) has not fallen by more
    than min_delta for `patience` epochs."""

    patience: Annotated[int, Field(ge=1)] = 50
    min_delta: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class HealthRules(_Strict):
    """When a health alert fires (backprop/rules.py); `stop_when` names those that end a job."""

    dead_units: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.5, description="More than this fraction of a hidden layer's units dead."
    )
    saturated_units: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.5, description="More than this fraction of a hidden layer's units saturated."
    )
    update_ratio: UpdateRatioRule = Field(default_factory=UpdateRatioRule)
    plateau: PlateauRule = Field(default_factory=PlateauRule)


RuleName = Literal["dead_units", "saturated_units", "update_ratio", "nonfinite", "plateau"]


def _default_name(value: Any, default: str) -> Any:
    """Let `{"learning_rate": 0.5}` mean the default kind, as a user would expect."""
    if isinstance(value, dict) and "name" not in value:
        return {"name": default, **value}
    return value


class TrainSpec(_Strict):
    """Everything that determines a run: same spec + same data ⇒ same numbers, bit for bit."""

    network: NetworkSpec
    loss: LossName = Field("mse", description="mse is the seed's quadratic cost.")
    optimizer: OptimizerSpec = Field(default_factory=Sgd)
    lr_schedule: LrScheduleSpec = Field(default_factory=ConstantLr)
    epochs: Annotated[int, Field(ge=1)] = 100
    batch_size: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Samples per mini-batch; null trains on the full batch."
    )
    shuffle: bool = True
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    l2: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        0.0, description="λ of the penalty (λ/2n)·Σ‖W‖² on weights only, never biases."
    )
    validation_split: UnitFloat = 0.0
    early_stopping: EarlyStopping | None = None
    snapshot_every: Annotated[int, Field(ge=1)] = 1
    dtype: Literal["float64", "float32"] = "float64"
    health: HealthRules = Field(default_factory=HealthRules)
    stop_when: list[RuleName] = Field(
        default_factory=list, max_length=5,
        description="Health rules that end the job as stopped at the epoch they fire.",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "optimizer" in data:
                data["optimizer"] = _default_name(data["optimizer"], "sgd")
            if "lr_schedule" in data:
                data["lr_schedule"] = _default_name(data["lr_schedule"], "constant")
        return data

    @field_validator("stop_when")
    @classmethod
    def _once_each(cls, rules: list[str]) -> list[str]:
        for i, rule in enumerate(rules):
            if rule in rules[:i]:
                raise ValueError(f"names the rule {rule!r} twice")
        return rules

    @model_validator(mode="after")
    def _loss_fits_output(self) -> TrainSpec:
        out, loss, n_out = self.network.output_activation, self.loss, self.network.layers[-1]
        if loss == "cross_entropy" and out != "softmax":
            raise ValueError(
                "loss 'cross_entropy' needs network.output_activation 'softmax'; "
                "use 'binary_cross_entropy' for a sigmoid output"
            )
        if loss == "cross_entropy" and n_out < 2:
            raise ValueError(
                "loss 'cross_entropy' needs at least 2 output units (one per class); "
                "for two classes with one output use a sigmoid output and 'binary_cross_entropy'"
            )
        if out == "softmax" and loss != "cross_entropy":
            raise ValueError(
                "network.output_activation 'softmax' needs loss 'cross_entropy'; "
                f"use a sigmoid or identity output with '{loss}'"
            )
        if loss == "binary_cross_entropy" and out != "sigmoid":
            raise ValueError(
                "loss 'binary_cross_entropy' needs network.output_activation 'sigmoid'"
            )
        return self

    @property
    def is_classification(self) -> bool:
        """Accuracy is reported for the cross-entropy losses, whose targets are classes."""
        return self.loss != "mse"
