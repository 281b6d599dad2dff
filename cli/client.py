"""A small HTTP client for the deltaflow API that turns every failure into one readable line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

UUID_LENGTH = 36


class CliError(Exception):
    """A failure the user can act on; the CLI prints its message as one line and exits 1."""


class Client:
    """Speaks /v1 over HTTP; raises CliError for connection failures and 4xx/5xx answers."""

    def __init__(self, url: str, key: str | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.key = key.strip() if key and key.strip() else None
        headers = {}
        if self.key is not None:
            # httpx would refuse such a header with a traceback; say which input is wrong.
            if not self.key.isascii() or not self.key.isprintable() or " " in self.key:
                raise CliError("the API key (--key or DELTAFLOW_KEY) must be one printable word")
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        except httpx.InvalidURL as exc:
            raise CliError(f"not a valid deltaflow URL: {url!r} ({exc})") from None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The successful response; CliError for no answer or a 4xx/5xx one."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise CliError(f"deltaflow at {self.url} did not answer in time") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CliError(f"cannot reach deltaflow at {self.url}: {exc}") from None
        if response.status_code == 401:
            raise CliError(self._unauthorized(response))
        if response.is_error:
            raise CliError(_error_line(response))
        return response

    def _unauthorized(self, response: httpx.Response) -> str:
        if self.key is None:
            return f"deltaflow at {self.url} needs an API key: pass --key or set DELTAFLOW_KEY"
        return f"deltaflow at {self.url} refused the API key: {_message(response)}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.send(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{self.url} answered {path} with something that is not JSON; "
                "is it a deltaflow API?"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters; None values are left out, lists repeat the parameter."""
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query)

    def pages(self, path: str, limit: int = 500, **params: Any) -> Iterator[dict]:
        """Every item of a paginated list, following `next_cursor` to the end."""
        cursor = None
        while True:
            page = self.get(path, limit=limit, cursor=cursor, **params)
            yield from page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return

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

    def resolve(self, prefix: str, kind: str = "job") -> str:
        """A full job (batch, key) id from the short one the lists show (or from a full id)."""
        if len(prefix) == UUID_LENGTH:
            return prefix
        plural = {"job": "jobs", "batch": "batches", "key": "keys"}[kind]
        ids = (item["id"] for item in self.pages(f"/v1/{plural}"))
        found = [i for i in ids if i.startswith(prefix.lower())]
        if not found:
            raise CliError(f"no {kind} id starts with {prefix!r}")
        if len(found) > 1:
            raise CliError(f"{prefix!r} matches {len(found)} {plural}; give more of the id")
        return found[0]


def _error_line(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {_message(response)}"


def _message(response: httpx.Response) -> str:
    """The API's `message` field when it sent one, else whatever the body says, on one line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        text = body.get("message") or body.get("detail") or response.reason_phrase
    else:
        text = response.text.strip() or response.reason_phrase
    return " ".join(str(text).split())
