# syntax=docker/dockerfile:1
# golf-eval service: the HTTP API, the dashboard and the Ray driver. CPU only; the
# evaluation itself runs on the GPU workers (docker/worker.Dockerfile).
# Build context: the repository root (see docker/compose.yaml), e.g.
#   docker build -f docker/service.Dockerfile -t golf-eval/service .
# This image also runs the Ray head (compose overrides its entrypoint): see compose.yaml.

# Same default as worker.Dockerfile: Ray needs driver and cluster on one Python patch.
ARG PYTHON_VERSION=3.11.13
FROM python:${PYTHON_VERSION}-slim

ARG TORCH_VERSION=2.13.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/opt/golf/constraints.txt

WORKDIR /opt/golf
COPY docker/constraints.txt /opt/golf/constraints.txt

# CPU wheels of torch first: its own layer, cached across changes to the project.
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md /opt/golf/src/
COPY golf /opt/golf/src/golf
COPY trainer /opt/golf/src/trainer
COPY service /opt/golf/src/service
COPY workers /opt/golf/src/workers
COPY clients /opt/golf/src/clients
RUN pip install "/opt/golf/src[service]" && rm -rf /opt/golf/src

COPY --chmod=0755 docker/service-entrypoint.sh /usr/local/bin/golf-service-entrypoint

# Non-root. Compose mounts datasets on /data, keys on /etc/golf, volumes on /state and
# /state/artifacts: a fresh named volume takes the owner of the folder it is mounted on.
RUN useradd --create-home --uid 10001 --user-group golf \
    && mkdir -p /data /state/artifacts /etc/golf \
    && chown -R golf:golf /state
USER golf
WORKDIR /home/golf

EXPOSE 8000

# Healthy when /healthz answers {"ok": true}: the database and Ray are both up.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import json, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4); sys.exit(0 if json.load(r).get('ok') else 1)"]

# The entrypoint joins the Ray cluster named by RAY_ADDRESS (host:port of the head) as a
# node without resources, then runs this command with `--ray-address $RAY_ADDRESS`;
# without RAY_ADDRESS the service starts an embedded single-node Ray (docker run alone).
ENTRYPOINT ["golf-service-entrypoint"]
CMD ["golf", "serve", "--host", "0.0.0.0", "--port", "8000", "--data-root", "/data", \
     "--state-dir", "/state", "--api-keys", "/etc/golf/keys.txt"]
