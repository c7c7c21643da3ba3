# syntax=docker/dockerfile:1
# golf-eval GPU worker: a Ray node whose GPUs run the evaluation actors (workers/pool.py).
# Build context: the repository root (see docker/compose.yaml), e.g.
#   docker build -f docker/worker.Dockerfile --build-arg FLASH_ATTN=1 -t golf-eval/worker .
#
# Build arguments:
#   FLASH_ATTN=0|1   1 builds flash-attn against this image's torch (golf/models/attention.py uses it
#                    for CUDA tensors when importable); that build uses the CUDA devel image.
#   PYTHON_VERSION   must equal service.Dockerfile's: Ray checks the patch version.
#   CUDA_VERSION, TORCH_VERSION, TORCH_CUDA (PyTorch's wheel index: cu128 for CUDA 12.8).

ARG CUDA_VERSION=12.8.1
ARG PYTHON_VERSION=3.11.13
ARG FLASH_ATTN=0
ARG UV_VERSION=0.8.22

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------- base: Python + torch
# Ubuntu 22.04 ships no maintained Python 3.11 of the patch the service image runs, so uv
# installs that standalone CPython and a virtual environment in /opt.
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu22.04 AS base
ARG PYTHON_VERSION
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_NO_CACHE=1 \
    UV_CONSTRAINT=/opt/golf/constraints.txt \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
COPY docker/constraints.txt /opt/golf/constraints.txt
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --seed --python "${PYTHON_VERSION}" /opt/venv \
    && uv pip install "torch==${TORCH_VERSION}" \
        --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}"

# ------------------------------------------- flash-attn: one wheel in /wheels, or none
# Only the stage that FLASH_ATTN names is built (BuildKit skips unused stages), so the
# default build never pulls the CUDA devel image nor compiles anything.
FROM base AS flash-attn-0
RUN mkdir -p /wheels

FROM nvidia/cuda:${CUDA_VERSION}-cudnn-devel-ubuntu22.04 AS flash-attn-1
ARG FLASH_ATTN_VERSION=2.8.3
ARG MAX_JOBS=8
COPY --from=base /opt/python /opt/python
COPY --from=base /opt/venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH MAX_JOBS=${MAX_JOBS}
RUN python -m pip install --no-cache-dir packaging ninja psutil wheel setuptools \
    && python -m pip wheel --no-cache-dir --no-deps --no-build-isolation -w /wheels \
        "flash-attn==${FLASH_ATTN_VERSION}"

FROM flash-attn-${FLASH_ATTN} AS flash-attn

# ------------------------------------------------------------------------- the worker
FROM base
COPY --from=flash-attn /wheels /tmp/wheels
RUN if ls /tmp/wheels/*.whl >/dev/null 2>&1; then uv pip install /tmp/wheels/*.whl; fi \
    && rm -rf /tmp/wheels

COPY pyproject.toml README.md /opt/golf/src/
COPY golf /opt/golf/src/golf
COPY trainer /opt/golf/src/trainer
COPY service /opt/golf/src/service
COPY workers /opt/golf/src/workers
COPY clients /opt/golf/src/clients
RUN uv pip install "/opt/golf/src[service,gpu]" && rm -rf /opt/golf/src

RUN useradd --create-home --uid 10001 --user-group golf
USER golf
WORKDIR /home/golf

# The Ray head to join (host:port of its GCS); compose sets it to ray-head:6379.
ENV RAY_HEAD=ray-head:6379

# Healthy while the Ray cluster this node belongs to answers.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ray health-check --address "$RAY_HEAD"

# One Ray node per container offering every GPU it sees (RAY_NUM_GPUS overrides the count,
# e.g. to share a GPU); the actors are created by the service, the Ray driver.
ENTRYPOINT ["/bin/sh", "-c", "exec ray start --address=\"$RAY_HEAD\" --num-gpus=\"${RAY_NUM_GPUS:-$(python -c 'import torch; print(torch.cuda.device_count())')}\" --disable-usage-stats --block"]
