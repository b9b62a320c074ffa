#!/usr/bin/env python3
"""Probes of a `lbsim serve` binary with hostile clients, as docs/RELIABILITY.md section 6 reports them.

    python3 scripts/probe_serve.py BIN cases          the four cases of tests/control_limits.rs
    python3 scripts/probe_serve.py BIN stalled [N]    RSS and descriptors with N (1000) stalled
                                                      tokenless connections, each sending ~1 MB
    python3 scripts/probe_serve.py BIN silent [N]     the same with N silent connections
    python3 scripts/probe_serve.py BIN upsert [N]     time of a 1-member upsert on an N-member
                                                      (50000) WRR channel, and of another
                                                      project's read meanwhile

Starts BIN on a free loopback port with a token, with the default limits unless the mode needs
others; every socket has a timeout; the server is killed at the end.
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

TOKEN = "probe-token"


def start(binary, *extra):
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--token", TOKEN, "--log-level", "warn", *extra],
        stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    return proc, port


def stat(proc):
    with open(f"/proc/{proc.pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return rss // 1024, len(os.listdir(f"/proc/{proc.pid}/fd"))


def connect(port, timeout=12):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(timeout)
    return s


def until_close(s):
    """What the server sent until it closed, whether it closed, and how long that took."""
    start, data = time.monotonic(), b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, True, time.monotonic() - start
            data += chunk
    except OSError:
        return data, False, time.monotonic() - start


def request(port, method, path, body=None, timeout=600):
    """One exchange on a fresh connection: status, parsed body, seconds."""
    payload = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: lbsim\r\nX-Auth-Token: {TOKEN}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    s = connect(port, timeout)
    start = time.monotonic()
    s.sendall(head + payload)
    data, _, _ = until_close(s)
    elapsed = time.monotonic() - start
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head else 0
    return status, (json.loads(rest) if rest.strip() else None), elapsed


def cases(binary):
    proc, port = start(binary)
    try:
        s = connect(port)
        s.sendall(b"POST /v2/p1/apic/vpc-channels HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b" " * 1000)
        data, closed, t = until_close(s)
        print(f"tokenless, 1 MB announced, 1 kB sent: answer={data[:12]!r} closed={closed} after {t:.1f} s")
        data, closed, t = until_close(connect(port))
        print(f"silent: answer={data[:12]!r} closed={closed} after {t:.1f} s")
        s = connect(port, 35)  # the default body timeout is 30 s
        s.sendall(f"POST /v2/p1/apic/vpc-channels HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\n"
                  "Content-Length: 100\r\n\r\n{\"name\"".encode())
        data, closed, t = until_close(s)
        print(f"stalled body: answer={data[:12]!r} closed={closed} after {t:.1f} s")
        held = [connect(port) for _ in range(1100)]
        s = connect(port)
        s.sendall(f"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\nConnection: close\r\n\r\n".encode())
        data, _, _ = until_close(s)
        print(f"with 1100 other connections open: answer={data[:12]!r}")
        del held
    finally:
        proc.kill()


def stalled(binary, n):
    proc, port = start(binary)
    try:
        print("at start: RSS %d MB, fds %d" % stat(proc))
        head = (b"POST /v2/p1/apic/vpc-channels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1048576\r\n\r\n")
        body, socks = b" " * 1_000_000, []

        def one():
            s = connect(port, 30)
            try:
                s.sendall(head)
                s.sendall(body)
            except OSError:
                pass
            socks.append(s)

        for batch in range(0, n, 50):
            threads = [threading.Thread(target=one) for _ in range(min(50, n - batch))]
            [t.start() for t in threads]
            [t.join() for t in threads]
        print("%d stalled tokenless connections open: RSS %d MB, fds %d" % ((n,) + stat(proc)))
        time.sleep(15)
        print("15 s later, clients still holding: RSS %d MB, fds %d" % stat(proc))
        for s in socks:
            s.close()
        time.sleep(2)
        print("after the clients close: RSS %d MB, fds %d" % stat(proc))
    finally:
        proc.kill()


def silent(binary, n):
    proc, port = start(binary)
    try:
        print("at start: RSS %d MB, fds %d" % stat(proc))
        socks = [connect(port) for _ in range(n)]
        time.sleep(1)
        print("%d silent connections, after 1 s: RSS %d MB, fds %d" % ((n,) + stat(proc)))
        time.sleep(10.5)
        print("11.5 s later: RSS %d MB, fds %d" % stat(proc))
        status, _, _ = request(port, "GET", "/openapi.json")
        print(f"a new request: {status}")
        del socks
    finally:
        proc.kill()


def upsert(binary, n):
    # PROBE_NO_QUOTA=1: for a binary without quota flags (before they existed).
    raise_quota = [] if os.environ.get("PROBE_NO_QUOTA") else [
        "--quota-members", str(n + 10), "--quota-project-members", str(n + 10)]
    proc, port = start(binary, *raise_quota)
    try:
        # Loopback hosts: proxied to themselves, so the channel needs no listener per member.
        members = [{"host": f"127.{1 + i // 65536}.{i // 256 % 256}.{i % 256}", "weight": 1 + i % 7} for i in range(n)]
        body = {"name": "big_channel", "port": 8080, "balance_strategy": 1, "member_type": "ip",
                "instance_ids": ["eea73cde015940908ae0117d67bf7330"], "members": members[:20000]}
        # Bodies stay under the 1 MiB limit: the channel is created with 20,000 members and
        # filled up by upserts of 20,000.
        status, created, t = request(port, "POST", "/v2/p1/apic/vpc-channels", body)
        if status != 201:
            sys.exit(f"create: {status} {json.dumps(created)[:400]}")
        cid = created["project_vpc_channels"][0]["id"]
        path = f"/v2/p1/apic/instances/eea73cde015940908ae0117d67bf7330/vpc-channels/{cid}/members"
        for start_ in range(20000, n, 20000):
            status, _, t2 = request(port, "POST", path, {"members": members[start_:start_ + 20000]})
            t += t2
            if status != 201:
                sys.exit(f"filling the channel: {status}")
        print(f"{n} members created in {t:.2f} s; RSS %d MB, fds %d" % stat(proc))
        other = {"name": "small_channel", "port": 80, "balance_strategy": 1, "member_type": "ip",
                 "instance_ids": ["eea73cde015940908ae0117d67bf7330"], "members": [{"host": "10.200.0.1"}]}
        request(port, "POST", "/v2/p2/apic/vpc-channels", other)
        reads = []

        def reader():
            for _ in range(20):
                reads.append(request(port, "GET", "/v2/p2/apic/instances/eea73cde015940908ae0117d67bf7330/vpc-channels")[2])

        for round_ in range(5):
            t = threading.Thread(target=reader)
            t.start()
            status, _, took = request(port, "POST", path, {"members": [{"host": f"10.250.0.{round_ + 1}", "weight": 3}]})
            t.join()
            print(f"upsert 1 member into {n + round_}: {status} in {took * 1000:.1f} ms; "
                  f"project p2's list meanwhile: max {max(reads) * 1000:.1f} ms over {len(reads)} reads")
            reads.clear()
    finally:
        proc.kill()


def main():
    binary, mode = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else None
    {"cases": lambda: cases(binary), "stalled": lambda: stalled(binary, n or 1000),
     "silent": lambda: silent(binary, n or 1000), "upsert": lambda: upsert(binary, n or 50000)}[mode]()


if __name__ == "__main__":
    main()
