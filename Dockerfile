# A Stateless Hub node. Used by devnet/docker-compose.yml; also runs on its own:
#
#   docker build -t stateless-hub .
#   docker run --rm -p 2283:2283 -p 2282:2282 -v hub-data:/data stateless-hub
#
# The entrypoint is the `stateless` command, so any CLI command works in place of the default one
# (`docker run --rm -v hub-data:/data stateless-hub keys new --out /data/alice.key`). The node's data dir,
# /data, is a volume. Admin RPC answers loopback only: `docker exec <container> stateless admin ...`.

# --- build: install the package into a virtualenv with the Makefile's install commands ----------------
FROM python:3.11-slim AS build

# py-libp2p 0.8.1 pins fastecdsa 2.3.2, which PyPI ships as source only: it compiles against GMP.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential libgmp-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
# The Makefile's install commands, without `-e` and the dev extras: the image needs neither the source
# tree nor the test tools at run time (tests/unit/test_compose_file.py keeps the two in step). pip's
# cache stays behind in this stage.
RUN python3 -m venv .venv \
    && .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip \
    && .venv/bin/python -m pip install --quiet --disable-pip-version-check .

# --- runtime: the virtualenv and GMP, nothing else --------------------------------------------------------
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgmp10 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /data hub \
    && mkdir /data \
    && chown hub:hub /data

# Same path as in the build stage: a virtualenv's scripts name their interpreter by absolute path.
COPY --from=build /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1

USER hub
WORKDIR /data
# A new named volume starts as a copy of this directory, so it belongs to `hub` too.
VOLUME /data

# libp2p (gossip and sync), gRPC (clients, health), Prometheus metrics.
EXPOSE 2282 2283 2284

# The node shuts down cleanly on Ctrl-C (SIGINT). As PID 1 without a handler, Python would ignore
# Docker's default SIGTERM and be killed after the grace period instead.
STOPSIGNAL SIGINT

# The gRPC health service (devnet/healthcheck.py: exit 0 when SERVING); no grpcurl needed in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "devnet.healthcheck", "127.0.0.1:2283"]

ENTRYPOINT ["stateless"]
CMD ["node", "start", "--data-dir", "/data", "--network", "devnet", \
     "--rpc-host", "0.0.0.0", "--gossip-host", "0.0.0.0", "--metrics-host", "0.0.0.0", "--metrics-port", "2284"]
