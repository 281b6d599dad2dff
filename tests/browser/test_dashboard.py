"""The dashboard in a real browser against a real service: what the charts hold is checked
against what the API answers, not just that the elements exist."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.browser.conftest import shoot, submit
from tests.factories import HTTP, XOR_JOB, finished, wait_for

# One xdist worker runs the module, so its service starts once.
pytestmark = pytest.mark.xdist_group("browser-dashboard")

XOR = XOR_JOB | {"epochs": 1500}
MOONS = {
    "name": "moons",
    "network": {"layers": [2, 8, 8, 2], "activation": "tanh", "output_activation": "softmax"},
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 400,
    "snapshot_every": 10,
    "validation_split": 0.2,
    "dataset": {"builtin": "moons", "n": 400, "noise": 0.2},
}
DIVERGING = {
    "name": "diverging",
    "network": {"layers": [1, 8, 1], "activation": "relu", "output_activation": "identity"},
    "optimizer": {"learning_rate": 50.0},
    "epochs": 200,
    "dataset": {"builtin": "sine"},
}
LONG = XOR | {"name": "xor long", "epochs": 1_000_000, "snapshot_every": 10_000}
BATCH = {
    "name": "xor rates",
    "base": XOR | {"epochs": 600},
    "grid": {"optimizer.learning_rate": [0.5, 1.0, 2.0, 4.0]},
}
BLUE = (37, 99, 235)  # the first series' colour (charts.js PALETTE[0])


@pytest.fixture(scope="module")
def jobs(url: str) -> dict[str, str]:
    """Finished jobs: the seed's XOR, moons with validation and accuracy, one that fails, and
    a batch of four."""
    ids = {"xor": submit(url, XOR), "moons": submit(url, MOONS)}
    ids["failed"] = submit(url, DIVERGING)
    assert wait_for(url, ids["failed"], finished)["status"] == "failed"
    r = HTTP.post(f"{url}/v1/batches", json=BATCH, timeout=10)
    assert r.status_code == 201, r.text
    ids["batch"] = r.json()["id"]
    for job_id in [ids["xor"], ids["moons"], *r.json()["job_ids"]]:
        assert wait_for(url, job_id, finished)["status"] == "succeeded"
    return ids


def api(url: str, path: str):
    r = HTTP.get(f"{url}{path}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def chart(page, chart_id: str) -> dict:
    """What the uPlot chart in #chart_id holds, and how many of its pixels are the first
    series' blue (the line really drawn)."""
    return page.eval_on_selector(
        f"#{chart_id}",
        """(el, blue) => {
            const u = el.uplot, c = u.ctx.canvas;
            const px = u.ctx.getImageData(0, 0, c.width, c.height).data;
            let drawn = 0;
            for (let i = 0; i < px.length; i += 4) {
                const d = Math.abs(px[i] - blue[0]) + Math.abs(px[i + 1] - blue[1])
                    + Math.abs(px[i + 2] - blue[2]);
                if (px[i + 3] > 200 && d < 40) drawn++;
            }
            return {data: u.data.map((c) => Array.from(c)),
                    labels: u.series.map((s) => s.label), drawn};
        }""",
        list(BLUE),
    )


def wait_points(page, chart_id: str, test: str) -> None:
    page.wait_for_function(
        f"() => {{ const el = document.getElementById('{chart_id}');"
        f" return el && el.uplot && ({test}); }}"
    )


def test_jobs_table_filters_and_sparklines(page, url: str, jobs: dict) -> None:
    page.goto(f"{url}/")
    row = page.locator(f'tr[data-job-id="{jobs["xor"]}"]')
    assert row.locator(".status").inner_text() == "succeeded"
    assert row.locator(".progress .count").inner_text() == "1500/1500"
    spark = row.locator("td.spark")
    page.wait_for_function("(el) => el.uplot", arg=spark.element_handle())
    points = api(url, f"/v1/jobs/{jobs['xor']}/epochs?points=40&fields=loss&format=columns")
    data = spark.evaluate("(el) => el.uplot.data.map((c) => Array.from(c))")
    assert data == [points["columns"]["epoch"], points["columns"]["loss"]]
    assert len(data[0]) == 40

    page.fill("input[name=name]", "moo")
    page.wait_for_selector(f'tr[data-job-id="{jobs["xor"]}"]', state="detached")
    names = page.locator("#jobs-table tbody td:first-child").all_inner_texts()
    assert names == ["moons"]
    assert "name=moo" in page.url  # the filter is in the address, to be shared
    page.fill("input[name=name]", "")
    page.wait_for_selector(f'tr[data-job-id="{jobs["xor"]}"]')  # every job again
    page.check("input[name=status][value=failed]")
    page.wait_for_selector(f'tr[data-job-id="{jobs["xor"]}"]', state="detached")
    rows = page.locator("#jobs-table tbody tr")
    assert rows.count() == 1 and rows.get_attribute("data-job-id") == jobs["failed"]
    assert rows.locator(".status").inner_text() == "failed"
    page.check("input[name=status][value=cancelled]")  # any of the two
    page.uncheck("input[name=status][value=failed]")
    page.wait_for_selector("text=No jobs match.")


def test_jobs_pages(page, url: str, jobs: dict) -> None:
    """Pages follow the API's next_cursor; "newer" goes back the way it came."""
    everything = [job["id"] for job in api(url, "/v1/jobs?limit=500")["items"]]
    assert len(everything) == 7
    page.goto(f"{url}/#/jobs?limit=3")
    shown = []
    for number in (1, 2, 3):
        page.wait_for_selector(f".pager >> text=page {number}")
        ids = page.locator("#jobs-table tbody tr").evaluate_all(
            "rows => rows.map((r) => r.dataset.jobId)"
        )
        shown.append(ids)
        if number < 3:
            page.click("text=older →")
    assert shown == [everything[0:3], everything[3:6], everything[6:7]]
    assert page.is_disabled("text=older →")
    page.click("text=← newer")
    page.wait_for_selector(f'tr[data-job-id="{everything[3]}"]')


def test_loss_and_gradient_charts_hold_the_history(page, url: str, jobs: dict) -> None:
    job_id = jobs["xor"]
    page.goto(f"{url}/#/jobs/{job_id}")
    wait_points(page, "chart-loss", "el.dataset.points === '1500'")
    wait_points(page, "chart-grad", "el.dataset.points === '1500'")
    history = api(url, f"/v1/jobs/{job_id}/epochs?format=columns&limit=5000")["columns"]

    loss = chart(page, "chart-loss")
    assert loss["data"] == [history["epoch"], history["loss"]]  # every epoch, exactly
    assert loss["labels"] == ["epoch", "training loss"]
    assert loss["drawn"] > 200
    assert page.get_attribute("#chart-loss", "data-scale") == "log"
    page.click("#chart-loss >> xpath=.. >> button.toggle")
    assert page.get_attribute("#chart-loss", "data-scale") == "linear"
    assert chart(page, "chart-loss")["drawn"] > 200
    scale = "el => [el.uplot.scales.x.min, el.uplot.scales.x.max]"
    over = page.locator("#chart-loss .u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.5, y, steps=5)
    page.mouse.up()
    low, high = page.eval_on_selector("#chart-loss", scale)
    assert 200 < low < high < 900  # dragged over 20-50 % of epochs 1..1500: zoomed in
    page.mouse.dblclick(over["x"] + over["width"] / 2, y)
    assert page.eval_on_selector("#chart-loss", scale) == [1, 1500]

    grads = chart(page, "chart-grad")
    assert grads["labels"][1:] == ["‖∂C/∂W¹‖", "‖∂C/∂b¹‖", "‖∂C/∂W²‖", "‖∂C/∂b²‖"]
    assert grads["data"][1] == [row[0] for row in history["grad_norm_weights"]]
    assert grads["data"][4] == [row[1] for row in history["grad_norm_biases"]]
    assert page.is_hidden("#chart-accuracy")  # mse on XOR has no accuracy

    assert page.is_hidden("#job-error")
    facts = page.inner_text("#job-facts")
    assert "1500/1500" in facts and "succeeded" in page.inner_text("h1")
    assert '"learning_rate": 2' in page.inner_text("#job-spec")


def test_accuracy_and_validation_loss_when_present(page, url: str, jobs: dict) -> None:
    job_id = jobs["moons"]
    page.goto(f"{url}/#/jobs/{job_id}")
    wait_points(page, "chart-accuracy", "el.dataset.points === '400'")
    history = api(url, f"/v1/jobs/{job_id}/epochs?format=columns&fields=val_loss,accuracy")
    accuracy = chart(page, "chart-accuracy")
    assert accuracy["data"][1] == history["columns"]["accuracy"]
    loss = chart(page, "chart-loss")
    assert loss["labels"][1:] == ["training loss", "validation loss"]
    assert loss["data"][2] == history["columns"]["val_loss"]
    shoot(page, "job-moons", until=".grid")


def test_a_failed_job_shows_its_error(page, url: str, jobs: dict) -> None:
    job = api(url, f"/v1/jobs/{jobs['failed']}")
    page.goto(f"{url}/#/jobs/{job['id']}")
    page.wait_for_selector("h1 .status-failed")
    assert page.inner_text("#job-error") == job["error"]
    assert "diverged" in job["error"]
    wait_points(page, "chart-loss", f"el.dataset.points === '{job['epochs_done']}'")
    assert page.is_hidden("#cancel")


def test_trajectory_chart_shows_the_chosen_weights(page, url: str, jobs: dict) -> None:
    job_id = jobs["xor"]
    page.goto(f"{url}/#/jobs/{job_id}")
    wait_points(page, "chart-trajectory", "el.dataset.names === 'w^1_{0,0},b^1_{0}'")
    page.select_option("#trajectory-picker select[name=layer]", "2")
    page.select_option("#trajectory-picker select[name=param]", "weight")
    page.select_option("#trajectory-picker select[name=k]", "0")
    page.select_option("#trajectory-picker select[name=j]", "3")
    page.click("#trajectory-picker button[type=submit]")
    wait_points(page, "chart-trajectory", "el.dataset.names === 'w^1_{0,0},b^1_{0},w^2_{0,3}'")

    shown = chart(page, "chart-trajectory")
    assert shown["labels"] == ["epoch", "w¹₀₀", "b¹₀", "w²₀₃"]
    w203 = api(url, f"/v1/jobs/{job_id}/trajectory?layer=2&param=weight&k=0&j=3")
    b10 = api(url, f"/v1/jobs/{job_id}/trajectory?layer=1&param=bias&k=0")
    assert shown["data"][0] == w203["epochs"] == list(range(0, 1501, 50))
    assert shown["data"][3] == w203["values"]
    assert shown["data"][2] == b10["values"]
    assert shown["drawn"] > 50

    page.click("#trajectory-picked .chip:first-child button")  # remove w¹₀₀
    wait_points(page, "chart-trajectory", "el.dataset.names === 'b^1_{0},w^2_{0,3}'")


def hover_cell(page, k: int, j: int, cols: int) -> dict:
    """Hover cell (k, j) of the heatmap (j == cols: the bias column) and read the readout."""
    page.locator("#heatmap").scroll_into_view_if_needed()
    box = page.locator("#heatmap").bounding_box()
    cell = box["width"] / (cols + 2)  # cols of W, a gap, the bias column (heatmap.js)
    x = (cols + 1 if j == cols else j) * cell + cell / 2
    page.mouse.move(box["x"] + x, box["y"] + k * cell + cell / 2)
    return page.eval_on_selector(".readout", "el => ({...el.dataset, text: el.textContent})")


def test_slider_changes_the_heatmap_and_npz_matches(page, url: str, jobs: dict) -> None:
    job_id = jobs["xor"]
    page.goto(f"{url}/#/jobs/{job_id}")
    page.wait_for_selector("#heatmap[data-epoch='1500']")
    last = api(url, f"/v1/jobs/{job_id}/snapshots/1500")["layers"][0]
    first = api(url, f"/v1/jobs/{job_id}/snapshots/0")["layers"][0]

    seen = hover_cell(page, 1, 0, cols=2)
    assert seen["cell"] == "w^1_{1,0}" and float(seen["value"]) == last["weights"][1][0]
    assert seen["text"].startswith("w¹₁₀ = ") and seen["text"].endswith("at epoch 1500")
    pixels = page.eval_on_selector("#heatmap", "el => el.toDataURL()")

    page.focus("#snapshot-slider")
    page.keyboard.press("Home")
    page.wait_for_selector("#heatmap[data-epoch='0']")
    assert page.inner_text("#snapshot-epoch") == "0"
    seen = hover_cell(page, 1, 0, cols=2)
    assert float(seen["value"]) == first["weights"][1][0] != last["weights"][1][0]
    bias = hover_cell(page, 3, 2, cols=2)
    assert bias["cell"] == "b^1_{3}" and float(bias["value"]) == first["biases"][3]
    assert page.eval_on_selector("#heatmap", "el => el.toDataURL()") != pixels

    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#heatmap[data-epoch='50']")
    with page.expect_download() as download:
        page.click("#download-npz")
    arrays = np.load(io.BytesIO(download.value.path().read_bytes()))
    at_50 = api(url, f"/v1/jobs/{job_id}/snapshots/50")["layers"]
    assert arrays["W1"].tolist() == at_50[0]["weights"]
    assert arrays["b2"].tolist() == at_50[1]["biases"]

    page.focus("#snapshot-slider")
    page.keyboard.press("End")
    page.wait_for_selector("#heatmap[data-epoch='1500']")
    page.mouse.move(0, 0)
    shoot(page, "job", until=".grid")


def test_batch_leaderboard(page, url: str, jobs: dict) -> None:
    page.goto(f"{url}/#/batches")
    page.click("text=xor rates")
    page.wait_for_selector("#leaderboard tbody tr")
    batch = api(url, f"/v1/batches/{jobs['batch']}")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 4
    order = [rows.nth(i).get_attribute("data-job-id") for i in range(4)]
    assert order == [r["job_id"] for r in batch["leaderboard"]]
    assert "4/4" in page.inner_text("main")
    shoot(page, "batch", until="#leaderboard")
    rows.first.locator("a").click()
    page.wait_for_selector("#chart-loss[data-points='600']")
    assert page.url.endswith(f"#/jobs/{batch['leaderboard'][0]['job_id']}")


def test_new_job_form(page, url: str, jobs: dict) -> None:
    page.goto(f"{url}/#/new")
    page.fill("#spec", '{"network": {"layers": [2]}, "dataset": {"builtin": "xor"}}')
    page.click("text=Submit")
    assert "network.layers" in page.inner_text("[role=alert]")  # the 422 names the field
    page.fill("#spec", '{"name": "from the form", "network": {"layers": [2, 2, 1]}, '
              '"epochs": 100, "dataset": {"builtin": "xor"}}')  # fmt: skip
    page.click("text=Submit")
    page.wait_for_url("**/#/jobs/*")
    page.wait_for_selector("h1 .status-succeeded")
    assert page.inner_text("h1").startswith("from the form")


def test_a_running_jobs_chart_grows_without_a_reload(page, url: str, jobs: dict) -> None:
    job_id = submit(url, LONG)
    wait_for(url, job_id, lambda job: job["epochs_done"] > 0)
    page.goto(f"{url}/")
    page.wait_for_selector(f'tr[data-job-id="{job_id}"] .status-running')
    page.wait_for_function(
        "() => [...document.querySelectorAll('#jobs-table td.spark')].every((td) => td.uplot)"
    )
    shoot(page, "jobs", until=".pager")

    page.goto(f"{url}/#/jobs/{job_id}")
    wait_points(page, "chart-loss", "Number(el.dataset.lastX) > 0")
    page.evaluate("window.samePage = true")
    # From here on only the events stream can bring epochs: the page's periodic reads of the
    # history are refused.
    page.route("**/epochs?*", lambda route: route.abort())
    before = int(page.get_attribute("#chart-loss", "data-last-x"))
    wait_points(page, "chart-loss", f"Number(el.dataset.lastX) > {before + 2000}")
    shown = chart(page, "chart-loss")
    epochs, losses = shown["data"][0][-5:], shown["data"][1][-5:]
    page.unroute("**/epochs?*")
    stored = api(url, f"/v1/jobs/{job_id}/epochs?start={epochs[0]}&end={epochs[-1]}&fields=loss")
    assert [r["epoch"] for r in stored["items"]] == epochs  # streamed epochs, exactly stored
    assert [r["loss"] for r in stored["items"]] == losses
    shoot(page, "job-running", until=".grid")

    page.click("#cancel")
    page.wait_for_selector("h1 .status-cancelled", timeout=30_000)
    done = wait_for(url, job_id, finished)["epochs_done"]
    wait_points(page, "chart-loss", f"el.dataset.lastX === '{done}'")
    assert page.evaluate("window.samePage") is True
    assert page.is_hidden("#cancel")


def test_static_files_need_no_network(url: str) -> None:
    """Everything the page loads comes from the service itself (no CDN), without a key."""
    index = HTTP.get(f"{url}/", timeout=10)
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    static = Path(__file__).resolve().parents[2] / "api" / "static"
    own = [p for p in static.rglob("*") if p.suffix in {".html", ".js", ".css"}]
    assert len(own) > 5
    for path in own:
        r = HTTP.get(f"{url}/static/{path.relative_to(static).as_posix()}", timeout=10)
        assert r.status_code == 200, path
        if "vendor" not in path.parts:
            assert "://" not in path.read_text(), f"{path.name} refers to another host"
