"""The dashboard on a service that requires API keys (DELTAFLOW_AUTH=required): the page itself
loads without a key, asks for one when the API answers 401, and sends it on every request —
the events stream included, which EventSource could not do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.conftest import submit
from tests.browser.test_dashboard import LONG, XOR
from tests.factories import HTTP, finished, running, sqlite_stack, wait_for

# One xdist worker runs the module, so its service starts once.
pytestmark = pytest.mark.xdist_group("browser-auth")

KEY = "dashboard-test-bootstrap-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("browser-auth")
    with running(sqlite_stack(tmp, DELTAFLOW_AUTH="required", DELTAFLOW_BOOTSTRAP_KEY=KEY)) as s:
        yield s.url


def test_the_page_needs_no_key_but_the_api_does(url: str) -> None:
    assert HTTP.get(f"{url}/", timeout=10).status_code == 200
    assert HTTP.get(f"{url}/static/js/api.js", timeout=10).status_code == 200
    assert HTTP.get(f"{url}/v1/jobs", timeout=10).status_code == 401


def test_key_field_on_401_then_every_request_carries_the_key(page, url: str) -> None:
    job_id = submit(url, XOR | {"epochs": 300}, **AUTH)
    assert wait_for(url, job_id, finished, **AUTH)["status"] == "succeeded"

    page.goto(f"{url}/")
    page.wait_for_selector("#key-form:not([hidden])")
    assert page.inner_text("#key-message") == "this server needs a key"
    page.fill("#key-input", "not-a-key")
    page.click("#key-form button")
    page.wait_for_selector("#key-form:not([hidden])")
    assert page.inner_text("#key-message").startswith("this key was refused")

    page.fill("#key-input", KEY)
    page.click("#key-form button")
    page.wait_for_selector(f'tr[data-job-id="{job_id}"] td.spark canvas')
    assert page.is_hidden("#key-form") and page.is_visible("#key-forget")
    assert page.evaluate("localStorage.getItem('deltaflow.key')") == KEY

    page.click(f'tr[data-job-id="{job_id}"] a')
    page.wait_for_selector("#chart-loss[data-points='300']")
    page.wait_for_selector("#heatmap[data-epoch='300']")


def test_live_chart_through_the_keyed_event_stream(page, url: str) -> None:
    job_id = submit(url, LONG, **AUTH)
    wait_for(url, job_id, lambda job: job["epochs_done"] > 0, **AUTH)
    page.goto(f"{url}/")
    page.evaluate(f"localStorage.setItem('deltaflow.key', '{KEY}')")
    page.goto(f"{url}/#/jobs/{job_id}")
    page.wait_for_function("() => Number(document.getElementById('chart-loss')?.dataset.lastX) > 0")
    page.route("**/epochs?*", lambda route: route.abort())  # only the stream brings epochs now
    before = int(page.get_attribute("#chart-loss", "data-last-x"))
    page.wait_for_function(
        f"() => Number(document.getElementById('chart-loss').dataset.lastX) > {before + 1000}"
    )
    page.unroute("**/epochs?*")
    page.click("#cancel")
    page.wait_for_selector("h1 .status-cancelled", timeout=30_000)
    assert wait_for(url, job_id, finished, **AUTH)["status"] == "cancelled"
