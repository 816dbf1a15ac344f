"""`winner serve`: the page, the JSON API, and hostile requests, against the installed command in a subprocess."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from winner.cli.serve import MAX_BODY, MAX_EXPLAIN_TOKENS

STARTUP_SECONDS = 300  # a fresh process may compile kernels on a loaded machine


@pytest.fixture(scope="module")
def server(small_tagger, start_server) -> Iterator[tuple[subprocess.Popen, int]]:
    with start_server(small_tagger) as s:
        yield s


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def post(port: int, path: str, payload) -> tuple[int, dict]:
    status, _, body = request(port, "POST", path, json.dumps(payload).encode())
    return status, json.loads(body)


def raw(port: int, data: bytes) -> bytes:
    """Send raw bytes, return everything the server answers before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_page_script_and_policy(server):
    _, port = server
    status, headers, body = request(port, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b'<script src="/app.js"></script>' in body and b"http" not in body.replace(b"http-equiv", b"")
    status, headers, body = request(port, "GET", "/app.js")
    assert status == 200 and b'fetch(path' in body


def test_tag_and_explain(server):
    _, port = server
    status, answer = post(port, "/tag", {"text": "John Smith lives in Paris .\n\n<script>alert(1)</script>"})
    assert status == 200
    assert [s["tokens"][0] for s in answer["sentences"]] == ["John", "<"]
    assert "<script" not in answer["html"] and "&lt;" in answer["html"]
    assert answer["sentences"][0]["explanations"] == []
    status, answer = post(port, "/explain", {"text": "John Smith lives in Paris ."})
    assert status == 200
    x = answer["sentences"][0]["explanations"]
    assert [e["token"] for e in x] == "John Smith lives in Paris .".split() and 'class="strip"' in answer["html"]
    assert post(port, "/tag", {"text": ""}) == (200, {"sentences": [], "html": ""})


def test_hostile_requests_get_a_4xx_and_a_json_error(server):
    proc, port = server
    cases = [
        ("1 MB body", request(port, "POST", "/tag", b"a" * 1_000_000), 413),
        ("invalid JSON", request(port, "POST", "/tag", b'{"text": '), 400),
        ("invalid UTF-8", request(port, "POST", "/tag", b'{"text": "\xff\xfe"}'), 400),
        ("no text", request(port, "POST", "/tag", b'{"words": "x"}'), 400),
        ("text not a string", request(port, "POST", "/explain", b'{"text": ["x"]}'), 400),
        ("JSON not an object", request(port, "POST", "/tag", b'"x"'), 400),
        ("unknown endpoint", request(port, "POST", "/../../etc/passwd", b"{}"), 404),
        ("unknown page", request(port, "GET", "/etc/passwd"), 404),
        ("PUT", request(port, "PUT", "/tag", b"{}"), 405),
        ("too much to explain", request(port, "POST", "/explain",
                                        json.dumps({"text": "word " * (MAX_EXPLAIN_TOKENS + 1)}).encode()), 413),
    ]
    for name, (status, headers, body), expected in cases:
        assert status == expected, (name, status, body)
        assert headers["Content-Type"] == "application/json", name
        assert set(json.loads(body)) == {"error"}, name
        assert b"Traceback" not in body
    no_length = raw(port, b"POST /tag HTTP/1.1\r\nHost: x\r\n\r\n")
    assert no_length.startswith(b"HTTP/1.0 411") and no_length.endswith(b'"error": "a POST needs a Content-Length"}')
    garbage = raw(port, b"\x00\x01 not http\r\n\r\n")
    assert garbage.split(b" ")[1] == b"400" and b'{"error"' in garbage
    assert len(b"a" * 1_000_000) > MAX_BODY
    assert post(port, "/tag", {"text": "Paris ."})[0] == 200  # still answering
    assert proc.poll() is None


@pytest.mark.slow
def test_concurrent_clients_all_answered_and_memory_stays_bounded(server):
    """100 clients at once for 3 s; the server's RSS after a second round is within 20 MB of after the first."""
    proc, port = server
    text = {"text": "John Smith flew from Paris to New York .\nThe European Union met in Brussels ."}

    def round_of_clients(seconds: float) -> list[int]:
        statuses: list[int | str] = []
        stop = time.monotonic() + seconds

        def client() -> None:
            while time.monotonic() < stop:
                try:
                    statuses.append(post(port, "/explain" if len(statuses) % 2 else "/tag", text)[0])
                except OSError as e:  # a refused or reset connection counts as a failure, not a crash
                    statuses.append(type(e).__name__)

        threads = [threading.Thread(target=client) for _ in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return statuses

    first = round_of_clients(3.0)
    after_first = rss_kb(proc.pid)
    second = round_of_clients(3.0)
    after_second = rss_kb(proc.pid)
    assert set(first) | set(second) == {200} and len(first) >= 100
    assert after_second - after_first < 20_000, (after_first, after_second)
    assert post(port, "/tag", {"text": "Paris ."})[0] == 200


def test_serve_refuses_a_model_that_is_not_a_tagger(tmp_path):
    (tmp_path / "model").mkdir()
    p = subprocess.run([sys.executable, "-m", "winner", "serve", str(tmp_path), "--port", "0"], capture_output=True,
                       text=True, timeout=STARTUP_SECONDS)
    assert p.returncode == 1 and p.stderr.startswith("error:") and "Traceback" not in p.stderr
