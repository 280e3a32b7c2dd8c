# The image of readme-to-cicd orchestration: one image for `r2c api` (the default command),
# `r2c worker` and the CLI. docs/container-image.md says how to build and run it.
#
#   docker build -t r2c .          then   docker run r2c  |  docker run r2c worker
#
# Without a package index, put wheels of every dependency (and of the build backend) in
# ./wheels, made with the base image's Python version: the build then takes them from there
# and asks no index. BASE must be a Debian-like image with python3 and its venv module.
ARG BASE=python:3.12-slim

# ----------------------------------------------------------------------------- build
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
SHELL ["/bin/sh", "-eu", "-c"]
WORKDIR /src
# The dependencies first, from pyproject.toml alone, into the venv the runtime copies: this
# layer (the big one) is rebuilt only when they change, not at each change of the code. The
# project itself is uninstalled at once: with no source yet it is an empty shell.
COPY pyproject.toml README.md LICENSE ./
COPY wheels/ wheels/
RUN if ls wheels/*.whl >/dev/null 2>&1; then offline=--no-index; else offline=; fi; \
    python3 -m venv /opt/r2c; \
    /opt/r2c/bin/pip install $offline --find-links wheels .; \
    /opt/r2c/bin/pip uninstall --yes readme-to-cicd-orchestrator
# Then our own wheel, from the source: the packages of pyproject.toml's packages.find.
COPY core/ core/
COPY workflows/ workflows/
COPY activities/ activities/
COPY workers/ workers/
COPY api/ api/
COPY cli/ cli/
RUN if ls wheels/*.whl >/dev/null 2>&1; then offline=--no-index; else offline=; fi; \
    /opt/r2c/bin/pip wheel $offline --no-deps --find-links wheels --wheel-dir /dist .

# ----------------------------------------------------------------------------- runtime
FROM ${BASE}
ENV PATH=/opt/r2c/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    R2C_CONFIG_DIR=/etc/r2c/config \
    R2C_HOME=/var/lib/r2c \
    R2C_HOST=0.0.0.0 \
    PORT=8080 \
    METRICS_PORT=9091 \
    R2C_WORKER_METRICS_PORT=9092
# A fixed numeric id: Kubernetes can check runAsNonRoot, and volumes can be chowned to it.
RUN groupadd --gid 10001 r2c \
    && useradd --uid 10001 --gid r2c --home-dir /var/lib/r2c --no-create-home \
       --shell /usr/sbin/nologin r2c \
    && install -d -o r2c -g r2c -m 0700 /var/lib/r2c
# Built wheels only: nothing is compiled here, and the runtime has no compiler.
COPY --from=build /opt/r2c /opt/r2c
COPY --from=build /dist/ /tmp/dist/
RUN /opt/r2c/bin/pip install --no-cache-dir --no-index --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist
COPY config /etc/r2c/config
# COPY keeps the context's modes: a checkout made under umask 077 has 0700 folders, which the
# image's user could not read (the settings would fail with "Permission denied").
RUN chmod -R a+rX,go-w /etc/r2c/config
USER 10001:10001
WORKDIR /var/lib/r2c
# The API, its metrics, the worker's Temporal SDK metrics.
EXPOSE 8080 9091 9092
# The API answers /health; a worker, its metrics endpoint (cli/container_healthcheck.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "cli.container_healthcheck"]
# Exec form: SIGTERM reaches r2c itself, which stops gracefully (the API finishes its
# requests, the worker its tasks, 10 s at most each) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["r2c"]
CMD ["api"]
