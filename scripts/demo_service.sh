#!/usr/bin/env bash
# The service half of `make demo`: serve the demo dataset on embedded Ray + SQLite,
# submit the trained artifact through the SDK, stream its progress, print the report,
# then stop the service (KEEP=1 leaves it running so the job can be looked at).
# The port is DEMO_PORT if set (refused in one line if busy), else the first free one from
# 8765; the API key is new each run, so answering it proves the server is the one started.
set -euo pipefail

DEMO_DIR=${DEMO_DIR:-build/demo}
GOLF=${GOLF:-.venv/bin/golf}
PYTHON=${PYTHON:-.venv/bin/python}

free_port() { # the first port from $1 that nothing listens on (within 100)
    "${PYTHON}" - "$1" << 'EOF'
import socket, sys
start = int(sys.argv[1])
for port in range(start, start + 100):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
else:
    sys.exit(f"error: no free port in {start}-{start + 99}; set DEMO_PORT")
EOF
}

if [[ -n "${DEMO_PORT:-}" ]]; then
    PORT=${DEMO_PORT}
    if [[ "$(free_port "${PORT}")" != "${PORT}" ]]; then
        echo "error: port ${PORT} on 127.0.0.1 is in use; unset DEMO_PORT or pick another" >&2
        exit 2
    fi
else
    PORT=$(free_port 8765)
fi
export GOLF_SERVER="http://127.0.0.1:${PORT}"
GOLF_API_KEY="demo-$("${PYTHON}" -c 'import secrets; print(secrets.token_hex(8))')"
export GOLF_API_KEY

mkdir -p "${DEMO_DIR}/state"
echo "${GOLF_API_KEY} demo admin" > "${DEMO_DIR}/keys.txt"
echo "starting the service at ${GOLF_SERVER} (log: ${DEMO_DIR}/serve.log); dashboard: ${GOLF_SERVER}/ with API key ${GOLF_API_KEY}"
"${GOLF}" serve --port "${PORT}" --data-root "${DEMO_DIR}/datasets" \
    --state-dir "${DEMO_DIR}/state" --api-keys "${DEMO_DIR}/keys.txt" --workers 2 \
    > "${DEMO_DIR}/serve.log" 2>&1 &
SERVER=$!
stop() { [[ -n "${KEEP:-}" ]] || kill "${SERVER}" 2> /dev/null || true; }
trap stop EXIT

# Ours answers this run's key with the demo dataset; anything else gets no further.
ours() {
    "${PYTHON}" - "${GOLF_SERVER}" "${GOLF_API_KEY}" 2> /dev/null << 'EOF'
import sys, httpx
r = httpx.get(sys.argv[1] + "/v1/datasets", headers={"Authorization": f"Bearer {sys.argv[2]}"})
r.raise_for_status()
sys.exit(0 if any(d["name"] == "demo" for d in r.json()["datasets"]) else 1)
EOF
}
for i in $(seq 180); do
    ours && break
    kill -0 "${SERVER}" 2> /dev/null || { cat "${DEMO_DIR}/serve.log"; exit 1; }
    if [[ ${i} == 180 ]]; then
        echo "error: no answer from the service at ${GOLF_SERVER} in 180 s; see ${DEMO_DIR}/serve.log" >&2
        exit 1
    fi
    sleep 1
done

"${GOLF}" submit "${DEMO_DIR}/tiny.golf" --dataset demo --wait \
    --protocol plain --protocol sliding --protocol slot --protocol slot-causal \
    --seq-len 256 --stride 128

if [[ -n "${KEEP:-}" ]]; then
    echo "service still running (pid ${SERVER}) at ${GOLF_SERVER}, API key ${GOLF_API_KEY};" \
        "try: GOLF_SERVER=${GOLF_SERVER} GOLF_API_KEY=${GOLF_API_KEY} ${GOLF} jobs"
fi
