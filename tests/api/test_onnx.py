"""GET /v1/jobs/{id}/snapshots/{epoch}/model.onnx: the network at an epoch, run in
onnxruntime, computes what POST …/predict computes, for every activation and output."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from backprop.spec import HiddenActivation, OutputActivation
from tests.factories import XOR_JOB

HIDDEN = list(HiddenActivation.__args__)
OUTPUT = list(OutputActivation.__args__)
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}
INPUTS = 3  # n_0


def _body(hidden: str, output: str, dtype: str) -> dict:
    """A 3-5-4-k network trained a few epochs on inline data, so its parameters moved."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (40, INPUTS))
    if output == "softmax":
        y, loss, k = (x.sum(axis=1) > 0).astype(int) + (x[:, 0] > 0.5), "cross_entropy", 3
    else:
        y, loss, k = np.tanh(x @ [0.5, -0.3, 0.2]), "mse", 1
    network = {"layers": [INPUTS, 5, 4, k], "activation": hidden, "output_activation": output,
               "leaky_slope": 0.2}  # fmt: skip
    return XOR_JOB | {
        "network": network, "loss": loss, "dtype": dtype, "epochs": 6, "snapshot_every": 3,
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "dataset": {"inline": {"x": x.tolist(), "y": y.tolist()}},
    }  # fmt: skip


@pytest.mark.parametrize(("hidden", "output"), list(itertools.product(HIDDEN, OUTPUT)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_onnx_runs_as_predict_does(client, trained, hidden, output, dtype):
    job = trained(_body(hidden, output, dtype))
    x = np.random.default_rng(1).normal(0, 2, (64, INPUTS))
    for epoch in (3, "latest"):
        r = client.get(f"/v1/jobs/{job['id']}/snapshots/{epoch}/model.onnx")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/octet-stream"
        model = onnx.load_from_string(r.content)
        onnx.checker.check_model(model, full_check=True)
        session = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
        (got,) = session.run(["a_L"], {"x": x.astype(dtype)})
        assert got.dtype == np.dtype(dtype)
        at = int(r.headers["x-snapshot-epoch"])
        want = client.post(f"/v1/jobs/{job['id']}/predict", json={"x": x.tolist(), "epoch": at})
        assert want.status_code == 200, want.text
        expected = np.array(want.json()["outputs"])
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def test_the_model_documents_its_input_output_and_epoch(client, trained):
    job = trained()
    r = client.get(f"/v1/jobs/{job['id']}/snapshots/100/model.onnx")
    model = onnx.load_from_string(r.content)
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["a_L"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param, dims[1].dim_value) == ("N", 2)
    assert model.doc_string == f"deltaflow job {job['id']} at epoch 100"
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Sigmoid", "Gemm", "Sigmoid"]
    disposition = r.headers["content-disposition"]
    assert disposition == f'attachment; filename="job-{job["id"]}-epoch-100.onnx"'


def test_an_epoch_without_a_snapshot_is_a_404_naming_it(client, trained):
    job = trained()
    r = client.get(f"/v1/jobs/{job['id']}/snapshots/7/model.onnx")
    assert r.status_code == 404
    assert "7" in r.json()["message"]
