"""`deltaflow demo`: the seed's example (XOR on a 2-4-1 sigmoid network) trained as a real job
on a local stack, then read back from the service's history."""

from __future__ import annotations

import json
from datetime import datetime

from rich.console import Console

from cli.client import Client
from cli.local import describe_database, load_settings, running
from cli.plot import movement, pick_epochs
from cli.progress import finish, follow
from cli.services import Stack
from cli.tables import epochs_table, layer_table

NAME = "demo: xor 2-4-1"
DEMO_FIELDS = ("epoch", "loss", "grad_norm_weights", "grad_norm_biases", "duration_ms")


def demo_body(epochs: int) -> dict:
    """The seed's example: plain SGD (eq. 11 and 15) on the quadratic cost, α = 2.0."""
    return {
        "name": NAME,
        "tags": {"source": "deltaflow demo"},
        "dataset": {"builtin": "xor"},
        "network": {"layers": [2, 4, 1], "activation": "sigmoid", "output_activation": "sigmoid"},
        "loss": "mse",
        "optimizer": {"name": "sgd", "learning_rate": 2.0},
        "epochs": epochs,
        "snapshot_every": max(epochs // 50, 1),
    }


def run_demo(
    port: int, epochs: int, console: Console, *, key: str | None = None, as_json: bool = False
) -> None:
    settings = load_settings()
    if key is None and settings.auth == "required" and settings.bootstrap_key is not None:
        key = settings.bootstrap_key.get_secret_value()  # the stack is ours: use its admin key
    # The children's logs go to files so they do not tear through the progress bar.
    stack = Stack(port=port, workers=1, log_dir=settings.var_dir / "logs")
    with running(stack, console), Client(stack.url, key) as client:
        job = client.submit(demo_body(epochs))
        if not as_json:
            console.print(f"submitted job {job['id']} to {stack.url}")
        job = follow(client, job["id"], console, show=not as_json)
        finish(job, console, quiet=True)
        history = {
            "job": job,
            "epochs": client.epochs(job["id"]),
            "first": client.snapshot(job["id"], 0),
            "last": client.snapshot(job["id"], "latest"),
        }
    if as_json:
        history["epochs"] = pick_epochs(history["epochs"])
        print(json.dumps(history, indent=2))
    else:
        report(history, console, describe_database(settings))


def report(history: dict, console: Console, database: str) -> None:
    job, first, last = history["job"], history["first"], history["last"]
    title = f"XOR 2-4-1 sigmoid, mse, SGD α = 2.0: {job['epochs_done']} epochs"
    picked = pick_epochs(history["epochs"])
    columns = {field: [row[field] for row in picked] for field in DEMO_FIELDS}
    console.print(epochs_table(columns, title=title))
    for layer in last["layers"]:
        console.print(layer_table(layer, last["epoch"]))
    span = (first["epoch"], last["epoch"])
    w0, w1 = first["layers"][0]["weights"][0][0], last["layers"][0]["weights"][0][0]
    b0, b1 = first["layers"][0]["biases"][0], last["layers"][0]["biases"][0]
    console.print("How one weight and one bias of layer 1 moved:")
    console.print("  " + movement("w^1_{0,0}", w0, w1, span), markup=False)
    console.print("  " + movement("b^1_{0}", b0, b1, span), markup=False)
    console.print(
        f"job {job['id']} [green]succeeded[/]: final loss {job['final_loss']:.6g} "
        f"in {_seconds(job):.1f} s",
        soft_wrap=True,
    )
    console.print(f"stored in {database}", markup=False, soft_wrap=True)
    console.print(
        f"see it again: deltaflow up, then deltaflow show {job['id'][:8]} "
        f"or open http://127.0.0.1:8000/#/jobs/{job['id']}",
        soft_wrap=True,
    )


def _seconds(job: dict) -> float:
    if not job["started_at"] or not job["finished_at"]:
        return 0.0
    started, finished = map(datetime.fromisoformat, (job["started_at"], job["finished_at"]))
    return (finished - started).total_seconds()
