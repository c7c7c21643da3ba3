#!/usr/bin/env bash
# The service half of `make demo`: serve the demo dataset on embedded Ray + SQLite,
# submit the trained artifact through the SDK, stream its progress, print the report,
# then stop the service (KEEP=1 leaves it running so the job can be looked at).
set -euo pipefail

DEMO_DIR=${DEMO_DIR:-build/demo}
PORT=${DEMO_PORT:-8765}
GOLF=${GOLF:-.venv/bin/golf}
export GOLF_SERVER="http://127.0.0.1:${PORT}"
export GOLF_API_KEY=demo-key

mkdir -p "${DEMO_DIR}/state"
echo "demo-key demo admin" > "${DEMO_DIR}/keys.txt"
"${GOLF}" serve --port "${PORT}" --data-root "${DEMO_DIR}/datasets" \
    --state-dir "${DEMO_DIR}/state" --api-keys "${DEMO_DIR}/keys.txt" --workers 2 \
    > "${DEMO_DIR}/serve.log" 2>&1 &
SERVER=$!
stop() { [[ -n "${KEEP:-}" ]] || kill "${SERVER}" 2> /dev/null || true; }
trap stop EXIT

for _ in $(seq 120); do
    if .venv/bin/python -c "import httpx, sys; httpx.get(sys.argv[1] + '/healthz').raise_for_status()" \
        "${GOLF_SERVER}" 2> /dev/null; then
        break
    fi
    kill -0 "${SERVER}" 2> /dev/null || { cat "${DEMO_DIR}/serve.log"; exit 1; }
    sleep 1
done

"${GOLF}" submit "${DEMO_DIR}/tiny.golf" --dataset demo --wait \
    --protocol plain --protocol sliding --protocol slot --protocol slot-causal \
    --seq-len 256 --stride 128

if [[ -n "${KEEP:-}" ]]; then
    echo "service still running (pid ${SERVER}) at ${GOLF_SERVER}, API key demo-key;" \
        "try: GOLF_SERVER=${GOLF_SERVER} GOLF_API_KEY=demo-key ${GOLF} jobs"
fi
