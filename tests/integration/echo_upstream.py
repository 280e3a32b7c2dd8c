"""An upstream for router tests: the standard library's HTTP/1.1 server, which (like many real
servers) answers `Expect: 100-continue` with an interim `100 Continue` by itself.

    python tests/integration/echo_upstream.py PORT

Paths: `/health` (200), `/count` (requests served so far, others than these two),
`/big?n=N` (N bytes), `/close` (an HTTP/1.0 answer with no length: the close ends it),
`/early` (a `103 Early Hints` before the answer); anything else echoes the request as JSON:
method, path, the body's length and first bytes, and the headers (lower-case names).
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_served = 0
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _answer(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _count(self) -> None:
        global _served
        with _lock:
            _served += 1

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/health":
            self._answer(b'{"status": "ok"}')
            return
        if url.path == "/count":
            self._answer(str(_served).encode(), "text/plain")
            return
        self._count()
        if url.path == "/big":
            n = int(parse_qs(url.query)["n"][0])
            self._answer(b"x" * n, "application/octet-stream")
        elif url.path == "/close":
            payload = b"".join(b"line %06d\n" % i for i in range(10_000))
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + payload)
            self.close_connection = True
        elif url.path == "/early":
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            self._answer(json.dumps({"path": url.path}).encode())
        else:
            echo = {
                "method": self.command,
                "path": self.path,
                "body_length": len(body),
                "body_start": body[:32].decode("latin-1"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
            self._answer(json.dumps(echo).encode())


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    server.serve_forever()
