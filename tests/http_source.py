"""A small paginated JSON API on 127.0.0.1 for ingestion tests and benchmarks.

``GET /events?page=N`` (pages from 1) answers ``{"data": [...], "page": N, "total_pages": P}``
with generated records: camelCase fields (``eventId``, ``dateString``, ``userName``,
``amount``), a nested ``details`` object (``{"tags": [...], "source": ...}``) and, when the
server was started with ``bad_every=K``, a bad row every K records (``amount`` is a string).
``stall=True`` makes every request hang (until the server stops), to test timeouts.

Use it as a pytest fixture (``http_api``) or, outside pytest, as a context manager::

    with EventApi(rows=1_000_000, page_size=10_000) as api:
        print(api.url)      # http://127.0.0.1:PORT/events
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

__all__ = ["EventApi", "http_api", "record"]

_BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def record(i: int, *, bad: bool = False) -> dict[str, Any]:
    """The `i`-th generated record (0-based); the oracle tests compare against."""
    return {
        "eventId": i,
        "dateString": (_BASE + dt.timedelta(minutes=i)).isoformat(),
        "userName": f"user-{i % 97}",
        "amount": f"not-a-number-{i}" if bad else round(i * 0.25, 2),
        "details": {"tags": [f"t{i % 3}", f"t{i % 5}"], "source": "api"},
    }


class EventApi:
    """A threaded HTTP server serving `rows` records, `page_size` per page."""

    def __init__(
        self, rows: int = 250, page_size: int = 100, *, bad_every: int = 0, stall: bool = False
    ) -> None:
        self.rows = rows
        self.page_size = page_size
        self.bad_every = bad_every
        self.stall = stall
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def total_pages(self) -> int:
        return max(1, -(-self.rows // self.page_size))

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/events"

    @property
    def base_url(self) -> str:
        return self.url.rsplit("/", 1)[0] + "/"

    def is_bad(self, i: int) -> bool:
        return self.bad_every > 0 and i % self.bad_every == self.bad_every - 1

    def page(self, number: int) -> dict[str, Any]:
        start = (number - 1) * self.page_size
        stop = min(start + self.page_size, self.rows)
        data = [record(i, bad=self.is_bad(i)) for i in range(max(start, 0), stop)]
        return {"data": data, "page": number, "total_pages": self.total_pages}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with api._lock:
                    api.requests += 1
                if api.stall:
                    api._stop.wait()
                    return
                url = urlparse(self.path)
                if url.path != "/events":
                    self.send_error(404)
                    return
                try:
                    number = int(parse_qs(url.query).get("page", ["1"])[0])
                except ValueError:
                    self.send_error(400, "page must be a number")
                    return
                body = json.dumps(api.page(number)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> EventApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> EventApi:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@pytest.fixture
def http_api(request: pytest.FixtureRequest) -> Iterator[EventApi]:
    """An `EventApi`; parametrize with ``@pytest.mark.parametrize("http_api", [{"rows": 10}],
    indirect=True)`` to change its settings."""
    settings = getattr(request, "param", {})
    with EventApi(**settings) as api:
        yield api
