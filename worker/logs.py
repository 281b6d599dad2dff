"""Log lines as JSON objects (DELTAFLOW_LOG_FORMAT=json), each carrying the job it is about.

While a worker works on a job, its id and the attempt (the job_attempts row number) are bound
to a context variable; a filter on the handlers copies them into every record logged in that
context — Celery's own lines about the task included, as the task binds the job before
Celery logs "received … succeeded" around it. Celery's logging signals put the JSON formatter
and the filter on the handlers Celery sets up, before the pool processes are forked. The text
format (the default) stays as it was.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_job: ContextVar[dict[str, Any] | None] = ContextVar("deltaflow_job", default=None)


def bind_job(job_id: object) -> None:
    """Lines logged from now on in this context are about `job_id`."""
    _job.set({"job_id": str(job_id)})


def unbind_job() -> None:
    _job.set(None)


def bind_attempt(attempt: int) -> None:
    """The bound job's attempt, once the lease is taken; kept until the job is unbound."""
    bound = _job.get()
    if bound is not None:
        bound["attempt"] = attempt


@contextmanager
def job_context(job_id: object) -> Iterator[None]:
    """Bind `job_id` inside the block, unless the task already bound it: then what is bound
    inside (the attempt) lasts until the task unbinds it, after Celery's last line about it."""
    bound = _job.get()
    if bound is not None and bound["job_id"] == str(job_id):
        yield
        return
    token = _job.set({"job_id": str(job_id)})
    try:
        yield
    finally:
        _job.reset(token)


class JobFilter(logging.Filter):
    """Adds the bound job_id and attempt to each record (as handler filter, it sees the
    records of every logger, Celery's too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _job.get()
        if bound:
            record.__dict__.update(bound)
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        ["levelname", "name", "process", "message"],
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        timestamp="time",
    )


def use_json(logger: logging.Logger) -> None:
    """Make `logger`'s handlers write JSON lines with the job fields."""
    for handler in logger.handlers:
        handler.setFormatter(json_formatter())
        if not any(isinstance(f, JobFilter) for f in handler.filters):
            handler.addFilter(JobFilter())


def capture_early_warnings() -> None:
    """Warnings issued before Celery sets up logging (running as root, …) as JSON lines too:
    through logging, on a handler of their own until `end_early_capture`."""
    warnings = logging.getLogger("py.warnings")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    warnings.addHandler(handler)
    warnings.propagate = False
    logging.captureWarnings(True)


def end_early_capture() -> None:
    """Celery's handlers are set up: warnings go through them."""
    warnings = logging.getLogger("py.warnings")
    for handler in list(warnings.handlers):
        warnings.removeHandler(handler)
    warnings.propagate = True


def configure(log_format: str, text_format: str) -> None:
    """For processes that are not Celery workers (the reaper): INFO and up to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(text_format))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if log_format == "json":
        use_json(logging.getLogger())
