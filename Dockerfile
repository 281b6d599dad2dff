# syntax=docker/dockerfile:1
# One image for every deltaflow service (api, worker, reaper, migrate); docker-compose.yml picks
# the command. The default command runs the API.

# The wheel is built in a stage of its own: the final image holds the installed packages only,
# never the sources, so every process imports what pip installed (migrations included).
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

# OPENBLAS_NUM_THREADS=1: results are bit-identical only for a fixed BLAS thread count, and one
# thread is as fast for small networks (FACTS.md); workers also pin it through threadpoolctl.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENBLAS_NUM_THREADS=1 \
    DELTAFLOW_BLAS_THREADS=1

RUN groupadd --system --gid 10001 deltaflow \
    && useradd --system --uid 10001 --gid deltaflow --create-home --home-dir /home/deltaflow \
        --shell /usr/sbin/nologin deltaflow

# The code, in site-packages, stays owned by root (read-only for the service user); only var/
# under the working directory, where the embedded SQLite database and broker would live, is
# writable. The working directory holds no sources, so nothing shadows the installed packages
# (uvicorn, celery -A and python -m all put it first on sys.path).
WORKDIR /srv/deltaflow
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install /wheels/*.whl \
    && mkdir var \
    && chown deltaflow:deltaflow var

USER deltaflow
EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
