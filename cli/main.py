"""`deltaflow` — the command line (typer + rich)."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from backprop import Trainer, TrainSpec, datasets

app = typer.Typer(help="deltaflow: train neural networks by backpropagation, every epoch kept.")
console = Console()


@app.callback()
def main() -> None:
    """deltaflow's command line."""


@app.command()
def demo(epochs: int = typer.Option(5000, help="Epochs to train.")) -> None:
    """Train the seed's example, XOR on a 2-4-1 sigmoid network, and show how it learned."""
    xor = datasets.load("xor")
    spec = TrainSpec.model_validate(
        {"network": {"layers": [2, 4, 1]}, "optimizer": {"learning_rate": 2.0}, "epochs": epochs}
    )
    trainer = Trainer(spec, xor.x, xor.y)
    table = Table(title=f"XOR, 2-4-1 sigmoid, plain SGD (α = 2.0), {epochs} epochs")
    for column in ("epoch", "loss (½‖y − a‖²)", "‖∂C/∂W¹‖", "‖∂C/∂b¹‖"):
        table.add_column(column, justify="right")
    started = time.perf_counter()
    show = {1, epochs} | {e for e in range(1, epochs + 1) if e % max(epochs // 8, 1) == 0}
    for r in trainer.epochs():
        if r.epoch in show:
            table.add_row(
                str(r.epoch),
                f"{r.loss:.6f}",
                f"{r.grad_norm_weights[0]:.2e}",
                f"{r.grad_norm_biases[0]:.2e}",
            )
    elapsed = time.perf_counter() - started
    console.print(table)
    outputs = trainer.network.predict(xor.x).ravel()
    for x, y, a in zip(xor.x, xor.y, outputs, strict=True):
        console.print(f"  x = {x.astype(int).tolist()}  y = {y}  a^L = {a:.4f}")
    console.print(
        f"{epochs} epochs in {elapsed * 1e3:.0f} ms ({elapsed / epochs * 1e6:.1f} µs/epoch)"
    )
