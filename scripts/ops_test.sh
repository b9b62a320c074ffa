#!/usr/bin/env bash
# Operating `lbsim proxy` and `lbsim serve` as an operator would (issue 20): SIGTERM drains with
# requests in flight and none is lost; SIGHUP reloads under load with no failed request, and a
# bad file keeps the running configuration; /metrics parses with Prometheus' own Python parser
# and agrees with the client's counts; --log-format json gives one JSON object per line.
#
#   bash scripts/ops_test.sh
#
# Makes a venv (target/ops-venv, or $OPS_VENV) with scripts/ops-requirements.txt, builds
# target/release/lbsim (or uses $LBSIM_BIN) and runs scripts/ops_test.py. Loopback only; every
# wait is bounded; the exit status is the test's.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${OPS_VENV:-target/ops-venv}"
BIN="${LBSIM_BIN:-target/release/lbsim}"

if [ ! -x "$VENV/bin/python" ]; then
    timeout 120 python3 -m venv "$VENV"
fi
timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/ops-requirements.txt

if [ -z "${LBSIM_BIN:-}" ]; then
    timeout 1800 cargo build --release --bin lbsim
fi

timeout 300 "$VENV/bin/python" scripts/ops_test.py --lbsim "$BIN" "$@"
