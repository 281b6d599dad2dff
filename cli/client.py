"""The CLI's view of the API: the Python client's transport (deltaflow._http, the one HTTP
client of the project) with the calls the commands make."""

from __future__ import annotations

from deltaflow._http import Transport
from deltaflow.errors import DeltaflowError


class CliError(DeltaflowError):
    """A failure the user can act on; the CLI prints its message as one line and exits 1. The
    client's own errors (every DeltaflowError) are printed the same way."""


class Client(Transport):
    """Speaks /v1 over HTTP; raises a DeltaflowError for connection failures and 4xx/5xx."""

    def __init__(self, url: str, key: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(url, key, timeout, key_hint="--key")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, body: dict) -> dict:
        return self.request("POST", "/v1/jobs", json=body)

    def fork(self, job_id: str, body: dict) -> dict:
        """A new queued job from the job's state at an epoch (POST /v1/jobs/{id}/fork)."""
        return self.request("POST", f"/v1/jobs/{job_id}/fork", json=body)

    def lineage(self, job_id: str) -> dict:
        """{"id", "ancestors": nearest first, "descendants"}: forks of forks included."""
        return self.get(f"/v1/jobs/{job_id}/lineage")

    def cancel(self, job_id: str) -> dict:
        return self.request("POST", f"/v1/jobs/{job_id}/cancel")

    def job(self, job_id: str) -> dict:
        return self.get(f"/v1/jobs/{job_id}")

    def epochs(self, job_id: str) -> list[dict]:
        return list(self.pages(f"/v1/jobs/{job_id}/epochs", limit=10_000))

    def snapshot(self, job_id: str, epoch: int | str = "latest") -> dict:
        return self.get(f"/v1/jobs/{job_id}/snapshots/{epoch}")

    def batch(self, batch_id: str) -> dict:
        return self.get(f"/v1/batches/{batch_id}")
