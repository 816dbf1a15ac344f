"""Hostile and concurrent requests against a running `winner serve`, with its memory before and after.

    winner serve RUN --port 8000 &
    python scripts/serve_stress.py --port 8000 --pid $! --clients 100 --seconds 10

Prints each hostile request's status and error, then how many of the concurrent requests got each status,
and the server's resident memory (VmRSS, Linux) before, after one round and after a second.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from pathlib import Path

TEXT = "John Smith flew from Paris to New York .\nThe European Union met in Brussels ."


def call(port: int, method: str, path: str, body: bytes | None) -> tuple[int | str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    except OSError as e:
        return type(e).__name__, b""
    finally:
        conn.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def hostile(port: int) -> None:
    cases = {
        "1 MB body": b"a" * 1_000_000,
        "invalid JSON": b'{"text": ',
        "invalid UTF-8": b'{"text": "\xff\xfe"}',
        "<script> in text": json.dumps({"text": "<script>alert(1)</script> in Paris"}).encode(),
    }
    for name, body in cases.items():
        status, answer = call(port, "POST", "/tag", body)
        print(f"{name:<18} {status}  {answer[:110].decode(errors='replace')}")


def concurrent(port: int, clients: int, seconds: float) -> Counter:
    statuses: Counter = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    body = json.dumps({"text": TEXT}).encode()

    def client(k: int) -> None:
        while time.monotonic() < stop:
            status, _ = call(port, "POST", "/explain" if k % 2 else "/tag", body)
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's process id, for its memory")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    hostile(args.port)
    print(f"RSS before: {rss_mb(args.pid):.1f} MB")
    for round_ in (1, 2):
        counts = concurrent(args.port, args.clients, args.seconds)
        print(f"round {round_}: {args.clients} clients x {args.seconds:g} s: {dict(counts)}; "
              f"RSS after: {rss_mb(args.pid):.1f} MB")
    status, _ = call(args.port, "POST", "/tag", json.dumps({"text": "Paris ."}).encode())
    print(f"still answering: {status}")


if __name__ == "__main__":
    main()
