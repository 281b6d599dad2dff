"""Forking from the job page in a real browser: the fork button at the slider's epoch with an
override, the new job's page, its lineage links both ways, and its loss chart drawing the
parent's epochs apart and marking the fork epoch — checked against what the API answers."""

from __future__ import annotations

import pytest

from tests.browser.conftest import shoot, submit
from tests.factories import HTTP, XOR_JOB, finished, wait_for

pytestmark = pytest.mark.xdist_group("browser-fork")

PARENT = XOR_JOB | {"name": "xor parent", "epochs": 600, "snapshot_every": 50}


@pytest.fixture(scope="module")
def parent(url: str) -> str:
    job_id = submit(url, PARENT)
    assert wait_for(url, job_id, finished)["status"] == "succeeded"
    return job_id


def test_fork_from_the_slider_with_an_override(page, url: str, parent: str) -> None:
    page.goto(f"{url}/#/jobs/{parent}")
    page.wait_for_selector("#heatmap[data-epoch='600']")
    page.focus("#snapshot-slider")
    for _ in range(6):  # 600 → 300, a snapshot every 50
        page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#heatmap[data-epoch='300']")
    page.click("#fork-open")
    assert page.inner_text("#fork-epoch") == "300"
    page.fill("#fork-overrides", "optimizer.learning_rate=0.5\nepochs=900")
    page.fill("#fork-name", "xor slower")
    page.click("#fork-submit")
    page.wait_for_function("(old) => !location.hash.includes(old)", arg=parent)
    fork_id = page.evaluate("() => location.hash.split('/').pop()")

    job = wait_for(url, fork_id, finished)
    assert (job["parent_id"], job["forked_at_epoch"], job["name"]) == (parent, 300, "xor slower")
    assert job["status"] == "succeeded" and job["epochs_done"] == 900
    page.reload()
    page.wait_for_selector("#job-lineage a")
    assert page.get_attribute("#job-lineage a", "href") == f"#/jobs/{parent}"
    assert "at epoch 300" in page.inner_text("#job-lineage")

    page.wait_for_function(
        "() => { const el = document.getElementById('chart-loss');"
        " return el && el.uplot && el.dataset.lastX === '900'; }"
    )
    held = page.eval_on_selector(
        "#chart-loss",
        "el => ({data: el.uplot.data.map((c) => Array.from(c)),"
        " labels: el.uplot.series.map((s) => s.label), marks: el.dataset.marks})",
    )
    assert held["marks"] == "300"
    assert held["labels"][1:] == ["training loss, parent's (≤ 300)", "training loss"]
    epochs, prefix, own = held["data"]
    losses = HTTP.get(f"{url}/v1/jobs/{fork_id}/epochs", params={
        "format": "columns", "limit": 1000, "fields": "loss"}).json()["columns"]  # fmt: skip
    assert epochs == losses["epoch"] == list(range(1, 901))
    assert [v for e, v in zip(epochs, prefix, strict=True) if e <= 300] == losses["loss"][:300]
    assert all(v is None for e, v in zip(epochs, prefix, strict=True) if e > 300)
    assert [v for e, v in zip(epochs, own, strict=True) if e >= 300] == losses["loss"][299:]
    parents = HTTP.get(f"{url}/v1/jobs/{parent}/epochs", params={
        "format": "columns", "limit": 1000, "fields": "loss"}).json()["columns"]  # fmt: skip
    assert losses["loss"][:300] == parents["loss"][:300]
    shoot(page, "job-fork", until=".grid")

    page.goto(f"{url}/#/jobs/{parent}")
    page.wait_for_selector(f"#job-lineage a[href='#/jobs/{fork_id}']")
    assert "forks:" in page.inner_text("#job-lineage")


def test_a_refused_fork_shows_the_apis_sentence(page, url: str, parent: str) -> None:
    page.goto(f"{url}/#/jobs/{parent}")
    page.wait_for_selector("#heatmap[data-epoch='600']")
    page.click("#fork-open")
    page.fill("#fork-overrides", "network.layers=[2, 8, 1]")
    page.click("#fork-submit")
    page.wait_for_selector("#fork-message .error")
    assert "cannot change network" in page.inner_text("#fork-message")
    page.fill("#fork-overrides", "learning rate is 0.5")
    page.click("#fork-submit")
    page.wait_for_function(
        "() => document.getElementById('fork-message').innerText.includes('PATH=VALUE')"
    )
    assert page.evaluate("() => location.hash") == f"#/jobs/{parent}"
