#!/usr/bin/env bash
# Property-based tests of the control API (issue 7): schemathesis against the OpenAPI document
# that a running `lbsim serve` serves at /openapi.json.
#
#   bash scripts/schemathesis.sh [--max-examples N] [--max-time S] [other schemathesis options]
#
# Makes a venv (target/schemathesis-venv, or $SCHEMATHESIS_VENV) with a pinned schemathesis,
# builds target/release/lbsim (or uses $LBSIM_BIN), starts `lbsim serve` on a free loopback port
# with a token, and runs every phase (examples, coverage, fuzzing, stateful) with the checks
# below. The server's log is target/schemathesis-serve.log; failures are reproduced in
# target/schemathesis-report. Every step has a time limit; the exit status is schemathesis's.
#
# Checks: no 5xx, status codes, content types, headers and bodies as the document says, bad
# data and missing auth rejected, unknown methods answered 405. Left out: the checks that
# assume a document states every rule (positive_data_acceptance: a body the schema allows may
# still break a cross-field rule such as timeout < time_interval, and must get 400) and the
# resource-lifecycle checks whose ids schemathesis cannot link through the cloud APIs' bodies.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${SCHEMATHESIS_VENV:-target/schemathesis-venv}"
BIN="${LBSIM_BIN:-target/release/lbsim}"
TOKEN="schemathesis-token-$$"
LOG="target/schemathesis-serve.log"

if [ ! -x "$VENV/bin/python" ]; then
    timeout 120 python3 -m venv "$VENV"
fi
timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"

if [ -z "${LBSIM_BIN:-}" ]; then
    timeout 1800 cargo build --release --bin lbsim
fi

# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh
# Jobs finish at once, so that the stateful phase sees them complete.
start_serve "$VENV/bin/python" "$LOG" --token "$TOKEN" --job-duration 0 --log-level warn

CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance"
CHECKS="$CHECKS,response_schema_conformance,negative_data_rejection,missing_required_header"
CHECKS="$CHECKS,unsupported_method,ignored_auth"
status=0
timeout 900 "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" \
    --url "http://127.0.0.1:$PORT" -H "X-Auth-Token: $TOKEN" --checks "$CHECKS" \
    --workers 2 --seed 7 --max-examples 50 --request-timeout 10 --no-color \
    --report junit --report-dir target/schemathesis-report "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- last lines of $LOG" >&2
    tail -n 30 "$LOG" >&2 || true
fi
exit "$status"
