"""The worker accepts JSON only: a pickled message would run code when loaded, so it must be
refused before it is loaded."""

from __future__ import annotations

import time

from cli.services import Stack, free_port
from settings import Settings
from tests.factories import HTTP, XOR_JOB
from worker.celery_app import QUEUE, TASK_TRAIN, make_celery


class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_message_is_refused_and_nothing_runs(tmp_path):
    url = f"sqlite:///{tmp_path}/deltaflow.db"
    stack = Stack(port=free_port(), env={"DELTAFLOW_DATABASE_URL": url}, log_dir=tmp_path / "logs")
    stack.start()
    try:
        marker = tmp_path / "unpickled"
        app = make_celery(Settings(database_url=url))
        app.send_task(TASK_TRAIN, args=[Payload(str(marker))], serializer="pickle", queue=QUEUE)
        # A job published after it is trained: the worker went past the pickled message.
        job = HTTP.post(f"{stack.url}/v1/jobs", json=XOR_JOB | {"epochs": 50}).json()
        deadline = time.monotonic() + 60
        while HTTP.get(f"{stack.url}/v1/jobs/{job['id']}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the worker did not get past the message"
            time.sleep(0.1)
    finally:
        stack.stop()
    assert not marker.exists()
    log = (tmp_path / "logs" / "worker-1.log").read_text()
    assert "Refusing to deserialize untrusted content of type pickle" in log
