"""A counting proxy in front of an S3 server: what requests an operation makes, by method and
kind of object, and a hook that runs before a chosen request is passed on (to put another
writer's commit at an exact point of an operation, to hold a request, or to drop its connection:
raising `ConnectionResetError` drops it before the request reaches the server, raising
`LoseReply` after the server has handled it, its reply never reaching the client). The bytes go
through unchanged, so SigV4 signatures stay valid. Used by the request-count tests and
`benches/bench_s3.py`."""

from __future__ import annotations

import collections
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class LoseReply(Exception):
    """Raised by a `before` hook: the request goes to the server, and the client's connection
    is closed once the server answers, the answer dropped (a reply lost on the way)."""


def kind(target: str) -> str:
    """What an S3 request is about: a listing, or the type of object by its suffix."""
    url = urlsplit(target)
    if "list-type" in url.query or url.path.endswith("/"):
        return "list"
    if "uploads" in url.query or "uploadId" in url.query:
        return "multipart"
    name = url.path.rsplit("/", 1)[-1]
    for suffix in (".parquet", ".metadata.json", ".avro"):
        if name.endswith(suffix):
            return "manifest list" if name.startswith("snap-") else suffix.lstrip(".")
    return "bucket" if url.path.count("/") <= 1 else "other"


@dataclass(frozen=True)
class Request:
    method: str
    kind: str
    #: The object's path (bucket and key), without the query.
    path: str
    #: The query string (`partNumber=2&uploadId=…`).
    query: str = field(default="", compare=False)
    #: When the proxy passed it on (`time.perf_counter()`), and on which client connection.
    at: float = field(default=0.0, compare=False)
    connection: int = field(default=0, compare=False)
    #: Its `Range` header (`bytes=0-99`), if any.
    range: str = field(default="", compare=False)


@dataclass
class Requests:
    """The requests passed so far, in order; `before(request)` runs before each is sent on."""

    seen: list[Request] = field(default_factory=list)
    #: Each piece of a response passed back: (connection, time, bytes), for a timeline.
    replies: list[tuple[int, float, int]] = field(default_factory=list)
    before: Callable[[Request], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> collections.Counter[tuple[str, str]]:
        with self.lock:
            return collections.Counter((r.method, r.kind) for r in self.seen)

    def gets(self, kind_: str) -> list[str]:
        """The paths of the GET requests for objects of `kind_`, in order."""
        with self.lock:
            return [r.path for r in self.seen if r.method == "GET" and r.kind == kind_]

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()

    def _passing(self, method: str, target: str, connection: int, range_: str = "") -> None:
        at = time.perf_counter()
        url = urlsplit(target)
        request = Request(method, kind(target), url.path, url.query, at, connection, range_)
        with self.lock:
            self.seen.append(request)
        if self.before is not None:
            self.before(request)


def _forward_requests(
    client: socket.socket, server: socket.socket, requests: Requests, lose: threading.Event
) -> None:
    """Copies HTTP/1.1 requests from `client` to `server`, recording each; sets `lose` when
    the hook asks for a request's reply to be lost."""
    reader = client.makefile("rb")
    while line := reader.readline():
        method, target = line.split()[:2]
        headers = [line]
        length, chunked, range_ = 0, False, ""
        while (header := reader.readline()) not in (b"\r\n", b""):
            headers.append(header)
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            chunked |= name.strip().lower() == b"transfer-encoding" and b"chunked" in value
            if name.strip().lower() == b"range":
                range_ = value.strip().decode()
        try:
            requests._passing(method.decode(), target.decode(), client.fileno(), range_)
        except LoseReply:
            lose.set()
        head = b"".join(headers) + b"\r\n"
        if chunked:
            server.sendall(head)
            while True:
                size_line = reader.readline()
                size = int(size_line.split(b";")[0], 16)
                server.sendall(size_line + reader.read(size + 2))
                if size == 0:
                    break
        else:
            # Headers and body in one send: split, Nagle's algorithm would hold the body
            # back until the server's delayed ACK.
            server.sendall(head + (reader.read(length) if length else b""))


@contextlib.contextmanager
def counting_proxy(endpoint: str) -> Iterator[tuple[str, Requests]]:
    """A TCP proxy on 127.0.0.1 in front of `endpoint`: its endpoint and what passes it."""
    requests = Requests()
    backend = urlsplit(endpoint)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection((backend.hostname, backend.port)) as server:
                server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

                connection = self.request.fileno()
                lose = threading.Event()

                def back() -> None:
                    with contextlib.suppress(OSError):
                        while data := server.recv(1 << 16):
                            if lose.is_set():
                                # The server has answered: the client gets no reply, only its
                                # connection closed.
                                self.request.shutdown(socket.SHUT_RDWR)
                                return
                            self.request.sendall(data)
                            with requests.lock:
                                requests.replies.append(
                                    (connection, time.perf_counter(), len(data))
                                )

                replies = threading.Thread(target=back, daemon=True)
                replies.start()
                with contextlib.suppress(OSError, ValueError):
                    _forward_requests(self.request, server, requests, lose)
                with contextlib.suppress(OSError):
                    server.shutdown(socket.SHUT_WR)
                replies.join()

    proxy = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}", requests
    finally:
        proxy.shutdown()
        proxy.server_close()
