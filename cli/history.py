"""A job's history: `epochs` (metrics by epoch), `trajectory` (one parameter across the
snapshots) and `export` (a snapshot as .npz). Registered on cli.main's typer app."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cli.client import Client, CliError
from cli.common import DEFAULT_URL, AsJson, JobId, Key, Url, app, console, friendly, print_json
from cli.plot import movement, pick_epochs, sparkline
from cli.tables import epochs_table, trajectory_table

DEFAULT_ROWS = 50
TRAJECTORY_ROWS = 20


@app.command()
@friendly
def epochs(
    job_id: JobId,
    start: Annotated[int, typer.Option(min=0, help="First epoch.")] = 0,
    end: Annotated[int | None, typer.Option(min=0, help="Last epoch.")] = None,
    fields: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated field names, e.g. loss,val_loss (default: all; the API's "
            "GET /v1/jobs/{id}/epochs documents each)."
        ),
    ] = None,
    points: Annotated[
        int | None,
        typer.Option(min=4, help="Thin the range evenly to at most N epochs (keeps first, last)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help=f"At most N epochs (default {DEFAULT_ROWS}).")
    ] = None,
    own: Annotated[
        bool, typer.Option("--own", help="A fork's own epochs only, not its parent's before.")
    ] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """A job's metrics by epoch: the first --limit of a range, or an even --points sample. A
    fork's history starts with its parent's epochs up to the fork (--own: without them).

    --json prints {"columns": {"epoch": [...], field: [...]}, "next_cursor", "downsampled"}."""
    if points is not None and limit is not None:
        raise CliError("give --points (an even sample) or --limit (the first N), not both")
    query = {"start": start, "end": end, "fields": fields, "format": "columns", "points": points}
    query["own"] = own or None  # sent as own=true, and only when asked
    with Client(url, key) as client:
        full_id = client.resolve(job_id)
        path = f"/v1/jobs/{full_id}/epochs"
        page = fetch_columns(client, path, query, None if points else limit or DEFAULT_ROWS)
    if as_json:
        print_json(page)
        return
    console.print(f"job {full_id}", highlight=False)
    console.print(epochs_table(page["columns"], hide_empty=fields is None))
    console.print(epochs_note(page), highlight=False)


def fetch_columns(client: Client, path: str, query: dict, limit: int | None) -> dict:
    """Columns of epochs, following next_cursor until `limit` epochs (None: one request)."""
    page = client.get(path, **query, limit=limit)
    columns = page["columns"]
    while limit is not None and page["next_cursor"] and len(columns["epoch"]) < limit:
        rest = limit - len(columns["epoch"])
        page = client.get(path, **query, limit=rest, cursor=page["next_cursor"])
        for name, values in page["columns"].items():
            columns[name].extend(values)
    return {**page, "columns": columns}


def epochs_note(page: dict) -> str:
    shown = page["columns"]["epoch"]
    if page["downsampled"]:
        sample = page["downsampled"]
        return f"downsampled: {sample['points']} of {sample['of']} epochs"
    if not shown:
        return "no epochs in this range yet"
    if page["next_cursor"]:
        return f"{len(shown)} epochs shown; more follow: --start {shown[-1] + 1} or --limit"
    return f"{len(shown)} epoch(s)"


@app.command()
@friendly
def trajectory(
    job_id: JobId,
    layer: Annotated[int, typer.Option(help="Layer l = 1..L (0 is the input).")],
    weight: Annotated[
        tuple[int, int] | None,
        typer.Option(metavar="K J", help="The weight w^l_kj: from neuron j of l-1 to k of l."),
    ] = None,
    bias: Annotated[int | None, typer.Option(metavar="K", help="The bias b^l_k.")] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help=f"Every snapshot, not about {TRAJECTORY_ROWS}.")
    ] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """How one parameter moved: its exact value at every snapshot epoch.

    deltaflow trajectory ID --layer 1 --weight 0 1   (w^1_{0,1})
    deltaflow trajectory ID --layer 2 --bias 0       (b^2_{0})"""
    if (weight is None) == (bias is None):
        raise CliError("give one parameter: --weight K J (w^l_kj) or --bias K (b^l_k)")
    if weight is not None:
        query = {"param": "weight", "k": weight[0], "j": weight[1]}
    else:
        query = {"param": "bias", "k": bias}
    with Client(url, key) as client:
        found = client.get(f"/v1/jobs/{client.resolve(job_id)}/trajectory", layer=layer, **query)
    if as_json:
        print_json(found)
    else:
        show_trajectory(found, show_all)


def show_trajectory(found: dict, show_all: bool) -> None:
    name, points = found["name"], list(zip(found["epochs"], found["values"], strict=True))
    if not points:
        console.print(f"{name}: no snapshots stored yet", markup=False)
        return
    rows = points if show_all else pick_epochs(points, TRAJECTORY_ROWS)
    shown = "" if len(rows) == len(points) else f", {len(rows)} shown (--all for every one)"
    console.print(f"{name} at {len(points)} snapshot epochs{shown}", markup=False)
    console.print(trajectory_table(name, rows))
    (e0, first), (e1, last) = points[0], points[-1]
    console.print(movement(name, first, last, (e0, e1)), markup=False, soft_wrap=True)
    line = sparkline(found["values"], linear=True)
    console.print(f"{first:+.4f} {line} {last:+.4f} (linear scale)", soft_wrap=True)


FILES = {"npz": "weights.npz", "onnx": "model.onnx"}


@app.command()
@friendly
def export(
    job_id: JobId,
    epoch: Annotated[str, typer.Option(help="A snapshot epoch, or latest.")] = "latest",
    format: Annotated[
        str, typer.Option("--format", "-f", help="npz (W1, b1, …) or onnx (the network).")
    ] = "npz",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The file (default job-ID-epoch-K.npz or .onnx)."),
    ] = None,
    url: Url = DEFAULT_URL,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Download a snapshot: its W^l and b^l as .npz (numpy.load: keys W1, b1, W2, b2, …), or
    the network at that epoch as an ONNX model (input x, output a_L)."""
    if epoch != "latest" and not epoch.isdigit():
        raise CliError(f"--epoch must be a snapshot epoch (0, 1, …) or latest, not {epoch!r}")
    if format not in FILES:
        raise CliError(f"--format must be npz or onnx, not {format!r}")
    with Client(url, key) as client:
        full_id = client.resolve(job_id)
        response = client.send("GET", f"/v1/jobs/{full_id}/snapshots/{epoch}/{FILES[format]}")
    disposition = response.headers.get("content-disposition", "")
    named = re.search(r'filename="([^"/\\]+)"', disposition)
    path = output or Path(named.group(1) if named else f"job-{full_id}-epoch-{epoch}.{format}")
    if format == "onnx":
        _write(response.content, path)
        if as_json:
            print_json({"path": str(path), "bytes": len(response.content)})
        else:
            console.print(f"wrote {path} ({len(response.content):,} bytes, ONNX: input x, "
                          "output a_L)", markup=False, highlight=False, soft_wrap=True)  # fmt: skip
        return
    arrays = save_npz(response.content, path)
    if as_json:
        print_json({"path": str(path), "arrays": arrays})
        return
    console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    for key, info in arrays.items():
        shape = "×".join(map(str, info["shape"]))
        console.print(f"  {key:<4} {shape:<8} {info['dtype']}", markup=False, highlight=False)


def _write(content: bytes, path: Path) -> None:
    try:
        path.write_bytes(content)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def save_npz(content: bytes, path: Path) -> dict[str, dict]:
    """Write the file, then open it as numpy would: {key: {"shape", "dtype"}}."""
    _write(content, path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: {"shape": list(npz[k].shape), "dtype": str(npz[k].dtype)} for k in npz}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CliError(f"{path} is not a readable .npz file: {exc}") from None
