# syntax=docker/dockerfile:1
# One image for every deltaflow service (api, worker, reaper, migrate); docker-compose.yml picks
# the command. The default command runs the API.
FROM python:3.11-slim

# OPENBLAS_NUM_THREADS=1: results are bit-identical only for a fixed BLAS thread count, and one
# thread is as fast for small networks (FACTS.md); workers also pin it through threadpoolctl.
# PYTHONPATH: the top-level packages (api, models, worker, settings) run from /app whichever of
# them `pip install .` packages.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENBLAS_NUM_THREADS=1 \
    DELTAFLOW_BLAS_THREADS=1 \
    PYTHONPATH=/app

RUN groupadd --system --gid 10001 deltaflow \
    && useradd --system --uid 10001 --gid deltaflow --create-home --home-dir /home/deltaflow \
        --shell /usr/sbin/nologin deltaflow

WORKDIR /app
COPY . .
# The code stays owned by root (read-only for the service user); only var/, where the embedded
# SQLite database and broker would live, is writable.
RUN pip install . \
    && rm -rf build ./*.egg-info \
    && mkdir -p var \
    && chown deltaflow:deltaflow var

USER deltaflow
EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
