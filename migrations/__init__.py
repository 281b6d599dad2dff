"""Alembic's environment (env.py), revision template and revisions (versions/), shipped inside
the installed packages: models/migrate.py points Alembic here through importlib.resources, so
migrations run wherever deltaflow is installed, without the checkout or alembic.ini."""
