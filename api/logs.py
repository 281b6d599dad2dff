"""DELTAFLOW_LOG_FORMAT=json for the API process: one JSON object per line, uvicorn's lines too.

Uvicorn sets up its loggers before it builds the app, so the app swaps their formatters; the
fields are the workers' (worker/logs.py), without a job. The text format stays uvicorn's.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure(log_format: str) -> None:
    if log_format != "json":
        return
    root = logging.getLogger()
    if not root.handlers:  # deltaflow's own lines went to logging's last resort, as plain text
        root.addHandler(logging.StreamHandler())
    for name in ("", *UVICORN_LOGGERS):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(
                JsonFormatter(
                    ["levelname", "name", "process", "message"],
                    rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
                    timestamp="time",
                )
            )
