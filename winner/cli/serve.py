"""`winner serve RUN`: a local page where one types text and sees entities and why, over a small JSON API.

GET / is the page, GET /app.js its script; POST /tag and POST /explain take {"text": "..."} (one sentence
per line) and answer {"sentences": [...], "html": "..."}, the html drawn by winner.heads.render.

Built on the standard library's ThreadingHTTPServer: one page and two JSON endpoints need no framework, and
no dependency means nothing more to install or keep patched. It is meant for one person's machine: it binds
to 127.0.0.1 unless told otherwise, loads the model once, reads no path from a request, caps a request's body
at MAX_BODY bytes (and an explanation at MAX_EXPLAIN_TOKENS tokens), and answers every bad request with a
4xx and a one-line JSON error, never a traceback. The model's scratch buffers are shared, so one lock
serialises the calls into it; the threads only parse, wait and write.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from winner.core import runtime
from winner.data.text import tokenize
from winner.errors import WinnerError
from winner.heads.model_io import resolve_model_dir
from winner.heads.render import STYLE, render_fragment, tag
from winner.heads.tagger import Tagger

MAX_BODY = 100_000  # bytes of a POST body
DRAIN_LIMIT = 4_000_000  # an oversized body up to this size is read and dropped, so the client gets the 413
MAX_EXPLAIN_TOKENS = 2_000  # an explanation's table grows with the tokens; tagging is capped by MAX_BODY alone
SOCKET_TIMEOUT = 10.0  # seconds a client may take to send its request

PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>winner</title><style>{STYLE}
textarea {{ width: 100%; font: inherit; }} #status {{ color: #555; margin-left: 1em; }}</style></head>
<body><h1>winner: entities and why</h1>
<p class="key">One sentence per line. <b>Explain</b> shows, under each sentence, how much each word of a token's
window (upper strip) and its casing (lower strip) raised (red) or lowered (blue) the score of the tag chosen for
it: gradient &times; input from the model's own backward pass.</p>
<textarea id="text" rows="5" spellcheck="false">John Smith flew from Paris to New York .</textarea>
<p><button id="tag" type="button">Tag</button> <button id="explain" type="button">Explain</button>
<span id="status"></span></p>
<div id="result"></div>
<script src="/app.js"></script>
</body></html>
"""

SCRIPT = """
async function send(path) {
  const status = document.getElementById("status");
  status.textContent = "working...";
  try {
    const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                        body: JSON.stringify({text: document.getElementById("text").value})});
    const data = await response.json();
    if (!response.ok) { status.textContent = "error: " + data.error; return; }
    document.getElementById("result").innerHTML = data.html;  // escaped by the server (winner.heads.render)
    status.textContent = data.sentences.length + " sentence(s)";
  } catch (e) {
    status.textContent = "error: " + e;
  }
}
document.getElementById("tag").addEventListener("click", () => send("/tag"));
document.getElementById("explain").addEventListener("click", () => send("/explain"));
"""

# the page may run only its own script: text that slipped into the DOM unescaped could not execute
PAGE_POLICY = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'"


class RequestError(Exception):
    """A request the client got wrong: answered with `status` and {"error": message}."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class TaggingService:
    """The loaded tagger and the one lock around it."""

    def __init__(self, tagger: Tagger):
        self.tagger = tagger
        self.lock = threading.Lock()

    def answer(self, path: str, body: bytes) -> dict:
        """The JSON answer to POST `path` with `body`; RequestError for anything the client got wrong."""
        if path not in ("/tag", "/explain"):
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {path[:100]}")
        try:
            request = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not valid UTF-8") from None
        except json.JSONDecodeError as e:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON ({e.msg} at {e.pos})") from None
        if not isinstance(request, dict) or not isinstance(request.get("text"), str):
            raise RequestError(HTTPStatus.BAD_REQUEST, 'expected a JSON object {"text": "..."}')
        sentences = [s for s in (tokenize(line) for line in request["text"].splitlines()) if s]
        explain = path == "/explain"
        n_tokens = sum(len(s) for s in sentences)
        if explain and n_tokens > MAX_EXPLAIN_TOKENS:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"{n_tokens} tokens to explain; at most {MAX_EXPLAIN_TOKENS} per request")
        with self.lock:
            tagged = tag(self.tagger, sentences, explain=explain)
        return {"sentences": [s.to_json() for s in tagged], "html": render_fragment(tagged)}


class Handler(BaseHTTPRequestHandler):
    """One request: the page, its script, or a call of the service; errors as JSON."""

    service: TaggingService  # set on the subclass `serve` makes
    timeout = SOCKET_TIMEOUT
    server_version = "winner"
    default_request_version = "HTTP/1.0"  # so that an unparseable request still gets a status line and headers
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/":
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        elif self.path == "/app.js":
            self._send(HTTPStatus.OK, SCRIPT.encode(), "text/javascript; charset=utf-8")
        else:
            self.send_error(HTTPStatus.NOT_FOUND, "no such page")

    def do_POST(self) -> None:  # noqa: N802
        try:
            answer = self.service.answer(self.path, self._body())
        except RequestError as e:
            self.send_error(e.status, str(e))
            return
        except Exception as e:  # a bug: the client gets a line, the console the type, neither a traceback
            print(f"winner serve: {type(e).__name__} on POST {self.path[:100]}: {e}", file=sys.stderr)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
            return
        self._send(HTTPStatus.OK, json.dumps(answer, ensure_ascii=False).encode(), "application/json")

    def do_PUT(self) -> None:  # noqa: N802
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed: GET the page, POST the API")

    do_DELETE = do_PATCH = do_PUT  # noqa: N815

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length")
        if not length.strip().isdigit():
            raise RequestError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
        if int(length) > MAX_BODY:
            self.close_connection = True
            self._drain(min(int(length), DRAIN_LIMIT))
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY:,} bytes")
        try:
            body = self.rfile.read(int(length))
        except TimeoutError:
            self.close_connection = True
            raise RequestError(HTTPStatus.REQUEST_TIMEOUT, "the body did not arrive in time") from None
        if len(body) < int(length):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
        return body

    def _drain(self, n: int) -> None:
        """Read and drop n bytes: a socket closed with unread data is reset, and the answer lost with it."""
        try:
            while n > 0:
                chunk = self.rfile.read(min(n, 65536))
                if not chunk:
                    return
                n -= len(chunk)
        except (TimeoutError, ConnectionError):
            return

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error as {"error": ...}, also those http.server raises itself (bad request line, method)."""
        status = HTTPStatus(code)
        self._send(status, json.dumps({"error": message or status.phrase}).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", PAGE_POLICY)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        """Quiet: a busy page would flood the terminal; errors are printed where they happen."""


class Server(ThreadingHTTPServer):
    """A thread per connection, not waited for at exit, and a listen queue deep enough for a burst of clients
    (socketserver's default of 5 resets the sixth connection that arrives at once)."""

    daemon_threads = True
    request_queue_size = 128


def make_server(model_dir: str | Path, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to (host, port) with the tagger loaded; port 0 takes a free one.

    The matrix products run on one BLAS thread unless WINNER_THREADS says otherwise: a request's products are
    small, and handing them to a second thread costs more than it saves, many times more on a busy machine.
    """
    if not os.environ.get("WINNER_THREADS"):
        runtime.set_threads(1)
    service = TaggingService(Tagger.load(resolve_model_dir(model_dir)))
    handler = type("BoundHandler", (Handler,), {"service": service})
    try:
        return Server((host, port), handler)
    except OSError as e:  # a port in use, an unknown host: name the address
        raise WinnerError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --host or --port"
                          ) from None


def serve(model_dir: str | Path, host: str, port: int) -> None:
    """Serve until interrupted; the first line printed names the address."""
    server = make_server(model_dir, host, port)
    print(f"serving on http://{server.server_address[0]}:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
