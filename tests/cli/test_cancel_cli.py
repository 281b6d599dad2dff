"""`deltaflow cancel` against one real service (api, one worker, reaper as processes)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.factories import HTTP

# tests/cli/conftest.py's service is shared by this module and others: one xdist worker runs them.
pytestmark = pytest.mark.xdist_group("cli-service")

LONG_SPEC = {
    "name": "long xor",
    "network": {"layers": [2, 4, 1]},
    "optimizer": {"learning_rate": 2.0},
    "epochs": 1_000_000,  # DELTAFLOW_MAX_EPOCHS; cancelled long before
    "snapshot_every": 100_000,
    "dataset": {"builtin": "xor"},
}
runner = CliRunner()


def _submit(url: str) -> str:
    r = HTTP.post(f"{url}/v1/jobs", json=LONG_SPEC, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _job(url: str, job_id: str) -> dict:
    return HTTP.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()


def _wait_until_training(url: str, job_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _job(url, job_id)["epochs_done"] > 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not start training within {timeout} s")


@pytest.fixture(scope="module")
def running_id(url: str) -> Iterator[str]:
    """A long job the only worker is training, so jobs submitted after it stay queued; it is
    cancelled at the end whatever happened, since the service is shared with other modules."""
    job_id = _submit(url)
    try:
        _wait_until_training(url, job_id)
        yield job_id
    finally:
        HTTP.post(f"{url}/v1/jobs/{job_id}/cancel", timeout=10)  # 409 once it has ended


def test_cancel_of_a_queued_job(url: str, running_id: str) -> None:
    queued = _submit(url)
    assert _job(url, queued)["status"] == "queued"
    result = runner.invoke(app, ["cancel", queued, "--wait", "--url", url])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "cancelled"
    assert f"job {queued} cancelled at epoch 0/1000000" in result.stdout
    assert _job(url, queued)["status"] == "cancelled"


def test_cancel_wait_stops_a_running_job_then_cancel_fails(url: str, running_id: str) -> None:
    """Runs after the queued-job test, which needs the worker still busy with this job."""
    result = runner.invoke(app, ["cancel", running_id[:8], "--wait", "--url", url])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "cancel requested; the job stops at its next flush"
    job = _job(url, running_id)
    assert job["status"] == "cancelled"
    assert 0 < job["epochs_done"] < job["epochs_total"]
    assert f"job {running_id} cancelled at epoch {job['epochs_done']}/" in result.stdout

    again = runner.invoke(app, ["cancel", running_id, "--url", url])
    assert again.exit_code == 1
    assert again.output.strip() == (
        f"error: HTTP 409: job {running_id} has already ended (cancelled)"
    )


def test_cancel_of_an_unknown_job(url: str) -> None:
    result = runner.invoke(app, ["cancel", "00000000-0000-0000-0000-000000000000", "--url", url])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: HTTP 404: job 00000000-0000-0000-0000-000000000000 not found"
    )
