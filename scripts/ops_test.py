"""Operating lbsim proxy and serve: drain, reload, /metrics, JSON logs (see ops_test.sh).

Each check prints one line; the first failure exits 1 with what was expected and what was seen.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

SCENARIO = """
name = "ops"
seed = 7
duration_s = 10
[traffic]
service_time_ms = {{ dist = "fixed", value = {service_ms} }}
request_timeout_ms = 5000
[channel]
name = "VPC_ops"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{members}]
"""

THREE = '{ host = "192.168.0.1", weight = 1 }, { host = "192.168.0.2", weight = 1 }, { host = "192.168.0.3", weight = 1 }'
FOUR = ('{ host = "192.168.0.1", weight = 5 }, { host = "192.168.0.2", weight = 1 }, '
        '{ host = "192.168.0.3", weight = 1 }, { host = "192.168.0.4", weight = 1 }')


def fail(what):
    print(f"FAIL: {what}", flush=True)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)
    print(f"ok: {what}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


class Proxy:
    """One `lbsim proxy` process serving a scenario file until it is signalled."""

    def __init__(self, lbsim, scenario_path, extra=()):
        self.port, self.admin = free_port(), free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [lbsim, "proxy", scenario_path, "--listen", f"127.0.0.1:{self.port}", "--admin",
             f"127.0.0.1:{self.admin}", "--log-format", "json", "--workers", "2", *extra],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail(f"lbsim proxy exited at start: {self.stderr()}")
            try:
                if get(self.admin, "/healthz", 1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        fail("lbsim proxy did not become healthy within 30 s")

    def metrics(self):
        status, text = get(self.admin, "/metrics")
        check(status == 200, "/metrics answers 200")
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, within=20):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail(f"lbsim proxy did not exit within {within} s of {sig.name}")


def total(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def client_load(port, count, statuses, stop=None):
    """`count` GETs on one keep-alive connection (or until `stop` is set), statuses appended."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while (stop is None and i < count) or (stop is not None and not stop.is_set() and i < count):
        try:
            c.request("GET", f"/load/{i}")
            r = c.getresponse()
            r.read()
            statuses.append(r.status)
        except OSError as e:
            statuses.append(f"error {e}")
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i += 1
    c.close()


def no_host(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /no-host HTTP/1.1\r\n\r\n")
        return s.recv(64).split(b" ")[1]


def metrics_and_reload(lbsim, workdir):
    path = os.path.join(workdir, "ops.toml")
    with open(path, "w") as f:
        f.write(SCENARIO.format(service_ms=2, members=THREE))
    p = Proxy(lbsim, path)

    statuses = []
    threads = [threading.Thread(target=client_load, args=(p.port, 100, statuses)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(statuses.count(200) == 300, f"300 requests answered 200 (saw {len(statuses)}, {set(statuses)})")
    check(all(no_host(p.port) == b"400" for _ in range(5)), "5 HTTP/1.1 requests without Host answered 400")

    m = p.metrics()
    ok = total(m, "lbsim_member_requests_total", outcome="ok")
    check(ok == 300, f"members' ok attempts = the client's 300 (metrics: {ok})")
    check(total(m, "lbsim_channel_requests_total", result="ok") == 300, "channel ok requests = 300")
    check(total(m, "lbsim_channel_requests_total", result="failed") == 5, "channel failed requests = 5")
    check(total(m, "lbsim_channel_failed_requests_total", reason="bad_request") == 5, "failed by reason bad_request = 5")
    check(total(m, "lbsim_channel_picks_total") == 300, "picks = 300")
    check(total(m, "lbsim_channel_picks_total", tier="primary") == 300, "all picks from the primary tier")
    for member in ("192.168.0.1:8080", "192.168.0.2:8080", "192.168.0.3:8080"):
        n = total(m, "lbsim_member_requests_total", member=member, outcome="ok")
        count = total(m, "lbsim_member_latency_seconds_count", member=member)
        inf = total(m, "lbsim_member_latency_seconds_bucket", member=member, le="+Inf")
        check(n == count == inf, f"{member}: histogram count {count} = +Inf bucket {inf} = ok attempts {n}")
        check(abs(n - 100) <= 2, f"{member}: {n} of 300 (equal weights, two workers)")
        check(total(m, "lbsim_member_health", member=member, state="unknown") == 1, f"{member}: health unknown (no check)")
        check(total(m, "lbsim_member_in_flight", member=member) == 0, f"{member}: nothing in flight")
    check(total(m, "lbsim_connections_accepted_total") >= 8, "connections accepted counted")

    # Reload under load: a fourth member and member 1's weight 1 -> 5, while four clients send.
    stop = threading.Event()
    during = []
    threads = [threading.Thread(target=client_load, args=(p.port, 100000, during, stop)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    with open(path, "w") as f:
        f.write(SCENARIO.format(service_ms=2, members=FOUR))
    p.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    # A bad file: kept out, the running configuration stays.
    with open(path, "w") as f:
        f.write("[channel\nthis is not toml")
    p.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(30)
    bad = [s for s in during if s != 200]
    check(len(during) > 100 and not bad, f"{len(during)} requests during two reloads, none failed ({bad[:5]})")
    m = p.metrics()
    check(total(m, "lbsim_reloads_total", result="ok") == 1, "one reload applied")
    check(total(m, "lbsim_reloads_total", result="failed") == 1, "one bad file refused")
    check(total(m, "lbsim_member_weight", member="192.168.0.1:8080") == 5, "member 1's new weight is in force")
    check(total(m, "lbsim_member_requests_total", member="192.168.0.4:8080", outcome="ok") > 0,
          "the added member takes requests")
    check(get(p.port, "/after")[0] == 200, "still serving after the bad file")

    code = p.stop()
    check(code == 0, f"SIGTERM: exit status 0 (got {code})")
    lines = [line for line in p.stderr().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            fail(f"a log line is not JSON: {line!r}")
    check(len(parsed) >= 4, f"{len(parsed)} log lines, each one JSON object")
    messages = [e.get("fields", {}).get("message", "") for e in parsed]
    check(any("reload failed" in msg for msg in messages), "the bad file is logged")
    check(any("configuration reloaded" in msg for msg in messages), "the reload is logged")
    check(all("\x1b[" not in line for line in lines), "no ANSI escape codes")


def drain(lbsim, workdir):
    path = os.path.join(workdir, "slow.toml")
    with open(path, "w") as f:
        f.write(SCENARIO.format(service_ms=600, members=THREE))
    p = Proxy(lbsim, path, ["--drain-timeout", "10"])
    statuses = []
    threads = [threading.Thread(target=client_load, args=(p.port, 1, statuses)) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    m = p.metrics()
    in_flight = total(m, "lbsim_member_in_flight")
    check(in_flight > 0, f"requests in flight before SIGTERM ({in_flight})")
    p.proc.send_signal(signal.SIGTERM)
    # The listeners close as the drain starts (within moments; bounded here by 3 s on a busy
    # machine), long before the requests in flight end.
    refused, deadline = False, time.time() + 3
    while not refused and time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", p.port), timeout=1).close()
            time.sleep(0.05)
        except OSError:
            refused = True
    check(refused, "new connections are refused once draining")
    for t in threads:
        t.join(20)
    check(statuses.count(200) == 20, f"all 20 requests in flight at SIGTERM answered 200 ({statuses})")
    code = p.proc.wait(20)
    check(code == 0, f"exit status 0 after the drain (got {code})")


def serve_drains(lbsim, workdir):
    port = free_port()
    path = os.path.join(workdir, "serve.toml")
    with open(path, "w") as f:
        f.write(SCENARIO.format(service_ms=2, members=THREE))
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([lbsim, "serve", "--listen", f"127.0.0.1:{port}", "--token", "t",
                             "--scenario", path, "--log-format", "json"],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    check(proc.poll() is None, "serve keeps running on SIGHUP")
    proc.send_signal(signal.SIGINT)
    code = proc.wait(20)
    check(code == 0, f"serve: SIGINT drains and exits 0 (got {code})")
    log.seek(0)
    for line in log.read().decode(errors="replace").splitlines():
        if line.strip():
            try:
                json.loads(line)
            except ValueError:
                fail(f"a serve log line is not JSON: {line!r}")
    print("ok: serve's log lines are JSON", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lbsim", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        metrics_and_reload(args.lbsim, workdir)
        drain(args.lbsim, workdir)
        serve_drains(args.lbsim, workdir)
    print("ops_test: all checks passed")


if __name__ == "__main__":
    main()
