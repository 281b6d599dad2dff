"""The client's exceptions. Each message is one sentence a user can act on: the API's own
sentence (naming the field) for a refused request, the URL for a service that did not answer."""

from __future__ import annotations

from typing import Any


class DeltaflowError(Exception):
    """Every failure the client reports."""


class APIError(DeltaflowError):
    """The service answered 4xx or 5xx. `status` is the HTTP status, `body` the problem JSON
    (`message`, and for a 422 `errors`: each with its `loc`), when the service sent one."""

    def __init__(self, message: str, status: int, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthenticationError(APIError):
    """401: no API key where one is needed, or a key the service refused."""


class NotFound(APIError):
    """404: no such job, batch, data set or epoch for this key."""


class ServiceUnavailable(DeltaflowError):
    """No answer: the URL is wrong, the service is down, or it did not answer in time."""


class JobFailed(DeltaflowError):
    """`Job.wait()` saw the job end as failed; the message is the worker's error."""
