"""c.jobs and Job: submit, follow, read the history of, predict with, fork and cancel a job."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from deltaflow import frames, progress
from deltaflow._http import Transport
from deltaflow.errors import JobFailed, ServiceUnavailable

ENDED = frozenset({"succeeded", "failed", "cancelled", "stopped"})
_NAME = re.compile(r"w\^(\d+)_\{(\d+),(\d+)\}|b\^(\d+)_\{(\d+)\}")


class Jobs:
    """The caller's jobs (`/v1/jobs`)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def submit(self, spec: Any, dataset: Any = None, **fields: Any) -> Job:
        """Queue a job: `spec` a dict (or pydantic model) of the job body; `dataset` a data
        set id, a record `c.datasets.upload` answered, or a reference (`{"builtin": "xor"}`);
        `fields` (name, tags, …) are added to the body."""
        body = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)
        if dataset is not None:
            body["dataset"] = _dataset_ref(dataset)
        body |= fields
        return Job(self._t, self._t.request("POST", "/v1/jobs", json=body))

    def get(self, job_id: str) -> Job:
        """The job with this id (or an unambiguous prefix of it)."""
        return Job(self._t, self._t.get(f"/v1/jobs/{self._t.resolve(job_id)}"))

    def list(self, status: str | list[str] | None = None, tag: str | dict | None = None,
             **filters: Any) -> Iterator[Job]:  # fmt: skip
        """Every job matching the filters, newest first, following every page. `tag` is
        `"key:value"`, a list of them, or a dict; other filters (`name`, `batch_id`,
        `order_by`, …) as `GET /v1/jobs` reads them."""
        tags = [f"{k}:{v}" for k, v in tag.items()] if isinstance(tag, dict) else tag
        for item in self._t.pages("/v1/jobs", status=status, tag=tags, **filters):
            yield Job(self._t, item)


class Job:
    """One job. `info` is its last-read record (`GET /v1/jobs/{id}`); `refresh()` rereads it."""

    def __init__(self, transport: Transport, info: dict) -> None:
        self._t = transport
        self.info = info
        self.id: str = info["id"]

    def __repr__(self) -> str:
        return (f"<Job {self.id[:8]} {self.info.get('name')!r} {self.status}, epoch "
                f"{self.info.get('epochs_done')}/{self.info.get('epochs_total')}>")  # fmt: skip

    @property
    def status(self) -> str:
        return self.info["status"]

    @property
    def health(self) -> list[dict]:
        """The health alerts of its run as of the last refresh: rule, layer, since, epoch,
        active and message ("layer 1: 93 of 128 units dead since epoch 2")."""
        return self.info.get("health") or []

    def refresh(self) -> Job:
        self.info = self._t.get(f"/v1/jobs/{self.id}")
        return self

    def wait(self, timeout: float | None = None, progress: bool = True, poll: float = 0.5) -> Job:
        """Block until the job has ended (succeeded, failed, cancelled or stopped), with a
        progress bar of its epochs (in a terminal or in Jupyter) unless `progress=False`.
        JobFailed if it failed; ServiceUnavailable if `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with progress_bar(self, progress) as bar:
            while self.refresh().status not in ENDED:
                bar.show(self.info)
                if deadline is not None and time.monotonic() > deadline:
                    msg = f"job {self.id} is still {self.status} after {timeout} s"
                    raise ServiceUnavailable(msg)
                time.sleep(poll)
            bar.show(self.info)
        if self.status == "failed":
            raise JobFailed(f"job {self.id} failed: {self.info.get('error')}")
        return self

    def history(self, fields: str | list[str] | None = None, points: int | None = None,
                start: int | None = None, end: int | None = None, own: bool = False,
                as_: frames.As = "pandas") -> Any:  # fmt: skip
        """Every stored epoch (or `start`..`end`, or an even downsample to `points`) with the
        chosen `fields` (default all), as a pandas DataFrame (`as_` "polars", "arrow" or
        "numpy" too), read as Arrow: exact values, no JSON."""
        if isinstance(fields, list):
            fields = ",".join(fields)
        query = {"fields": fields, "points": points, "start": start, "end": end, "own": own}
        response = self._t.send(
            "GET", f"/v1/jobs/{self.id}/epochs", headers={"Accept": frames.ARROW_STREAM},
            params={k: v for k, v in query.items() if v not in (None, False)},
        )  # fmt: skip
        return frames.convert(frames.read_stream(response.content), as_)

    def snapshot(self, epoch: int | str = "latest") -> dict[str, np.ndarray]:
        """W^l and b^l at a snapshot epoch: {"W1": (n_1, n_0), "b1": (n_1,), "W2": …}."""
        response = self._t.send("GET", f"/v1/jobs/{self.id}/snapshots/{epoch}/weights.npz")
        with np.load(io.BytesIO(response.content), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}

    def trajectory(self, name: str) -> Any:
        """w^l_{k,j} (or b^l_{k}) at every snapshot epoch, as a pandas Series named `name`,
        indexed by epoch."""
        import pandas as pd

        match = _NAME.fullmatch(name.replace(" ", ""))
        if match is None:
            msg = (f"{name!r} is not a parameter name: write w^l_{{k,j}} for a weight "
                   "(e.g. w^1_{0,1}) or b^l_{k} for a bias (e.g. b^2_{0})")  # fmt: skip
            raise ValueError(msg)
        lw, kw, j, lb, kb = match.groups()
        query = ({"layer": lw, "param": "weight", "k": kw, "j": j} if lw
                 else {"layer": lb, "param": "bias", "k": kb})  # fmt: skip
        got = self._t.get(f"/v1/jobs/{self.id}/trajectory", **query)
        index = pd.Index(got["epochs"], name="epoch")
        return pd.Series(got["values"], index=index, name=got["name"])

    def predict(self, x: Any, epoch: int | None = None) -> np.ndarray:
        """a^L for each row of `x` with the parameters of the snapshot at `epoch` (the latest
        when None)."""
        rows = np.asarray(x, dtype=np.float64)
        body = {"x": rows.reshape(len(rows), -1).tolist(), "epoch": epoch}
        return np.array(
            self._t.request("POST", f"/v1/jobs/{self.id}/predict", json=body)["outputs"]
        )

    def to_onnx(self, epoch: int | str = "latest", path: str | None = None) -> bytes:
        """The network at a snapshot epoch as an ONNX model (input `x`, output `a_L`); also
        written to `path` when given."""
        content = self._t.send("GET", f"/v1/jobs/{self.id}/snapshots/{epoch}/model.onnx").content
        if path is not None:
            with open(path, "wb") as file:
                file.write(content)
        return content

    def cancel(self) -> Job:
        self.info = self._t.request("POST", f"/v1/jobs/{self.id}/cancel")
        return self

    def fork(self, epoch: int | None = None, **overrides: Any) -> Job:
        """A new job continuing from this one's exact state after `epoch` (default its last),
        with spec paths changed from there: `fork(50, **{"optimizer.learning_rate": 0.01})`."""
        name, tags = overrides.pop("name", None), overrides.pop("tags", None)
        body = {"epoch": epoch, "overrides": overrides, "name": name, "tags": tags}
        body = {k: v for k, v in body.items() if v is not None}
        return Job(self._t, self._t.request("POST", f"/v1/jobs/{self.id}/fork", json=body))


def progress_bar(job: Job, enabled: bool) -> progress.Bar:
    return progress.Bar(f"job {job.id[:8]}", enabled)


def _dataset_ref(dataset: Any) -> Any:
    """A job body's `dataset`: an id as {"id": …}, an uploaded record by its id, else as given."""
    if isinstance(dataset, str):
        return {"id": dataset}
    if isinstance(dataset, dict) and "sha256" in dataset and "id" in dataset:
        return {"id": dataset["id"]}
    return dataset
