"""c.batches and Batch: grids, sampled spaces and schedulers; the leaderboard as a DataFrame."""

from __future__ import annotations

import time
from typing import Any

from deltaflow import progress
from deltaflow._http import Transport
from deltaflow.errors import ServiceUnavailable
from deltaflow.jobs import Job


class Batches:
    """The caller's batches (`/v1/batches`)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, base: dict, name: str = "batch", **settings: Any) -> Batch:
        """Queue a batch: `base` a job body, with `grid`, `space`, `num_samples`, `seed` and
        `scheduler` as `POST /v1/batches` reads them."""
        body = {"name": name, "base": base, **settings}
        return Batch(self._t, self._t.request("POST", "/v1/batches", json=body))

    def get(self, batch_id: str) -> Batch:
        return Batch(self._t, self._t.get(f"/v1/batches/{self._t.resolve(batch_id, 'batch')}"))


class Batch:
    """One batch; `info` is its last-read record (`GET /v1/batches/{id}`)."""

    def __init__(self, transport: Transport, info: dict) -> None:
        self._t = transport
        self.info = info
        self.id: str = info["id"]

    def __repr__(self) -> str:
        return f"<Batch {self.id[:8]} {self.info.get('name')!r} {self.done}/{self.info['total']}>"

    @property
    def done(self) -> int:
        return self.info.get("done", 0)

    def refresh(self) -> Batch:
        self.info = self._t.get(f"/v1/batches/{self.id}")
        return self

    def wait(self, timeout: float | None = None, progress_bar: bool = True,
             poll: float = 1.0) -> Batch:  # fmt: skip
        """Block until every job has ended, with a bar of jobs done out of the total."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with progress.Bar(f"batch {self.id[:8]}", progress_bar, unit="job") as bar:
            while self.refresh().done < self.info["total"]:
                bar.show(self.info, done_key="done", total_key="total")
                if deadline is not None and time.monotonic() > deadline:
                    msg = f"batch {self.id} has {self.done} of {self.info['total']} jobs ended"
                    raise ServiceUnavailable(f"{msg} after {timeout} s")
                time.sleep(poll)
            bar.show(self.info, done_key="done", total_key="total")
        return self

    def jobs(self) -> list[Job]:
        return [Job(self._t, item) for item in self._t.pages("/v1/jobs", batch_id=self.id)]

    def leaderboard(self) -> Any:
        """Every job best first (by best loss, or by the scheduler's metric and mode) as a
        pandas DataFrame: one column per grid or space path, then the job's results."""
        import pandas as pd

        rows = []
        for row in self.refresh().info["leaderboard"]:
            point = row.get("grid_point") or {}
            rows.append(point | {k: v for k, v in row.items() if k != "grid_point"})
        return pd.DataFrame(rows)
