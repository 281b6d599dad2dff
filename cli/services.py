"""The processes of a deltaflow service on one machine: API, worker(s) and reaper.

`deltaflow up` and `deltaflow demo` run a Stack; the end-to-end tests do too. Each process is a
real subprocess configured only through DELTAFLOW_* environment variables.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

STDERR_FD = 2


class ServiceError(RuntimeError):
    pass


class Stack:
    """bootstrap → api + workers + reaper; `stop()` ends them all (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        stdout_to_stderr: bool = False,
    ) -> None:
        self.host, self.port, self.workers = host, port, workers
        # Keeps the children's banners and logs out of a stdout that carries JSON (`up --json`).
        self.stdout_to_stderr = stdout_to_stderr
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env.setdefault("OPENBLAS_NUM_THREADS", self.env.get("DELTAFLOW_BLAS_THREADS", "1"))
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def auth_required(self) -> bool:
        """What the children will read as settings.auth (env names are case-insensitive)."""
        auth = [v for k, v in self.env.items() if k.upper() == "DELTAFLOW_AUTH"]
        return bool(auth) and auth[-1] == "required"

    def check_exposure(self) -> None:
        """Without auth anyone who reaches the port may read and delete every job, so an
        unauthenticated stack only ever listens on the loopback interface."""
        if not self.auth_required and not is_loopback(self.host):
            raise ServiceError(
                f"auth is off, so deltaflow will not listen on {self.host}: set "
                "DELTAFLOW_AUTH=required to serve other machines, or use 127.0.0.1"
            )

    def commands(self) -> dict[str, list[str]]:
        py = sys.executable
        api = [py, "-m", "uvicorn", "api.app:create_app", "--factory"]
        api += ["--host", self.host, "--port", str(self.port), "--log-level", "warning"]
        cmds = {"api": api, "reaper": [py, "-m", "worker.reaper"]}
        for i in range(1, self.workers + 1):
            cmds[f"worker-{i}"] = worker_command(f"deltaflow-{i}")
        return cmds

    def start(self, wait: float = 60.0) -> Stack:
        self.check_exposure()
        # Its stderr is kept for the CalledProcessError: a database it cannot use is one
        # sentence there, which `up` and `demo` show as their error line (cli/local.py).
        subprocess.run(
            [sys.executable, "-m", "worker.bootstrap"],
            env=self.env,
            check=True,
            timeout=120,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in self.commands().items():
            self.start_process(name, argv)
        self.wait_ready(wait)
        return self

    def start_process(self, name: str, argv: list[str]) -> subprocess.Popen:
        out = STDERR_FD if self.stdout_to_stderr else None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 — kept by the child
        proc = subprocess.Popen(
            argv, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None
        )
        self.processes[name] = proc
        return proc

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # One client for the loop: each httpx.get() builds a client (and its TLS context),
        # tens of ms of CPU, ten times a second, taken from the processes starting up.
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                for name, proc in self.processes.items():
                    if proc.poll() is not None:
                        raise ServiceError(
                            f"{name} exited with code {proc.returncode} while starting"
                        )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise ServiceError(f"the API at {self.url} was not ready within {timeout:.0f} s")

    def stop(self, grace: float = 15.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def is_loopback(host: str) -> bool:
    """True for the names and addresses only this machine can reach (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now, for a Stack of one's own (tests, benchmarks): the
    kernel picks it, so concurrent callers get different ones."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def worker_command(name: str, concurrency: int = 1) -> list[str]:
    """A Celery worker on the deltaflow queue. Mingle, gossip and heartbeats need broadcast,
    which the embedded broker has not, and deltaflow never needs."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
        "--loglevel=INFO", f"--concurrency={concurrency}", "-Q", "deltaflow", "-n", f"{name}@%h",
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ]  # fmt: skip
