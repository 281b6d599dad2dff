"""deltaflow installs anywhere: the wheel, installed (not editable) into a fresh virtual
environment outside the checkout, runs `deltaflow demo`, `deltaflow up` and the reaper from an
empty directory — migrations included, from the installed `migrations` package.

Cheap enough for every run: the wheel is built without build isolation, and pip installs the
dependencies from its cache (warm after `make`): about 35 s on an idle 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import httpx
import pytest

from cli.services import free_port
from models.migrate import script_directory
from tests.cli.test_up_cli import read_until

ROOT = Path(__file__).resolve().parent.parent
# What a source tree holds beside the project's own files: never part of what is built.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "venv", "var", "build", "dist", "*.egg-info", "__pycache__", "*.py[cod]",
    ".*_cache", ".hypothesis", "tests", "bench", "docs",
)  # fmt: skip
TOP_LEVEL = ["api", "backprop", "cli", "migrations", "models", "settings", "worker"]
# One xdist process runs the module, and its fixtures live for the session (that process may run
# other modules between these tests), so the environment is built and installed once.
pytestmark = pytest.mark.xdist_group("install")


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with deltaflow's wheel installed in it, outside the checkout.
    The sources are copied first: setuptools leaves build/ behind where it builds, and a stale
    build/ in the checkout would put deleted modules into later wheels."""
    tmp = tmp_path_factory.mktemp("install")
    shutil.copytree(ROOT, tmp / "src", ignore=NOT_SOURCES)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    wheel = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", tmp / "src"]
    subprocess.run(wheel, check=True, timeout=120)
    (built,) = (tmp / "dist").glob("deltaflow-*.whl")
    # No pip inside: the checkout's pip installs into it (--python), which saves a bootstrap.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp / "venv"], check=True)
    python = tmp / "venv" / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", built], check=True, timeout=300)
    return tmp / "venv"


@pytest.fixture(scope="session")
def place(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An empty working directory, and an environment that points deltaflow's database
    elsewhere and lets nothing of the checkout or the test run's settings through."""
    tmp = tmp_path_factory.mktemp("elsewhere")
    (tmp / "empty").mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DELTAFLOW_") and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env["DELTAFLOW_DATABASE_URL"] = f"sqlite:///{tmp}/data/deltaflow.db"
    env["DELTAFLOW_FLUSH_INTERVAL"] = "0.2"
    return {"cwd": tmp / "empty", "env": env, "data": tmp / "data"}


def test_the_installed_packages_are_imported_not_the_checkout(venv: Path, place: dict) -> None:
    probe = "import importlib, json; print(json.dumps({n: importlib.import_module(n).__file__ "
    probe += f"for n in {TOP_LEVEL!r}}}))"
    argv = [venv / "bin" / "python", "-c", probe]
    done = subprocess.run(
        argv, cwd=place["cwd"], env=place["env"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    site = Path(sysconfig.get_path("purelib", vars={"base": venv, "platbase": venv}))
    for name, file in json.loads(done.stdout).items():
        assert Path(file).is_relative_to(site), (name, file)
        assert not Path(file).is_relative_to(ROOT), (name, file)
    revisions = {p.name for p in (site / "migrations" / "versions").glob("*.py")}
    assert {Path(s.path).name for s in script_directory().walk_revisions()} <= revisions
    assert (site / "migrations" / "script.py.mako").is_file()


def test_demo_and_up_run_from_an_empty_directory(venv: Path, place: dict) -> None:
    """Both at once, `up` on a database of its own, so that one's start and stop (seconds of
    waiting each) overlap the other's: the demo trains the seed's example, up serves and is
    ready."""
    deltaflow = venv / "bin" / "deltaflow"
    up_env = place["env"] | {"DELTAFLOW_DATABASE_URL": f"sqlite:///{place['data']}/up/up.db"}
    up = subprocess.Popen(
        [deltaflow, "up", "--port", str(free_port()), "--json"],
        cwd=place["cwd"],
        env=up_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    demo_argv = [deltaflow, "demo", "--epochs", "200", "--port", str(free_port()), "--json"]
    out, err = place["cwd"].parent / "demo.out", place["cwd"].parent / "demo.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        demo = subprocess.Popen(
            demo_argv, cwd=place["cwd"], env=place["env"], stdout=stdout, stderr=stderr
        )
        try:
            record = json.loads(read_until(up, "{")[0])
            ready = httpx.get(f"{record['url']}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
            assert str(place["data"] / "up" / "up.db") in record["database"]
        finally:
            up.send_signal(signal.SIGTERM)  # up stops while the demo goes on
            demo.wait(timeout=180)
            _, up_err = up.communicate(timeout=60)
    assert up.returncode == 0, up_err
    assert demo.returncode == 0, err.read_text()
    assert json.loads(out.read_text())["job"]["status"] == "succeeded"
    assert list(place["cwd"].iterdir()) == []  # everything went where the settings said
    assert (place["data"] / "deltaflow.db").is_file()


def test_bootstrap_then_the_reaper(venv: Path, place: dict) -> None:
    """What docker-compose.yml runs: `python -m worker.bootstrap` (its one-shot migrate
    service) prepares a database of its own, then `python -m worker.reaper` starts there and
    stops cleanly on SIGTERM."""
    env = place["env"] | {"DELTAFLOW_DATABASE_URL": f"sqlite:///{place['data']}/reaper/r.db"}
    python = venv / "bin" / "python"
    boot = subprocess.run(
        [python, "-m", "worker.bootstrap"],
        cwd=place["cwd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (boot.returncode, boot.stderr) == (0, ""), boot.stderr
    reaper = subprocess.Popen(
        [python, "-m", "worker.reaper"],
        cwd=place["cwd"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    hung = threading.Timer(60, reaper.kill)  # readline() has no timeout of its own
    hung.start()
    try:
        started = reaper.stderr.readline()
        assert "a pass every" in started, started + reaper.stderr.read()
    finally:
        hung.cancel()
        reaper.send_signal(signal.SIGTERM)
        _, rest = reaper.communicate(timeout=30)
    assert reaper.returncode == 0, rest
