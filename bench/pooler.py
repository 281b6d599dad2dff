"""PgBouncer for the benchmarks: Debian's `pgbouncer` started on a free port in transaction
mode in front of the local PostgreSQL (as docker-compose.yml runs it in production), and the
CPU time PostgreSQL's processes have used.

    apt-get install pgbouncer     # the bench starts its own; the packaged service may stay off
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from cli.services import free_port

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
POOL_SIZE = 20  # server connections per database: a few per core is what PostgreSQL runs best


class PgBouncer:
    """`with PgBouncer() as b:` a pooler on 127.0.0.1:b.port; `b.url(database)` reaches it."""

    def __init__(self, pool_size: int = POOL_SIZE) -> None:
        if not Path(BINARY).exists():
            raise SystemExit("pgbouncer is not installed: apt-get install pgbouncer")
        self.port, self.pool_size = free_port(), pool_size
        self._dir = tempfile.TemporaryDirectory(prefix="pgbouncer-")
        self._process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> PgBouncer:
        home = Path(self._dir.name)
        (home / "users.txt").write_text('"postgres" ""\n')
        (home / "pgbouncer.ini").write_text(
            "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {home}/users.txt\npool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 5000\n"
            f"ignore_startup_parameters = extra_float_digits\nlogfile = {home}/pgbouncer.log\n"
        )
        postgres = pwd.getpwnam("postgres")
        os.chown(home, postgres.pw_uid, postgres.pw_gid)
        for path in home.iterdir():
            os.chown(path, postgres.pw_uid, postgres.pw_gid)
        user = ["-u", "postgres"] if os.geteuid() == 0 else []  # it refuses to run as root
        self._process = subprocess.Popen([BINARY, *user, str(home / "pgbouncer.ini")])
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres").close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        self._dir.cleanup()


def postgres_cpu_seconds() -> float:
    """utime + stime of every process the postgres user runs (server and backends)."""
    uid, tick, total = pwd.getpwnam("postgres").pw_uid, os.sysconf("SC_CLK_TCK"), 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.stat().st_uid != uid or "pgbouncer" in (proc / "comm").read_text():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    return total / tick
