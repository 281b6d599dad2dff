"""A scheduled batch's page in a real browser: the rung ladder, the scheduler's settings, the
trials with their latest decisions, and PBT's clones, checked against what the API answers."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import shoot
from tests.factories import HTTP, XOR_JOB

pytestmark = pytest.mark.xdist_group("browser-ladder")

BASE = XOR_JOB | {"epochs": 27, "snapshot_every": 1000}
SPACE = {"optimizer.learning_rate": {"loguniform": [0.05, 5.0]}}
ASHA = {"name": "asha", "reduction_factor": 3}
PBT = {"name": "pbt", "perturbation_interval": 9, "quantile_fraction": 0.5}


def batch(url: str, batch_id: str) -> dict:
    r = HTTP.get(f"{url}/v1/batches/{batch_id}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def finished_batch(url: str, scheduler: dict, num_samples: int, timeout: float = 120.0) -> dict:
    """A batch of `num_samples` draws of SPACE under `scheduler`, as the API shows it once every
    one of its jobs has ended."""
    body = {"name": f"tune {scheduler['name']}", "base": BASE, "space": SPACE,
            "num_samples": num_samples, "seed": 3, "scheduler": scheduler}  # fmt: skip
    r = HTTP.post(f"{url}/v1/batches", json=body, timeout=10)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + timeout
    while True:
        shown = batch(url, r.json()["id"])
        if shown["total"] and shown["done"] == shown["total"]:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"batch did not finish within {timeout} s: {shown['counts']}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def asha(url: str) -> dict:
    return finished_batch(url, ASHA, 9)


@pytest.fixture(scope="module")
def pbt(url: str) -> dict:
    return finished_batch(url, PBT, 4)


def ladder_rows(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#ladder tbody tr",
        "rows => rows.map((tr) => Object.fromEntries([...tr.querySelectorAll('td.num')]"
        ".map((td) => [td.classList[1], Number(td.textContent)])))",
    )


def test_the_asha_ladder_and_trials(page, url: str, asha: dict) -> None:
    page.goto(f"{url}/#/batches/{asha['id']}")
    page.wait_for_selector("#ladder tbody tr")
    columns = ["bracket", "rung", "epoch", "reached", "heading", "paused", "promoted", "stopped"]
    assert [r["epoch"] for r in asha["rungs"]] == [1, 3, 9]
    assert ladder_rows(page) == [{k: r[k] for k in columns} for r in asha["rungs"]]
    assert asha["rungs"][0]["reached"] == 9
    bars = page.locator("#ladder .ladder-bar")
    assert bars.count() == 3
    assert bars.first.locator(".seg-promoted").get_attribute("title") == (
        f"{asha['rungs'][0]['promoted']} promoted"
    )

    facts = page.inner_text("#batch-scheduler")
    assert "asha" in facts and "loss" in facts and "min (default)" in facts
    trained = page.inner_text("#batch-scheduler [data-fact='epochs trained'] dd")
    assert trained == str(asha["epochs_trained"])

    trials = page.locator("#trials tbody tr")
    assert trials.count() == len(asha["trials"]) == 9
    for i, trial in enumerate(asha["trials"]):
        row = trials.nth(i)
        assert row.get_attribute("data-job-id") == trial["job_id"]
        assert row.locator("a").first.get_attribute("href") == f"#/jobs/{trial['job_id']}"
        assert row.locator(".status").inner_text() == trial["status"]
        decision = row.locator("td.decision").inner_text()
        assert decision.startswith(f"{trial['decision']['action']} at epoch")
        if trial["decision"]["action"] == "stopped":
            assert trial["decision"]["detail"]["reason"] in decision
    assert page.locator("#trials .status-stopped").count() == asha["counts"]["stopped"]

    board = page.locator("#leaderboard tbody tr")
    assert [board.nth(i).get_attribute("data-job-id") for i in range(board.count())] == [
        r["job_id"] for r in asha["leaderboard"]
    ]
    assert "value (loss)" in page.inner_text("#leaderboard thead")
    assert page.locator("#clones").count() == 0  # not PBT
    shoot(page, "batch-ladder")

    page.locator("#trials tbody tr a").first.click()
    page.wait_for_url(f"**/#/jobs/{asha['trials'][0]['job_id']}")


def test_the_pbt_clones(page, url: str, pbt: dict) -> None:
    page.goto(f"{url}/#/batches/{pbt['id']}")
    page.wait_for_selector("#ladder tbody tr")
    assert [r["epoch"] for r in ladder_rows(page)] == [r["epoch"] for r in pbt["rungs"]] == [9, 18]
    assert page.locator("#trials tbody tr").count() == len(pbt["trials"])

    cloned = [d for d in pbt["decisions"] if d["action"] == "cloned"]
    assert cloned
    clones = page.locator("#clones li")
    assert clones.count() == len(cloned)
    for i, d in enumerate(cloned):
        item = clones.nth(i)
        text = item.inner_text()
        source = d["detail"]["source_trial"]
        assert text.startswith(f"trial {d['trial']} cloned trial {source} at epoch {d['epoch']}:")
        assert "optimizer.learning_rate" in text
        links = item.locator("a")
        assert links.nth(0).get_attribute("href") == f"#/jobs/{d['job_id']}"
        assert links.nth(1).get_attribute("href") == f"#/jobs/{d['detail']['source']}"
    shoot(page, "batch-pbt")
