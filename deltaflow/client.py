"""deltaflow.Client: the service from Python (a notebook, a script), in numpy and DataFrames."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from deltaflow import frames
from deltaflow._http import Transport
from deltaflow.batches import Batches
from deltaflow.datasets import Datasets
from deltaflow.jobs import Jobs

DEFAULT_URL = "http://127.0.0.1:8000"


class Client:
    """`Client(url=None, key=None)`: the service at `url` (default DELTAFLOW_URL, else
    http://127.0.0.1:8000) with API key `key` (default DELTAFLOW_KEY; none when the service
    needs no key). `c.datasets`, `c.jobs` and `c.batches` hold the calls; `c.history(...)`
    reads many jobs' epochs into one table."""

    def __init__(self, url: str | None = None, key: str | None = None, timeout: float = 30.0):
        url = url or os.environ.get("DELTAFLOW_URL") or DEFAULT_URL
        key = key if key is not None else os.environ.get("DELTAFLOW_KEY")
        self._t = Transport(url, key, timeout)
        self.url = self._t.url
        self.datasets = Datasets(self._t)
        self.jobs = Jobs(self._t)
        self.batches = Batches(self._t)

    def __repr__(self) -> str:
        return f"<deltaflow.Client {self.url}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._t.close()

    def compare(self, job_ids: Iterable[Any] | None = None, *, batch: Any = None,
                field: str = "loss", at: int | None = None) -> Any:  # fmt: skip
        """One row per job (GET /v1/compare): id, name, status, the spec keys the jobs differ
        in, and `field`'s last, min and max (and its value at epoch `at`), as a pandas
        DataFrame. `field` is an epoch field, or `name_l` for layer l."""
        import pandas as pd

        ids = None if job_ids is None else [getattr(j, "id", j) for j in job_ids]
        found = self._t.get("/v1/compare", job_id=ids, batch=getattr(batch, "id", batch),
                            field=field, at=at, points=4)  # fmt: skip
        rows = [{"job_id": j["id"], "name": j["name"], "status": j["status"],
                 **j["hyperparameters"], **j["summary"]} for j in found["jobs"]]  # fmt: skip
        return pd.DataFrame(rows).drop(columns=[] if at is not None else ["at"])

    def history(self, job_ids: Iterable[Any] | None = None, *, batch: Any = None,
                fields: str | list[str] | None = None, as_: frames.As = "pandas",
                **filters: Any) -> Any:  # fmt: skip
        """Many jobs' epochs as one long table with a `job_id` column: the jobs `job_ids`
        (ids or Job objects), or those of `batch` (an id or a Batch), or those the filters
        (`status`, `tag`) select, as `GET /v1/epochs` streams them in Arrow."""
        if isinstance(fields, list):
            fields = ",".join(fields)
        ids = None if job_ids is None else [getattr(j, "id", j) for j in job_ids]
        query = {"job_id": ids, "batch": getattr(batch, "id", batch), "fields": fields}
        query |= filters
        response = self._t.send(
            "GET", "/v1/epochs", headers={"Accept": frames.ARROW_STREAM},
            params={k: v for k, v in query.items() if v is not None},
        )  # fmt: skip
        return frames.convert(frames.read_stream(response.content), as_)
