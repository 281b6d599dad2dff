"""The one HTTP client of the project (the Python client and the CLI both speak through it):
/v1 over httpx, every failure turned into a DeltaflowError whose message is one sentence."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from deltaflow.errors import APIError, AuthenticationError, NotFound, ServiceUnavailable

UUID_LENGTH = 36


class Transport:
    """Speaks /v1 at `url` with an optional API key. `key_hint` says, in a 401's message, where
    the key comes from ("key=" for the library, "--key" for the CLI)."""

    def __init__(
        self, url: str, key: str | None = None, timeout: float = 30.0, key_hint: str = "key="
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key.strip() if key and key.strip() else None
        self.key_hint = key_hint
        headers = {}
        if self.key is not None:
            # httpx would refuse such a header with a traceback; say which input is wrong.
            if not self.key.isascii() or not self.key.isprintable() or " " in self.key:
                raise AuthenticationError(
                    f"the API key ({key_hint} or DELTAFLOW_KEY) must be one printable word", 401
                )
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        except httpx.InvalidURL as exc:
            raise ServiceUnavailable(f"not a valid deltaflow URL: {url!r} ({exc})") from None

    def close(self) -> None:
        self._http.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The successful response; a DeltaflowError for no answer or a 4xx/5xx one."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServiceUnavailable(f"deltaflow at {self.url} did not answer in time") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ServiceUnavailable(f"cannot reach deltaflow at {self.url}: {exc}") from None
        if response.is_error:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> APIError:
        body, text = _problem(response)
        status = response.status_code
        if status == 401:
            if self.key is None:
                msg = (f"deltaflow at {self.url} needs an API key: pass {self.key_hint} or set "
                       "DELTAFLOW_KEY")  # fmt: skip
            else:
                msg = f"deltaflow at {self.url} refused the API key: {text}"
            return AuthenticationError(msg, status, body)
        kind = NotFound if status == 404 else APIError
        return kind(f"HTTP {status}: {text}", status, body)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of a successful answer (None for an empty one)."""
        response = self.send(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ServiceUnavailable(
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

    def resolve(self, prefix: str, kind: str = "job") -> str:
        """A full job (batch, key) id from the short one the lists show (or from a full id)."""
        if len(prefix) == UUID_LENGTH:
            return prefix
        plural = {"job": "jobs", "batch": "batches", "key": "keys"}[kind]
        ids = (item["id"] for item in self.pages(f"/v1/{plural}"))
        found = [i for i in ids if i.startswith(prefix.lower())]
        if not found:
            raise NotFound(f"no {kind} id starts with {prefix!r}", 404)
        if len(found) > 1:
            raise APIError(f"{prefix!r} matches {len(found)} {plural}; give more of the id", 409)
        return found[0]


def _problem(response: httpx.Response) -> tuple[Any, str]:
    """(the JSON body or None, the API's `message` — else whatever the body says — on one line)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        text = body.get("message") or body.get("detail") or response.reason_phrase
    else:
        text = response.text.strip() or response.reason_phrase
    return body, " ".join(str(text).split())
