"""deltaflow from Python: upload numpy data, train a job, read its history as a DataFrame,
its weights at any epoch, one weight's path, predictions and an ONNX model; then a small
grid and its leaderboard.

Start the service first (`deltaflow up`, or `make up`), then: python examples/quickstart.py
(DELTAFLOW_URL and DELTAFLOW_KEY say where it is and which key to use)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import deltaflow

# Points in the square, labelled by the quadrant's sign: XOR, which needs a hidden layer.
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, size=(400, 2)).astype(np.float32)
y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)

job_body = {
    "name": "quadrants",
    "network": {"layers": [2, 8, 2], "activation": "tanh", "output_activation": "softmax"},
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.05},
    "epochs": 60,
    "batch_size": 32,
    "snapshot_every": 20,
}

with deltaflow.Client() as client:
    data = client.datasets.upload(x, y, name="quadrants")
    print(f"data set {data['id']}: {data['n_samples']} samples × {data['n_features']} features")

    job = client.jobs.submit(job_body, dataset=data)
    job.wait(progress=sys.stderr.isatty())
    history = job.history(fields=["loss", "accuracy"])
    print(history.tail(3).to_string(index=False))

    weights = job.snapshot(20)
    print("epoch 20:", {name: array.shape for name, array in weights.items()})
    print(job.trajectory("w^1_{0,1}").tail(3).to_string())

    outputs = job.predict(x[:5])
    print("a^L of 5 rows:", np.round(outputs, 3).tolist(), "labels:", y[:5].tolist())
    onnx_path = Path(tempfile.gettempdir()) / f"deltaflow-{job.id}.onnx"
    job.to_onnx(path=str(onnx_path))
    print(f"ONNX model of the last snapshot: {onnx_path}")

    grid = {"optimizer.learning_rate": [0.01, 0.05], "network.layers": [[2, 4, 2], [2, 8, 2]]}
    batch = client.batches.create(job_body | {"dataset": {"id": data["id"]}}, grid=grid)
    batch.wait(progress_bar=sys.stderr.isatty())
    print(batch.leaderboard()[["optimizer.learning_rate", "network.layers", "best_loss"]])
    curves = client.history(batch=batch, fields="loss")
    print(f"{len(curves)} epochs of {curves['job_id'].nunique()} jobs in one DataFrame")
