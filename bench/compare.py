"""The compare page with a batch of 200 jobs of 10,000 epochs each: the API's answer and the
page in Chromium.

    python bench/compare.py [--runs 5]

The jobs' epochs are written into a running service's SQLite database as a worker writes them
(training 200 jobs would take minutes). Timed, median of `--runs`: GET /v1/compare?batch=…
with each line thinned to 500 epochs (the page's) against 5,000 (the most the API gives, the
baseline: what drawing ten times more of each line would cost the server); the page from
navigation to its 200 lines drawn; and a change of the summary (a new read and redraw).
Needs Debian's Chromium (/usr/bin/chromium) and Playwright, as tests/browser does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.export import median
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.factories import finished_batch, running, sqlite_stack

MANY, EPOCHS = 200, 10_000


def page_times(url: str, batch: str, runs: int) -> tuple[float, float]:
    """(navigation to 200 lines drawn, a summary change), medians."""
    loads, switches = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for i in range(runs + 1):  # the first is a warm-up
            page.goto(f"{url}/#/jobs")
            page.wait_for_selector("#jobs-table")
            started = time.perf_counter()
            page.goto(f"{url}/#/compare?batch={batch}")
            page.wait_for_selector(f"#chart-compare[data-lines='{MANY}']", timeout=60_000)
            loaded = time.perf_counter()
            summary = "min" if i % 2 else "max"
            page.select_option("#compare-summary", summary)
            page.wait_for_selector(f"#compare-table td.chosen[data-summary='{summary}']")
            if i:
                loads.append(loaded - started)
                switches.append(time.perf_counter() - loaded)
        browser.close()
    return statistics.median(loads), statistics.median(switches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running(sqlite_stack(Path(tmp))) as stack:
        batch = finished_batch(stack.env["DELTAFLOW_DATABASE_URL"], MANY, EPOCHS)
        with httpx.Client(base_url=stack.url, timeout=120) as http:

            def read(points: int) -> Callable[[], object]:
                query = {"batch": batch, "points": points}
                return lambda: http.get("/v1/compare", params=query).raise_for_status()

            thin, wide = median(read(500), args.runs), median(read(5000), args.runs)
        load, switch = page_times(stack.url, batch, args.runs)
    print(f"\n| {MANY} jobs × {EPOCHS:,} epochs (median of {args.runs}) | time | baseline |")
    print("|---|---|---|")
    print(f"| GET /v1/compare, ≤ 500 points a line | {thin * 1e3:.0f} ms | {wide * 1e3:.0f} ms at "
          f"≤ 5,000 ({wide / thin:.1f}×) |")  # fmt: skip
    print(f"| the page: navigation to {MANY} lines drawn | {load * 1e3:.0f} ms | — |")
    print(f"| the page: a summary change, read and redrawn | {switch * 1e3:.0f} ms | — |")


if __name__ == "__main__":
    main()
