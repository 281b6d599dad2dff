"""Training health and comparing runs: `health` (a job's alerts and each layer's figures) and
`compare` (one field of several jobs side by side). Registered on cli.main's typer app."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cli.client import Client
from cli.common import DEFAULT_URL, AsJson, Key, Url, app, console, friendly, print_json
from cli.plot import sparkline
from cli.tables import compact, fmt_loss, fmt_value, status_text

FIGURES = {
    "update_ratio_weights": "‖ΔW‖/‖W‖",
    "update_ratio_biases": "‖Δb‖/‖b‖",
    "dead_fraction": "dead",
    "saturated_fraction": "saturated",
    "delta_mean": "mean |δ|",
    "delta_max": "max |δ|",
}
TREND_POINTS = 200


@app.command()
@friendly
def health(
    job_id: Annotated[str, typer.Argument(help="The job's id (or a unique prefix of it).")],
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """A job's health alerts, then each layer's figures at its latest epoch, with the update
    ratio's trend over the run (CS231n: near 1e-3 is healthy)."""
    with Client(url, key) as client:
        job = client.job(client.resolve(job_id))
        query = {"fields": ",".join(FIGURES), "format": "columns", "points": TREND_POINTS}
        columns = client.get(f"/v1/jobs/{job['id']}/epochs", **query)["columns"]
    if as_json:
        print_json({"health": job["health"], "columns": columns})
        return
    console.print(alerts_table(job))
    if columns["epoch"]:
        console.print(layers_table(columns, job["spec"]["network"]["layers"]))
    else:
        console.print("no epochs stored yet")


def alerts_table(job: dict) -> Table | str:
    if not job["health"]:
        return f"job {job['id'][:8]}: no health alert in {job['epochs_done']} epochs"
    table = compact(f"job {job['id'][:8]}: health alerts, in the order they fired")
    for name in ("rule", "layer", "epochs", "now", "alert"):
        table.add_column(name, no_wrap=name != "alert")
    for alert in job["health"]:
        span = f"{alert['since']}–{alert['epoch']}"
        now = "[red]active[/]" if alert["active"] else "[dim]ended[/]"
        table.add_row(alert["rule"], str(alert["layer"] or "—"), span, now, alert["message"])
    return table


def layers_table(columns: dict[str, list], sizes: list[int]) -> Table:
    last = columns["epoch"][-1]
    table = compact(f"epoch {last}, per layer (trend: ‖ΔW‖/‖W‖ over the run, log scale)")
    table.add_column("layer", justify="right")
    table.add_column("units", justify="right")
    for label in FIGURES.values():
        table.add_column(label, justify="right")
    table.add_column("trend")
    for l in range(1, len(sizes)):
        row = [_figure(name, columns[name][-1][l - 1]) for name in FIGURES]
        trend = [r[l - 1] for r in columns["update_ratio_weights"] if r and r[l - 1] is not None]
        table.add_row(str(l), str(sizes[l]), *row, sparkline(trend, 24))
    return table


def _figure(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0%}" if name.endswith("_fraction") else f"{value:.2e}"


@app.command()
@friendly
def compare(
    job_ids: Annotated[list[str], typer.Argument(help="Job ids (or unique prefixes).")],
    field: Annotated[
        str, typer.Option(help="An epoch field, or name_l for layer l (update_ratio_weights_1).")
    ] = "loss",
    at: Annotated[int | None, typer.Option(min=1, help="Also the value at this epoch.")] = None,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Several jobs side by side: the hyperparameters they differ in, the field's last, lowest
    and highest value (and at --at), and its curve."""
    with Client(url, key) as client:
        ids = [client.resolve(j) for j in job_ids]
        found = client.get("/v1/compare", job_id=ids, field=field, at=at, points=TREND_POINTS)
    if as_json:
        print_json(found)
    else:
        console.print(comparison_table(found))


def comparison_table(found: dict[str, Any]) -> Table:
    table = compact(f"{found['field']} of {len(found['jobs'])} jobs")
    table.add_column("job", no_wrap=True)
    table.add_column("name")
    table.add_column("status", no_wrap=True)
    for key in found["varying"]:  # a long dotted key folds onto a second line
        table.add_column(key, overflow="fold")
    numbers = ["last", "min", "max"] + ([f"at {found['at']}"] if found["at"] is not None else [])
    for name in numbers:
        table.add_column(name, justify="right", no_wrap=True)
    curve = console.width >= 110  # the numbers first: the curve only where there is room
    if curve:
        table.add_column("curve", no_wrap=True)
    for job in found["jobs"]:
        summary = job["summary"]
        cells = [fmt_loss(summary[k]) for k in ("last", "min", "max")]
        if found["at"] is not None:
            cells.append(fmt_loss(summary["at"]))
        values = [v for v in job["value"] if v is not None]
        linear = any(v <= 0 for v in values)
        if curve:
            cells.append(sparkline(values, 24, linear=linear))
        table.add_row(job["id"][:8], job["name"], status_text(job["status"]),
                      *(fmt_value(job["hyperparameters"][k]) for k in found["varying"]),
                      *cells)  # fmt: skip
    return table
