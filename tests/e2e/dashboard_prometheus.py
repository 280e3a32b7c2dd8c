"""A stand-in for Prometheus' range query API, for the dashboard's browser test: the no-op
provider starts no routers, so nothing real has traffic to chart. It answers the two queries
of api/ui/traffic.py with a series per version (v1 steady, v2 a little worse),
one point a second over the asked range, so the live page draws its chart as it would in
production. The real path (a real Prometheus scraping a router) is tests/integration/
test_ui_traffic.py."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# (error rate, p95 latency in ms): the canary (v2) a little worse than what it replaces.
VERSIONS = {"v1": (0.004, 42.0), "v2": (0.009, 58.0)}


def _series(query: str, start: float, end: float) -> list[dict[str, Any]]:
    latency = "histogram_quantile" in query
    out = []
    for version, (error_rate, latency_ms) in VERSIONS.items():
        base = latency_ms if latency else error_rate  # the query asks for milliseconds
        points = []
        t = math.floor(start)
        while t <= end and len(points) < 600:
            wiggle = 1 + 0.15 * math.sin(t / 3 + len(version))
            points.append([t, f"{base * wiggle:.6f}"])
            t += 1
        out.append({"metric": {"version": version}, "values": points})
    return out


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        url = urlsplit(self.path)
        args = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/api/v1/query_range":
            self.send_error(404)
            return
        result = _series(args["query"], float(args["start"]), float(args["end"]))
        body = json.dumps({
            "status": "success", "data": {"resultType": "matrix", "result": result},
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def standin_prometheus() -> Iterator[str]:
    """The stand-in's URL while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
