"""The job page's health panel and the compare page in a real browser against a real service:
what the charts and tables hold is checked against what the API answers, including a batch of
200 jobs of 10,000 epochs each."""

from __future__ import annotations

import pytest

from tests.browser.conftest import SCREENSHOTS, shoot, submit
from tests.factories import (
    HTTP,
    XOR_JOB,
    dying_job,
    finished_batch,
    running,
    sqlite_stack,
    wait_for,
)

pytestmark = pytest.mark.xdist_group("browser-health")

MANY, EPOCHS = 200, 10_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    with running(sqlite_stack(tmp_path_factory.mktemp("health"))) as found:
        yield found


@pytest.fixture(scope="module")
def url(stack) -> str:
    return stack.url


@pytest.fixture(scope="module")
def stopped(url: str) -> dict:
    job = wait_for(url, submit(url, dying_job()[0]), timeout=60)
    assert job["status"] == "stopped", job
    return job


@pytest.fixture(scope="module")
def pair(url: str) -> list[str]:
    ids = [submit(url, XOR_JOB | {"name": f"xor {lr}", "optimizer": {"learning_rate": lr}})
           for lr in (0.5, 2.0)]  # fmt: skip
    for job_id in ids:
        assert wait_for(url, job_id, timeout=60)["status"] == "succeeded"
    return ids


@pytest.fixture(scope="module")
def many(stack) -> str:
    """A batch of 200 finished jobs of 10,000 epochs each; its id."""
    return finished_batch(stack.env["DELTAFLOW_DATABASE_URL"], MANY, EPOCHS)


def test_the_health_panel_shows_the_alerts_and_the_update_ratio(page, url, stopped) -> None:
    page.goto(f"{url}/#/jobs/{stopped['id']}")
    ratio = page.locator("#chart-update-ratio[data-points]")
    ratio.wait_for()
    assert ratio.get_attribute("data-points") == str(stopped["epochs_done"])
    assert ratio.get_attribute("data-guides") == "0.001"
    alerts = page.locator("#health-alerts li")
    assert alerts.all_inner_texts() == [
        f"{'active' if a['active'] else 'ended'} {a['message']}" for a in stopped["health"]
    ]
    units = page.locator("#chart-units[data-points]")
    assert units.get_attribute("data-points") == str(stopped["epochs_done"])
    alerts.first.locator("a").click()
    page.wait_for_url(f"**/#/jobs/{stopped['id']}/epochs/{stopped['health'][0]['since']}")
    marked = page.locator(f"#chart-update-ratio[data-marks='{stopped['health'][0]['since']}']")
    marked.wait_for()


def test_a_longer_run_draws_the_1e_3_guide_and_its_alerts(page, url) -> None:
    """300 epochs of the dying network at a gentler step, with stricter thresholds: the update
    ratio falls towards 1e-3, a sixth of layer 1 dies, and both rules fire."""
    body = dying_job()[0] | {
        "name": "gentler", "epochs": 300, "stop_when": [],
        "optimizer": {"name": "adam", "learning_rate": 0.003},
        "health": {"dead_units": 0.1, "update_ratio": {"high": 0.01, "epochs": 5}},
    }  # fmt: skip
    job = wait_for(url, submit(url, body), timeout=60)
    assert {a["rule"] for a in job["health"]} == {"dead_units", "update_ratio"}
    page.goto(f"{url}/#/jobs/{job['id']}")
    page.locator("#chart-update-ratio[data-points='300']").wait_for()
    texts = page.locator("#health-alerts li").all_inner_texts()
    assert [t.split(" ", 1)[1].split(" (until")[0] for t in texts] == [
        a["message"] for a in job["health"]
    ]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#health").screenshot(path=str(SCREENSHOTS / "health.png"))


def test_jobs_ticked_in_the_table_open_on_the_compare_page(page, url, pair) -> None:
    page.goto(f"{url}/#/jobs")
    for job_id in pair:
        page.locator(f"tr[data-job-id='{job_id}'] input.pick").check()
    page.locator("#compare-selected").click()
    chart = page.locator("#chart-compare[data-lines='2']")
    chart.wait_for()
    found = HTTP.get(f"{url}/v1/compare", params={"job_id": pair, "points": 500}).json()
    assert chart.get_attribute("data-points") == str(sum(len(j["epoch"]) for j in found["jobs"]))
    for job in found["jobs"]:
        row = page.locator(f"#compare-table tr[data-job-id='{job['id']}']")
        shown_rate = float(row.locator("td").nth(3).inner_text())
        assert shown_rate == job["hyperparameters"]["optimizer.learning_rate"]
        shown = row.locator("td[data-summary='min']").inner_text()
        assert float(shown) == pytest.approx(job["summary"]["min"], rel=1e-3)
    page.select_option("#compare-field", "update_ratio_weights_1")
    page.locator("#compare-field").wait_for()
    page.wait_for_url("**field=update_ratio_weights_1**")
    shoot(page, "compare")


def test_a_batch_of_200_long_jobs_stays_drawable(page, url, many) -> None:
    page.goto(f"{url}/#/batches/{many}")
    page.locator("#compare-batch").click()
    chart = page.locator(f"#chart-compare[data-lines='{MANY}']")
    chart.wait_for(timeout=60_000)
    points = int(chart.get_attribute("data-points"))
    assert MANY * 4 <= points <= MANY * 500  # thinned by the API: at most 500 of 10,000 each
    assert page.locator("#compare-table tbody tr").count() == MANY
    assert page.locator("#parallel-svg path").count() == MANY
    assert (
        "at most 500 of its epochs (of up to 10000)" in page.locator("#compare-note").inner_text()
    )
    page.select_option("#compare-summary", "min")
    page.locator("#compare-table td.chosen[data-summary='min']").first.wait_for()
    page.locator("#chart-compare").locator("xpath=..").screenshot(
        path=str(SCREENSHOTS / "compare-batch.png"))  # fmt: skip
    page.locator("#compare-parallel").screenshot(path=str(SCREENSHOTS / "compare-parallel.png"))
