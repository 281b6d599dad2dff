"""A real service (uvicorn, a Celery worker, the reaper) and Debian's Chromium, headless, driven
by Playwright. Playwright never downloads a browser here: it launches /usr/bin/chromium.

Without Chromium these tests skip, unless DELTAFLOW_REQUIRE_SERVICES=1 (CI), where they fail.
Screenshots go to var/screenshots/ (kept by CI as artefacts); `make screenshots` copies the
README's into docs/screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import HTTP, REQUIRED, running, sqlite_stack

CHROMIUM = Path(os.environ.get("DELTAFLOW_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real service (api, worker, reaper as processes) for one test module."""
    with running(sqlite_stack(tmp_path_factory.mktemp("browser"))) as stack:
        yield stack.url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if REQUIRED:
            pytest.fail(f"{message}; it is required (DELTAFLOW_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed  # read by `page` to keep a screenshot of a failure
    return report


@pytest.fixture
def page(browser, request):
    """A fresh page (its own storage) that fails the test on any uncaught script error, and
    leaves a screenshot in var/screenshots/ when its test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    if getattr(request.node, "call_failed", False):
        shoot(page, f"failed-{request.node.name}")
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def shoot(page, name: str, until: str | None = None) -> Path:
    """var/screenshots/<name>.png: the whole page, or its top down to the element `until`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("document.activeElement && document.activeElement.blur()")  # no focus ring
    clip = None
    if until is not None:
        box = page.locator(until).bounding_box()
        width = page.viewport_size["width"]
        clip = {"x": 0, "y": 0, "width": width, "height": box["y"] + box["height"] + 16}
    page.screenshot(path=str(path), full_page=True, clip=clip)
    return path


def submit(url: str, body: dict, **headers: str) -> str:
    r = HTTP.post(f"{url}/v1/jobs", json=body, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"]
