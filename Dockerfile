# syntax=docker/dockerfile:1
# roombot's production image: `docker build -t roombot .`
#
# Two stages on the same pinned slim Python image. The first builds a virtual environment in
# /opt/roombot (dependencies in their own layer, keyed on pyproject.toml alone, so a code change
# rebuilds in seconds); the second copies only that environment, runs as an unprivileged user
# and has no compiler, no pip cache and no source tree. `scripts/check` lints this file with
# hadolint; tests/deploy/test_image.py checks what it promises.

# -- build: a virtual environment with roombot and its dependencies -------------------------------
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/roombot \
    PATH=/opt/roombot/bin:$PATH

WORKDIR /src
RUN python -m venv /opt/roombot

# The dependencies, from pyproject.toml only: this layer is rebuilt when they change, not when
# the code does. setuptools is the build backend, installed here so the package itself builds
# without fetching it again.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "setuptools>=77"

# The package itself (README.md and LICENSE are part of its metadata), byte-compiled here
# because the final image runs with a read-only root filesystem.
COPY README.md LICENSE MANIFEST.in ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip install --no-deps --no-build-isolation . \
    && python -m compileall -q /opt/roombot/lib

# -- the image: the environment, an unprivileged user, and `roombot serve` -----------------------
FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="roombot" \
      org.opencontainers.image.description="Slack chat-ops bot for Tencent RTC Room Engine rooms" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary"

# JSON logs by default (one object a line, for a log shipper); output unbuffered so each line
# leaves the container when it is written. PORT is where `serve` listens and what the
# HEALTHCHECK asks: change it rather than `--port`.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/roombot/bin:$PATH \
    ROOMBOT_LOG_FORMAT=json \
    PORT=3000

# A fixed numeric UID, so Kubernetes' runAsNonRoot can verify it. /var/lib/roombot is the
# working directory and the only place roombot writes, and only with the SQLite default
# (ROOMBOT_AUDIT_DB=roombot-audit.sqlite3): mount a volume there, or use PostgreSQL.
RUN groupadd --system --gid 10001 roombot \
    && useradd --system --uid 10001 --gid roombot --home-dir /var/lib/roombot --no-create-home \
       --shell /usr/sbin/nologin roombot \
    && install -d -o roombot -g roombot -m 0750 /var/lib/roombot

COPY --from=build /opt/roombot /opt/roombot

WORKDIR /var/lib/roombot
USER 10001:10001
EXPOSE 3000

# /healthz answers while the process and its event loop are alive. The slim image has no curl:
# the standard library asks instead (urlopen raises on anything but a 2xx).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=2)"]

# `roombot serve` by default; any other subcommand as arguments (`docker run IMAGE check`,
# `... serve --http`). roombot is PID 1 and handles SIGTERM itself: it stops taking requests,
# drains for up to 25 s, then exits (give it 30 s or more: `docker stop -t 40`).
ENTRYPOINT ["roombot"]
CMD ["serve"]
