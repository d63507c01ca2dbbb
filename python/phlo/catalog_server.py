"""The lakehouse's versioned catalog served as an Iceberg REST catalog over HTTP
(`phlo catalog serve`). The protocol is the engine's (`_native.NativeRestService`: routes,
commits, errors, auth); this module only moves requests between a socket and it.

>>> server = CatalogServer(Lakehouse.open(".phlo"), port=0).start()   # doctest: +SKIP
>>> RestCatalog("phlo", uri=server.uri)                               # doctest: +SKIP
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING

from phlo import _native

if TYPE_CHECKING:
    from phlo.lakehouse import Lakehouse

__all__ = ["CatalogServer"]


class CatalogServer:
    """An Iceberg REST catalog on `host:port` (port 0: a free one) over `lakehouse`.

    Clients use `uri` for `main`, and `uri + "/iceberg/<ref>"` for a branch or tag. With
    `token`, every request needs ``Authorization: Bearer <token>`` (or an OAuth2
    client-credentials exchange with the token as the secret). With `vend_credentials`, every
    load-table answer hands the warehouse's storage properties, **its own S3 keys included**,
    to the client (for trusted networks only), so clients need no keys of their own.
    """

    def __init__(
        self,
        lakehouse: Lakehouse,
        host: str = "127.0.0.1",
        port: int = 8181,
        token: str | None = None,
        log_requests: bool = False,
        vend_credentials: bool = False,
    ) -> None:
        service = _native.NativeRestService(lakehouse._native, token, vend_credentials)
        handler = type("_Handler", (_Handler,), {"service": service, "log_requests": log_requests})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def uri(self) -> str:
        """The URI of `main` (``http://HOST:PORT``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_forever(self) -> None:
        """Answers requests until `shutdown` (from another thread) or Ctrl-C."""
        self._server.serve_forever()

    def start(self) -> CatalogServer:
        """Serves from a background thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="phlo-catalog", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stops serving (waiting for the request loop to end) and closes the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> CatalogServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the engine's service, whatever the method."""

    service: _native.NativeRestService
    log_requests: bool
    # Keep-alive: clients (PyIceberg's session, DuckDB) reuse one connection.
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK (40 ms a response on Linux).
    disable_nagle_algorithm = True
    server_version = "phlo-catalog"

    def _answer(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            body = self._body()
        except ValueError as exc:
            self.close_connection = True  # the rest of the stream cannot be framed
            self._send(*_error(400, "BadRequestException", str(exc)))
            return
        try:
            status, headers, payload = self.service.handle(
                self.command, path, query, list(self.headers.items()), body
            )
        except Exception as exc:  # an engine bug: still an answer in Iceberg's error model
            status, headers, payload = _error(500, "ServiceFailureException", str(exc))
        self._send(status, headers, payload)

    def _body(self) -> bytes:
        """The request body, framed by Content-Length or chunked transfer encoding."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers up to the blank line
                pass
            return b"".join(chunks)
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit():
            raise ValueError(f"Content-Length {length!r} is not a byte count")
        return self.rfile.read(int(length))

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        if self.log_requests:
            super().log_message(format, *args)


def _error(status: int, kind: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return status, [("Content-Type", "application/json")], json.dumps(body).encode()
