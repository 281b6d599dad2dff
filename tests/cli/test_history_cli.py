"""`deltaflow sweep`, `batches`, `batch`, `jobs` filters, `epochs`, `trajectory` and `export`
against one real service (api, worker, reaper as processes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.cli.helpers import error_line, invoke
from tests.factories import HTTP, XOR_JOB

# tests/cli/conftest.py's service is shared by this module and others: one xdist worker runs them.
pytestmark = pytest.mark.xdist_group("cli-service")

SPEC = {
    "name": "grid xor",
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"name": "sgd", "learning_rate": 2.0},
    "epochs": 200,
    "snapshot_every": 20,
    "dataset": {"builtin": "xor"},
    "grid": {"optimizer.learning_rate": [2.0, 0.5], "network.layers": [[2, 4, 1], [2, 8, 1]]},
}
# One job of this batch diverges (the loss overflows) and fails.
DIVERGING = {
    "name": "diverging",
    "base": {
        "network": {"layers": [2, 4, 1], "activation": "identity", "output_activation": "identity"},
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 100,
        "dataset": {"builtin": "xor"},
    },
    "grid": {"optimizer.learning_rate": [0.1, 1e6]},
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def write(tmp: Path, body: dict) -> str:
    path = tmp / f"{body['name']}.json"
    path.write_text(json.dumps(body))
    return str(path)


@pytest.fixture(scope="module")
def swept(url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """The 2×2 sweep, followed to the end: (the batch as the API has it, the CLI's stdout)."""
    result = invoke(url, "sweep", write(tmp_path_factory.mktemp("sweep"), SPEC))
    assert result.exit_code == 0, result.output
    batch_id = UUID.search(result.stdout.splitlines()[0]).group()
    return HTTP.get(f"{url}/v1/batches/{batch_id}").json(), result.stdout


@pytest.fixture(scope="module")
def diverged(url: str, tmp_path_factory: pytest.TempPathFactory):
    return invoke(url, "sweep", write(tmp_path_factory.mktemp("diverge"), DIVERGING))


@pytest.fixture(scope="module")
def job_id(swept: tuple[dict, str]) -> str:
    return swept[0]["leaderboard"][0]["job_id"]


def test_sweep_prints_a_leaderboard_of_every_job(swept: tuple[dict, str]) -> None:
    batch, stdout = swept
    assert batch["total"] == batch["done"] == 4
    assert batch["counts"] == {"succeeded": 4}
    assert f"batch {batch['id']}: 4 job(s)" in stdout
    rows = [line for line in stdout.splitlines() if re.match(r"^\s*[1-4]\s+\S+=", line)]
    assert len(rows) == 4, stdout
    for rank, (row, leader) in enumerate(zip(rows, batch["leaderboard"], strict=True), 1):
        assert row.split()[0] == str(rank)
        assert leader["job_id"][:8] in row
        assert "succeeded" in row
    assert "optimizer.learning_rate=0.5" in stdout
    assert "network.layers=[2, 8, 1]" in stdout


def test_sweep_with_a_failed_job_prints_the_table_then_exits_1(diverged) -> None:
    assert diverged.exit_code == 1, diverged.output
    assert "optimizer.learning_rate=1000000.0" in diverged.stdout
    assert "failed" in diverged.stdout
    assert "1 failed of 2 jobs" in diverged.output


def test_sweep_with_an_unknown_grid_path_prints_the_api_message(url: str, tmp_path: Path) -> None:
    bad = {**SPEC, "name": "bad", "grid": {"optimizer.learnin_rate": [1.0]}}
    assert error_line(invoke(url, "sweep", write(tmp_path, bad))) == (
        "error: HTTP 422: grid.optimizer.learnin_rate: 'optimizer.learnin_rate' is not a field "
        "of a training spec"
    )


def test_sweep_json_no_watch_prints_the_created_batch(url: str, tmp_path: Path) -> None:
    body = {"name": "quick", "base": {**SPEC, "epochs": 5}, "grid": {"seed": [1, 2, 3]}}
    del body["base"]["grid"]
    result = invoke(url, "sweep", write(tmp_path, body), "--no-watch", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["size"] == len(created["job_ids"]) == 3
    assert created["name"] == "quick"


def test_batches_lists_the_sweep(url: str, swept: tuple[dict, str]) -> None:
    batch = swept[0]
    listed = invoke(url, "batches", "--json")
    assert listed.exit_code == 0, listed.output
    assert batch["id"] in [b["id"] for b in json.loads(listed.stdout)]
    table = invoke(url, "batches")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if batch["id"][:8] in line)
    assert "grid xor" in row
    assert row.split()[3] == "4"


def test_batch_shows_the_leaderboard_by_short_id(url: str, swept: tuple[dict, str]) -> None:
    batch = swept[0]
    result = invoke(url, "batch", batch["id"][:8], "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert [r["job_id"] for r in shown["leaderboard"]] == [
        r["job_id"] for r in batch["leaderboard"]
    ]
    losses = [r["best_loss"] for r in shown["leaderboard"]]
    assert losses == sorted(losses)


def test_jobs_of_one_batch(url: str, swept: tuple[dict, str], diverged) -> None:
    batch = swept[0]
    result = invoke(url, "jobs", "--batch", batch["id"], "--json")
    assert result.exit_code == 0, result.output
    jobs = json.loads(result.stdout)
    assert sorted(j["id"] for j in jobs) == sorted(r["job_id"] for r in batch["leaderboard"])
    everything = json.loads(invoke(url, "jobs", "--json", "--limit", "100").stdout)
    assert len(everything) > len(jobs)


def test_jobs_by_status_sorted_by_final_loss(url: str, swept, diverged) -> None:
    result = invoke(url, "jobs", "--status", "succeeded", "--order-by", "final_loss", "--json")
    assert result.exit_code == 0, result.output
    jobs = json.loads(result.stdout)
    assert len(jobs) >= 5  # four of the grid, one that did not diverge
    assert {j["status"] for j in jobs} == {"succeeded"}
    losses = [j["final_loss"] for j in jobs]
    assert losses == sorted(losses)
    # Jobs of other tests may finish in between: compare the order, not the lists.
    worst = invoke(url, "jobs", "--status", "succeeded", "--order-by=-final_loss", "--json")
    descending = [j["final_loss"] for j in json.loads(worst.stdout)]
    assert len(descending) >= 5
    assert descending == sorted(descending, reverse=True) != losses
    failed = json.loads(invoke(url, "jobs", "--status", "failed", "--json").stdout)
    assert [j["status"] for j in failed] == ["failed"]


def test_jobs_by_name_prefix_and_bad_tag(url: str, swept, diverged) -> None:
    result = invoke(url, "jobs", "--name", "diverging [", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(j["name"] for j in json.loads(result.stdout)) == [
        "diverging [optimizer.learning_rate=0.1]",
        "diverging [optimizer.learning_rate=1000000.0]",
    ]
    bad = invoke(url, "jobs", "--tag", "nocolon")
    assert error_line(bad) == "error: --tag 'nocolon' is not key:value"


def test_epochs_downsampled_keeps_the_first_and_the_last(url: str, job_id: str) -> None:
    result = invoke(url, "epochs", job_id, "--points", "10", "--json")
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    epochs = page["columns"]["epoch"]
    assert len(epochs) <= 10
    assert epochs[0] == 1
    assert epochs[-1] == 200
    assert epochs == sorted(epochs)
    assert page["downsampled"] == {"points": len(epochs), "of": 200}
    table = invoke(url, "epochs", job_id[:8], "--points", "10")
    assert table.exit_code == 0, table.output
    assert f"downsampled: {len(epochs)} of 200 epochs" in table.stdout


def test_epochs_range_fields_and_default_limit(url: str, job_id: str) -> None:
    ranged = invoke(url, "epochs", job_id, "--start", "10", "--end", "14", "--fields", "loss")
    assert ranged.exit_code == 0, ranged.output
    rows = [line.split() for line in ranged.stdout.splitlines() if re.match(r"^\s*\d+\s+0\.", line)]
    assert [int(r[0]) for r in rows] == [10, 11, 12, 13, 14]
    assert all(len(r) == 2 for r in rows)
    assert "5 epoch(s)" in ranged.stdout
    first = json.loads(invoke(url, "epochs", job_id, "--json").stdout)
    assert first["columns"]["epoch"] == list(range(1, 51))
    assert first["next_cursor"]
    assert "more follow: --start 51" in invoke(url, "epochs", job_id).stdout


def test_epochs_unknown_field_is_one_line(url: str, job_id: str) -> None:
    line = error_line(invoke(url, "epochs", job_id, "--fields", "loss,speed"))
    assert line.startswith("error: HTTP 422: query.fields: unknown field(s) speed")


def test_trajectory_equals_the_snapshots(url: str, job_id: str) -> None:
    result = invoke(url, "trajectory", job_id, "--layer", "1", "--weight", "0", "1", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["name"] == "w^1_{0,1}"
    assert found["epochs"] == list(range(0, 201, 20))
    for epoch, value in zip(found["epochs"], found["values"], strict=True):
        snapshot = HTTP.get(f"{url}/v1/jobs/{job_id}/snapshots/{epoch}").json()
        assert snapshot["layers"][0]["weights"][0][1] == value


def test_trajectory_table_and_sparkline(url: str, job_id: str) -> None:
    result = invoke(url, "trajectory", job_id[:8], "--layer", "2", "--bias", "0")
    assert result.exit_code == 0, result.output
    assert "b^2_{0} at 11 snapshot epochs" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"^\s*\d+\s", line)]
    assert [int(r[0]) for r in rows] == list(range(0, 201, 20))
    assert "(linear scale)" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--layer", "1", "--weight", "4", "0"], "HTTP 422: query.k: k must be 0..3 (n_1 = 4)"),
        (["--layer", "3", "--bias", "0"], "HTTP 422: query.layer: layer must be 1..2, got 3"),
        (["--layer", "1"], "give one parameter: --weight K J (w^l_kj) or --bias K (b^l_k)"),
    ],
)
def test_trajectory_out_of_range_prints_the_message(
    url: str, job_id: str, args: list[str], expected: str
) -> None:
    assert expected in error_line(invoke(url, "trajectory", job_id, *args))


def test_export_writes_the_latest_snapshot(url: str, job_id: str, tmp_path: Path) -> None:
    target = tmp_path / "x.npz"
    result = invoke(url, "export", job_id, "--epoch", "latest", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert str(target) in result.stdout
    latest = HTTP.get(f"{url}/v1/jobs/{job_id}/snapshots/latest").json()
    assert latest["epoch"] == 200
    with np.load(target, allow_pickle=False) as npz:
        assert sorted(npz) == ["W1", "W2", "b1", "b2"]
        for layer in latest["layers"]:
            l = layer["layer"]
            np.testing.assert_array_equal(npz[f"W{l}"], np.array(layer["weights"]))
            np.testing.assert_array_equal(npz[f"b{l}"], np.array(layer["biases"]))
    for key in ("W1", "b1", "W2", "b2"):
        assert key in result.stdout


def test_export_json_of_an_epoch(url: str, job_id: str, tmp_path: Path) -> None:
    target = tmp_path / "e20.npz"
    result = invoke(url, "export", job_id, "--epoch", "20", "-o", str(target), "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["path"] == str(target)
    assert listed["arrays"]["W1"] == {"shape": [4, 2], "dtype": "float64"}
    snapshot = HTTP.get(f"{url}/v1/jobs/{job_id}/snapshots/20").json()
    with np.load(target, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["W1"], np.array(snapshot["layers"][0]["weights"]))


def test_export_onnx_writes_the_network_at_an_epoch(url: str, job_id: str, tmp_path: Path):
    target = tmp_path / "e20.onnx"
    result = invoke(url, "export", job_id, "--epoch", "20", "--format", "onnx", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stdout
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    session = ort.InferenceSession(target.read_bytes(), providers=["CPUExecutionProvider"])
    (got,) = session.run(["a_L"], {"x": x})
    want = HTTP.post(f"{url}/v1/jobs/{job_id}/predict", json={"x": x.tolist(), "epoch": 20})
    np.testing.assert_allclose(got, want.json()["outputs"], rtol=1e-12, atol=1e-12)


def test_export_names_the_formats_it_writes(url: str, job_id: str, tmp_path: Path) -> None:
    result = invoke(url, "export", job_id, "--format", "pt", "-o", str(tmp_path / "m.pt"))
    assert "--format must be npz or onnx, not 'pt'" in error_line(result)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        ("7", "HTTP 404: job {id} has no snapshot at epoch 7"),
        ("last", "--epoch must be a snapshot epoch (0, 1, …) or latest, not 'last'"),
    ],
)
def test_export_of_a_missing_epoch_is_one_line(
    url: str, job_id: str, tmp_path: Path, epoch: str, expected: str
) -> None:
    target = tmp_path / "none.npz"
    result = invoke(url, "export", job_id, "--epoch", epoch, "-o", str(target))
    assert expected.format(id=job_id) in error_line(result)
    assert not target.exists()


def test_sweep_with_a_scheduler_prints_the_ladder_and_leaderboard(url: str, tmp_path: Path):
    body = XOR_JOB | {
        "name": "asha xor",
        "epochs": 27,
        "snapshot_every": 1000,
        "space": {"optimizer.learning_rate": {"loguniform": [0.05, 5.0]}},
        "num_samples": 9,
        "seed": 4,
    }
    result = invoke(url, "sweep", write(tmp_path, body), "--scheduler", "sha")  # η = 4
    assert result.exit_code == 0, result.output
    batch_id = UUID.search(result.stdout.splitlines()[0]).group()
    batch = HTTP.get(f"{url}/v1/batches/{batch_id}").json()
    assert batch["epochs_trained"] == 9 * 1 + 3 * 3 + 1 * 12 + 1 * 11  # rungs 1, 4 and 16
    assert "sha on loss: 41 epochs trained" in result.stdout
    ladder = [line.split() for line in result.stdout.splitlines() if re.match(r"\s*0\s+\d", line)]
    assert [row[2:7] for row in ladder[:2]] == [
        ["1", "9", "0", "0", "3"],
        ["4", "3", "0", "0", "1"],
    ]
    best = batch["leaderboard"][0]
    assert best["status"] == "succeeded" and best["job_id"][:8] in result.stdout
    assert "best loss first" in result.stdout
