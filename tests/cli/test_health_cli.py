"""`deltaflow health` and `deltaflow compare` against one real service (api, worker, reaper as
processes): what they print is what the API answers."""

from __future__ import annotations

import json

import pytest

from tests.cli.helpers import error_line, invoke
from tests.factories import HTTP, XOR_JOB, dying_job, wait_for

pytestmark = pytest.mark.xdist_group("cli-service")


@pytest.fixture(scope="module")
def stopped(url: str) -> dict:
    """A job stop_when ended at epoch 2 (dead ReLU units in layers 1 and 2)."""
    job = HTTP.post(f"{url}/v1/jobs", json=dying_job()[0]).json()
    return wait_for(url, job["id"], timeout=60)


@pytest.fixture(scope="module")
def two(url: str) -> list[dict]:
    jobs = [HTTP.post(f"{url}/v1/jobs", json=XOR_JOB | {"optimizer": {"learning_rate": lr}})
            .json() for lr in (0.5, 2.0)]  # fmt: skip
    return [wait_for(url, job["id"], timeout=60) for job in jobs]


def test_health_lists_the_alerts_and_each_layers_figures(url: str, stopped: dict) -> None:
    assert stopped["status"] == "stopped"
    result = invoke(url, "health", stopped["id"][:8])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for alert in stopped["health"]:
        assert alert["message"] in out
    assert "dead_units" in out and "active" in out
    dead = HTTP.get(f"{url}/v1/jobs/{stopped['id']}/epochs",
                    params={"format": "columns", "fields": "dead_fraction"}).json()  # fmt: skip
    share = dead["columns"]["dead_fraction"][-1][0]
    assert f"{share:.0%}" in out  # layer 1's dead share at the last epoch
    assert "epoch 2, per layer" in out


def test_health_of_a_healthy_job_says_so(url: str, two: list[dict]) -> None:
    result = invoke(url, "health", two[1]["id"])
    assert result.exit_code == 0, result.output
    assert f"no health alert in {two[1]['epochs_done']} epochs" in result.stdout


def test_compare_shows_what_differs_and_each_summary(url: str, two: list[dict]) -> None:
    ids = [job["id"] for job in two]
    found = HTTP.get(f"{url}/v1/compare", params={"job_id": ids, "at": 10}).json()
    result = invoke(url, "compare", *ids, "--at", "10")
    assert result.exit_code == 0, result.output
    assert "optimize" in result.stdout and "at 10" in result.stdout  # the key, folded
    for job in found["jobs"]:
        line = next(row for row in result.stdout.splitlines() if job["id"][:8] in row)
        for value in job["summary"].values():
            assert f"{value:.6g}" in line
    as_json = json.loads(invoke(url, "compare", *ids, "--json", "--field", "accuracy").stdout)
    assert as_json["field"] == "accuracy" and len(as_json["jobs"]) == 2


def test_compare_of_an_unknown_field_prints_the_api_sentence(url: str, two: list[dict]) -> None:
    line = error_line(invoke(url, "compare", two[0]["id"], "--field", "los"))
    assert "'los' is not an epoch field" in line
