#!/usr/bin/env bash
# Huawei Cloud's own Python SDKs against `lbsim serve` (issue 6, "real clients").
#
#   bash scripts/sdk_test.sh [--verbose]
#
# Makes a venv (target/sdk-venv, or $SDK_VENV) with the pinned SDKs of scripts/sdk-requirements.txt,
# builds target/release/lbsim (or uses $LBSIM_BIN), starts `lbsim serve` on a free loopback port
# with an AK/SK pair, runs scripts/sdk_test.py against it and stops the server. Every step has a
# time limit; the exit status is the test's.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${SDK_VENV:-target/sdk-venv}"
BIN="${LBSIM_BIN:-target/release/lbsim}"
AK="HPUASDKTEST0000000001"
SK="sdk-test-secret-$(date +%s)-$$"
TOKEN="sdk-test-token-$$"
LOG="target/sdk-test-serve.log"

if [ ! -x "$VENV/bin/python" ]; then
    timeout 120 python3 -m venv "$VENV"
fi
timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/sdk-requirements.txt

if [ -z "${LBSIM_BIN:-}" ]; then
    timeout 1800 cargo build --release --bin lbsim
fi

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$BIN" serve --listen "127.0.0.1:$PORT" --ak "$AK" --sk "$SK" --token "$TOKEN" >"$LOG" 2>&1 &
SERVER=$!
stop_server() {
    if kill -0 "$SERVER" 2>/dev/null; then
        kill "$SERVER" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER" 2>/dev/null || true
    fi
    wait "$SERVER" 2>/dev/null || true
}
trap stop_server EXIT

# Wait (at most 30 s) until the server accepts connections.
"$VENV/bin/python" - "$PORT" "$SERVER" <<'EOF'
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit("lbsim serve exited before it listened; see target/sdk-test-serve.log")
        if time.monotonic() > deadline:
            sys.exit("lbsim serve did not listen within 30 s")
        time.sleep(0.1)
EOF

status=0
timeout 300 "$VENV/bin/python" scripts/sdk_test.py --endpoint "http://127.0.0.1:$PORT" --ak "$AK" --sk "$SK" "$@" \
    || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- last lines of $LOG" >&2
    tail -n 30 "$LOG" >&2 || true
fi
exit "$status"
