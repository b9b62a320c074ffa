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

# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh
start_serve "$VENV/bin/python" "$LOG" --ak "$AK" --sk "$SK" --token "$TOKEN"

status=0
timeout 300 "$VENV/bin/python" scripts/sdk_test.py --endpoint "http://127.0.0.1:$PORT" --ak "$AK" --sk "$SK" "$@" \
    || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- last lines of $LOG" >&2
    tail -n 30 "$LOG" >&2 || true
fi
exit "$status"
