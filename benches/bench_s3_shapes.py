"""What the S3 server (SeaweedFS, `weed mini` on 127.0.0.1, as the tests start it) spends
storing and serving the same bytes by the shape of the requests: one PUT, or a multipart upload
with parts of 5 / 8 / 16 MiB, one at a time or two at once (phlo's writer,
rust/phlo-core/src/storage/s3_upload.rs: 5 MiB parts, two in flight); then reading the object
phlo's way uploaded back whole or in consecutive ranges of 1 / 2 / 4 / 8 MiB. What is read is
the server's CPU time (user + system, from /proc) over each upload or read, per MiB; the
shapes are interleaved, each repeated, and the medians printed.

    .venv/bin/python benches/bench_s3_shapes.py --mib 16 --repeat 15

Requests are signed with SigV4 over an unsigned payload (as phlo's are over HTTP), on one
keep-alive connection per thread; the bodies are random bytes (Parquet does not compress
either).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import os
import re
import statistics
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

from bench_s3 import cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from seaweedfs_server import ACCESS_KEY, BUCKET, SECRET_KEY, running_server

MIB = 2**20
#: How phlo's writer (rust/phlo-core/src/storage/s3_upload.rs) uploads a data file.
PHLO_SHAPE = "5 MiB parts, 2 in flight"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed_headers(method: str, host: str, path: str, query: str) -> dict[str, str]:
    """SigV4 headers for a request with an unsigned payload (region us-east-1)."""
    now = datetime.datetime.now(datetime.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": stamp}
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, _, v in (p.partition("=") for p in query.split("&") if p)
    )
    canonical = "\n".join(
        [
            method,
            quote(path, safe="/-_.~"),
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            ";".join(sorted(headers)),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = (
        f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    key = _hmac(f"AWS4{SECRET_KEY}".encode(), day)
    for part in ("us-east-1", "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
        f"SignedHeaders={';'.join(sorted(headers))}, Signature={signature}"
    )
    return headers


class Client:
    """Signed requests to one S3 endpoint, a keep-alive connection per thread."""

    def __init__(self, endpoint: str) -> None:
        self.host = urlsplit(endpoint).netloc
        self.local = threading.local()

    def request(self, method: str, key: str, query: str = "", body: bytes = b"") -> tuple:
        path = f"/{BUCKET}/{key}"
        if not hasattr(self.local, "conn"):
            self.local.conn = http.client.HTTPConnection(self.host, timeout=60)
        headers = signed_headers(method, self.host, path, query)
        self.local.conn.request(method, path + (f"?{query}" if query else ""), body, headers)
        reply = self.local.conn.getresponse()
        data = reply.read()
        if reply.status >= 300:
            raise RuntimeError(f"{method} {path}?{query}: {reply.status} {data[:300]!r}")
        return reply.headers, data

    def get(self, key: str, size: int, span: int) -> None:
        """The object in consecutive ranges of `span` bytes (one GET when `span` >= size)."""
        if span >= size:
            self.request("GET", key)
            return
        for start in range(0, size, span):
            self.request_range(key, start, min(start + span, size) - 1)

    def request_range(self, key: str, first: int, last: int) -> None:
        path = f"/{BUCKET}/{key}"
        if not hasattr(self.local, "conn"):
            self.local.conn = http.client.HTTPConnection(self.host, timeout=60)
        headers = signed_headers("GET", self.host, path, "")
        headers["range"] = f"bytes={first}-{last}"
        self.local.conn.request("GET", path, None, headers)
        reply = self.local.conn.getresponse()
        data = reply.read()
        if reply.status != 206 or len(data) != last - first + 1:
            raise RuntimeError(f"GET {path} {first}-{last}: {reply.status}, {len(data)} bytes")

    def put(self, key: str, data: bytes) -> None:
        self.request("PUT", key, body=data)

    def multipart(self, key: str, data: bytes, part: int, in_flight: int) -> None:
        _, reply = self.request("POST", key, "uploads")
        upload = re.search(rb"<UploadId>(.*?)</UploadId>", reply).group(1).decode()
        chunks = [data[i : i + part] for i in range(0, len(data), part)]

        def send(number: int) -> str:
            query = f"partNumber={number}&uploadId={upload}"
            headers, _ = self.request("PUT", key, query, chunks[number - 1])
            return headers["ETag"]

        with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
            etags = list(pool.map(send, range(1, len(chunks) + 1)))
        body = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
            for n, e in enumerate(etags, 1)
        )
        complete = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        self.request("POST", key, f"uploadId={upload}", complete)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=16.0, help="object size")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--flags", nargs="*", default=[], help="extra `weed mini` flags")
    args = parser.parse_args()
    size = int(args.mib * MIB)
    shapes = {
        "one PUT": lambda c, k, d: c.put(k, d),
        "5 MiB parts, 1 at a time": lambda c, k, d: c.multipart(k, d, 5 * MIB, 1),
        PHLO_SHAPE: lambda c, k, d: c.multipart(k, d, 5 * MIB, 2),
        "8 MiB parts, 2 in flight": lambda c, k, d: c.multipart(k, d, 8 * MIB, 2),
        "16 MiB parts": lambda c, k, d: c.multipart(k, d, 16 * MIB, 1),
    }
    reads = {
        f"GET in {span // MIB} MiB ranges" if span < size else "one GET": span
        for span in (1 * MIB, 2 * MIB, 4 * MIB, 8 * MIB, size)
    }
    print(f"load average at start: {os.getloadavg()}; {args.mib} MiB objects; flags {args.flags}")
    with running_server(flags=args.flags) as server:
        client = Client(server.endpoint)
        client.put("warmup", os.urandom(size))
        spent: dict[str, list[float]] = {name: [] for name in [*shapes, *reads]}
        for _ in range(args.repeat):
            for name, upload in shapes.items():
                data, key = os.urandom(size), f"shapes/{uuid.uuid4().hex}"
                before = cpu_seconds(server.pid)
                upload(client, key, data)
                spent[name].append(cpu_seconds(server.pid) - before)
                if name == PHLO_SHAPE:
                    phlo_key = key
            # Reads of an object uploaded as phlo uploads (chunked as phlo's data files are).
            for name, span in reads.items():
                before = cpu_seconds(server.pid)
                client.get(phlo_key, size, span)
                spent[name].append(cpu_seconds(server.pid) - before)
        print(f"{'shape':<26} {'server CPU ms/MiB':>18} (median, min-max of {args.repeat})")
        for name, values in spent.items():
            per = [v * 1000 / args.mib for v in values]
            print(f"{name:<26} {statistics.median(per):18.2f} ({min(per):.2f}-{max(per):.2f})")
        print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
