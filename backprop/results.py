"""What an epoch yields (EpochResult), and the error that ends a run whose loss diverged."""

from __future__ import annotations

from dataclasses import dataclass


class Diverged(ArithmeticError):
    """The loss stopped being a finite number."""

    def __init__(self, epoch: int, loss: float) -> None:
        super().__init__(
            f"training diverged at epoch {epoch}: the loss became {loss}; "
            "try a smaller learning_rate"
        )
        self.epoch = epoch
        self.loss = loss


@dataclass(frozen=True, slots=True)
class EpochResult:
    """What one epoch produced. Gradient norms are those of the epoch's last update."""

    epoch: int
    loss: float  # the data cost C, without the L2 penalty
    penalised_loss: float | None  # loss + (λ/2n)·Σ‖W^l‖², None when l2 = 0
    val_loss: float | None
    accuracy: float | None
    val_accuracy: float | None
    grad_norm_weights: list[float]  # ‖∂C/∂W^l‖ for l = 1..L
    grad_norm_biases: list[float]  # ‖∂C/∂b^l‖ for l = 1..L
    learning_rate: float
    duration_ms: float
    # Training health (backprop/health.py); None when the Trainer was made with health=False.
    update_ratio_weights: list[float] | None = None  # ‖ΔW^l‖/‖W^l‖ over the epoch
    update_ratio_biases: list[float] | None = None  # ‖Δb^l‖/‖b^l‖
    dead_fraction: list[float] | None = None
    saturated_fraction: list[float] | None = None
    delta_mean: list[float] | None = None  # mean |δ^l| of the last mini-batch
    delta_max: list[float] | None = None
    nonfinite: float | None = None  # 1.0 when a non-finite value appeared in the epoch
