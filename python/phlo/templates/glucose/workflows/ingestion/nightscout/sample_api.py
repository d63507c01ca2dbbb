"""A local stand-in for a Nightscout server: serves the project's sample CGM readings
(`data/entries.jsonl`) as a paginated JSON API on 127.0.0.1, so the example runs offline.

    GET /api/v1/entries?date=2025-01-02&page=1&per_page=100
    -> {"data": [...readings of that UTC day...], "page": 1, "total_pages": 3}

Run it alone with ``python workflows/ingestion/nightscout/sample_api.py [PORT]``.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

READINGS = Path(__file__).parents[3] / "data" / "entries.jsonl"


def _readings() -> list[dict[str, object]]:
    with READINGS.open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


class _Handler(BaseHTTPRequestHandler):
    readings: ClassVar[list[dict[str, object]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/api/v1/entries":
            self._send(404, {"error": f"no such endpoint {url.path}"})
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            day = query["date"]
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", "100"))
        except (KeyError, ValueError):
            self._send(400, {"error": "date=YYYY-MM-DD is required; page/per_page are numbers"})
            return
        of_day = [r for r in self.readings if str(r["dateString"]).startswith(day)]
        total_pages = max(1, -(-len(of_day) // per_page))
        start = (page - 1) * per_page
        body = {"data": of_day[start : start + per_page], "page": page, "total_pages": total_pages}
        self._send(200, body)

    def _send(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def serve(port: int = 0) -> ThreadingHTTPServer:
    """Starts the API on 127.0.0.1 (`port=0`: any free port) in a daemon thread; the URL is
    ``f"http://127.0.0.1:{server.server_port}/api/v1/"``. Stop it with ``server.shutdown()``."""
    handler = type("Handler", (_Handler,), {"readings": _readings()})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


_running: ThreadingHTTPServer | None = None


def local_url() -> str:
    """The URL of the sample API, started once in this process on a free port."""
    global _running
    if _running is None:
        _running = serve()
    return f"http://127.0.0.1:{_running.server_port}/api/v1/"


if __name__ == "__main__":
    running = serve(int(sys.argv[1]) if len(sys.argv) > 1 else 8765)
    print(f"serving http://127.0.0.1:{running.server_port}/api/v1/entries?date=2025-01-01")
    threading.Event().wait()
