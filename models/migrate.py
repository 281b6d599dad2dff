"""Run Alembic from the installed packages: `upgrade(url)` brings a database to the latest
revision.

The Alembic configuration is built here, in code: the scripts are the `migrations` package,
found through importlib.resources wherever deltaflow is installed, so no alembic.ini and no
checkout is needed at run time (alembic.ini is only for a developer's `alembic` command).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory


def script_location() -> str:
    """The installed `migrations` package's directory (a wheel installs it as plain files,
    which is what Alembic reads)."""
    return str(files("migrations"))


def alembic_config(url: str | None = None) -> Config:
    """A Config with no file behind it: Alembic leaves logging alone (env.py configures it only
    from an ini file), so migrating inside a service or a command prints nothing."""
    config = Config()
    # Config options go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", script_location().replace("%", "%%"))
    config.attributes["url"] = url
    return config


@cache
def script_directory() -> ScriptDirectory:
    """The revisions this deltaflow knows (read once per process: they ship with the code)."""
    return ScriptDirectory.from_config(alembic_config())


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
