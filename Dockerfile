# syntax=docker/dockerfile:1
# Every service's image: `fluid serve $SERVICE` on port 50051. Build from the repository root
# (the uv workspace is the build context), naming the service:
#   docker build --build-arg SERVICE=dispatcher -t fluid-dispatcher:dev .
# or `make images` for every service. SERVICE is the directory under services/, the service's
# `fluid.services` entry point and, after `fluid-`, its package.
# The images differ only in that name. What to know about some of them:
# - cpu-runner: with FLUID_CPU_BACKEND=kubernetes each task Job runs this image too
#   (python -m fluid_cpu_runner.child), so it must hold the task modules.
# - io-worker: the worker imports FLUID_TASK_MODULES: build FROM this image to add your tasks.
# - history: with no FLUID_DATABASE_URL it would write SQLite under /app/.fluid, which is not
#   writable here: point it at PostgreSQL. `fluid history migrate` runs from the same image.
# - gateway: serves its HTTP API on FLUID_HTTP_PORT (8080) too, on FLUID_HTTP_HOST, else
#   FLUID_HOST (0.0.0.0 below); its port 50051 answers gRPC health only. 8080 is not in EXPOSE,
#   which is one line for every image: publish it when running it (docker run -p 8080:8080).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- builder: a virtualenv with the service, the fluid CLI and their locked dependencies.
FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
# Compiled now, since the runtime's root filesystem is read-only; copied, not hard-linked
# from the cache mount, which is gone after the build; the image's Python, never a download.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/fluid
WORKDIR /src
# Declared only here: a build argument in scope is part of every later RUN's cache key, so the
# layers above are built once and shared by all the services' images.
ARG SERVICE
# Third-party dependencies first, from the lock alone: this layer survives code changes.
# fluid-cli is synced with the service because the entry point is `fluid serve`; the
# service does not depend on the CLI (the CLI discovers services), so it is named here.
# The first use of SERVICE stops a build that did not name one.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-workspace \
        --package "fluid-${SERVICE:?pass --build-arg SERVICE=<service>}" --package fluid-cli
COPY . .
# Non-editable: the workspace packages are installed into the virtualenv, so the runtime
# stage needs the virtualenv and not the sources.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "fluid-${SERVICE}" --package fluid-cli

# -- runtime: the virtualenv on the same slim Python, as a non-root user.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 fluid \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin fluid
COPY --from=builder /opt/fluid /opt/fluid
ARG SERVICE
# PYTHONPATH=/app: an image built FROM this one adds its task modules with
# `COPY mytasks/ /app/mytasks/` and FLUID_TASK_MODULES=mytasks. FLUID_HOST: reachable from
# outside the container (the SDK's default is loopback). FLUID_SERVICE: what the entry
# point serves.
ENV PATH=/opt/fluid/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLUID_HOST=0.0.0.0 \
    FLUID_PORT=50051 \
    FLUID_SERVICE=${SERVICE}
WORKDIR /app
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051
# A shell only because an exec-form entry point expands no variables: it execs fluid, which
# stays PID 1 and gets the signals, and passes on the container's arguments (a Pod's args).
ENTRYPOINT ["/bin/sh", "-c", "exec fluid serve \"$FLUID_SERVICE\" \"$@\"", "fluid"]
