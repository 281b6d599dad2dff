"""DELTAFLOW_LOG_FORMAT=json with real processes: every line of the API, the reaper and a
Celery worker is one JSON object, the worker's lines about a job carry its id and attempt, and
/metrics, scraped from the API, counts what the worker and the reaper did."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid

from prometheus_client.parser import text_string_to_metric_families

from cli.services import Stack, free_port, worker_command
from models.db import make_engine, session_factory
from tests.factories import HTTP, XOR_JOB, stored_epochs, wait_for


def json_lines(path) -> list[dict]:
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all(isinstance(r, dict) and {"time", "level", "message"} <= r.keys() for r in records)
    return records


def _second_delivery(message: str) -> bool:
    return "nothing to claim" in message or message.endswith("'not claimed'")


def scrape(url: str) -> dict[str, float]:
    text = HTTP.get(f"{url}/metrics").text
    return {
        s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for_metrics(url: str, want, timeout: float = 30) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = scrape(url)
        if want(m):
            return m
        time.sleep(0.2)
    raise AssertionError(f"/metrics never showed what was expected: {m}")


def test_json_logs_carry_the_job_and_metrics_count_the_work(tmp_path):
    env = {
        "DELTAFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/deltaflow.db",
        "DELTAFLOW_LOG_FORMAT": "json",
        "DELTAFLOW_FLUSH_INTERVAL": "0.1",
        "DELTAFLOW_REAPER_INTERVAL": "0.5",
        "DELTAFLOW_LEASE_TTL": "8",
    }
    stack = Stack(port=free_port(), workers=0, env=env, log_dir=tmp_path / "logs")
    stack.start()
    stderr = tmp_path / "worker.stderr"
    with stderr.open("wb") as err:  # stdout holds Celery's banner, which is not a log line
        worker = subprocess.Popen(
            worker_command("json-logs"), env=stack.env, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        job_id = HTTP.post(f"{stack.url}/v1/jobs", json=XOR_JOB).json()["id"]
        assert wait_for(stack.url, job_id, timeout=90)["status"] == "succeeded"
        m = wait_for_metrics(
            stack.url,
            lambda m: (
                m["deltaflow_flush_duration_seconds_count"] >= 1
                and m["deltaflow_workers"] == 1
                and m["deltaflow_reapers"] == 1
            ),
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        stack.stop()

    engine = make_engine(env["DELTAFLOW_DATABASE_URL"])
    with session_factory(engine)() as s:
        epochs = len(stored_epochs(s, uuid.UUID(job_id)))
    engine.dispose()
    assert m["deltaflow_epochs_trained_total"] == epochs == XOR_JOB["epochs"]
    assert m["deltaflow_jobs|status=succeeded"] == 1

    records = json_lines(stderr)
    about_job = [r for r in records if r.get("job_id") == job_id]
    # A second delivery (the reaper republishes a job that waited long on a loaded machine)
    # claims nothing, so its lines (the runner's, and Celery's that the task returned 'not
    # claimed') carry the job but no attempt.
    claimed_lines = [r for r in about_job if not _second_delivery(r["message"])]
    assert claimed_lines and all(r["attempt"] == 1 for r in claimed_lines), about_job
    claimed = next(i for i, r in enumerate(records) if "attempt 1 claimed" in r["message"])
    done = next(i for i, r in enumerate(records) if "succeeded in" in r["message"])
    pool = records[claimed]["pid"]
    # Everything the pool process wrote while it ran the job, Celery's last line included.
    during = [r for r in records[claimed : done + 1] if r["pid"] == pool]
    assert len(during) >= 3 and all(r.get("job_id") == job_id for r in during), during
    assert all("job_id" not in r for r in records if r["pid"] != pool)  # the main process
    for name in ("api", "reaper"):
        assert json_lines(tmp_path / "logs" / f"{name}.log"), name
