# Sourced by the scripts that drive a real `lbsim serve` (sdk_test.sh, schemathesis.sh).
#
#   start_serve PYTHON LOG ARGS...   starts `$BIN serve --listen 127.0.0.1:$PORT ARGS...` on a free
#                                    loopback port, sets PORT and SERVER, waits (at most 30 s)
#                                    until it accepts connections, and stops it on exit.

start_serve() {
    local python="$1" log="$2"
    shift 2
    PORT="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$BIN" serve --listen "127.0.0.1:$PORT" "$@" >"$log" 2>&1 &
    SERVER=$!
    trap stop_serve EXIT
    "$python" - "$PORT" "$SERVER" "$log" <<'PY'
import os, socket, sys, time
port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(f"lbsim serve exited before it listened; see {log}")
        if time.monotonic() > deadline:
            sys.exit("lbsim serve did not listen within 30 s")
        time.sleep(0.1)
PY
}

stop_serve() {
    if kill -0 "$SERVER" 2>/dev/null; then
        kill "$SERVER" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER" 2>/dev/null || true
    fi
    wait "$SERVER" 2>/dev/null || true
}
