"""Merge (upsert) on object storage: phlo on S3 (SeaweedFS on 127.0.0.1) vs phlo on local disk,
copy-on-write and merge-on-read, and PyIceberg's upsert on the same S3 server — same data as
bench_merge.py (N events, a batch of N/10 rows, half updates and half new ids), same run,
ratios printed.

For every case a fresh process builds the base table (not timed), then another fresh spawned
process runs only the merge and reports its wall time, its own CPU time, peak RSS and the
bytes the merge's snapshots added (their summaries); the server's CPU time over that process's
life is read from /proc. The catalog is SQLite in every case; only the warehouse moves.
`--modes cow mor` picks the merge modes (both by default), `--no-pyiceberg` skips PyIceberg.

    make release && .venv/bin/python benches/bench_s3.py --rows 1000000 --rounds 5 --pin

`--pin` repeats every case with the server on one core and phlo on the other (both the local
and the S3 run), as if the server ran on another machine: on a 2-core machine an unpinned
server takes CPU from the client. Unpinned figures are always printed too. `--rounds K`
runs every case K times, each round in fresh processes, local disk and S3 alternating (odd
rounds local first, even rounds S3 first, so neither side always follows the other); every
round is printed, then per case the median, range and the ratio of the medians to local disk
and in how many rounds that round's own ratio was within 1.5x (single merges scatter by 20-30 %
on a shared machine: read the medians over all rounds, not one run). `--count-requests` then
runs each S3 merge once more through a counting proxy in front of the server
(tests/s3_requests.py) and prints the requests it made by method and kind of object (timed runs
go direct), pinned too with `--pin`; `--timeline` also prints each of those requests with when it was sent and when its reply's first and last bytes
came back (ms after the merge began; the proxy's own cost included), then the merge's phases,
to see what the merge waits on. `--server-profile DIR` saves a Go CPU profile of the server
(its pprof endpoint) around each phlo S3 merge. `--phase-cpu` splits each timed phlo merge's
wall time, its own CPU time and the server's by the merge's phases (`MergeResult.timings`),
from samples of both processes' CPU counters every 5 ms (a thread of the merge process).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pyarrow.parquet as pq

from bench_merge import generate
from harness import peak_rss_mb, spawn

# The test suite's SeaweedFS launcher (free ports on 127.0.0.1, killed at the end) and counting proxy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_requests import counting_proxy
from seaweedfs_server import S3Server, free_port, running_server

#: With --pin: the server's core and the client's.
SERVER_CPU, CLIENT_CPU = 1, 0
MODES = {"cow": "copy-on-write", "mor": "merge-on-read"}


def _open_phlo(work: Path, warehouse: str, endpoint: str):
    import phlo

    if not warehouse:
        return phlo.Lakehouse.open(work)
    return phlo.Lakehouse.connect(
        f"sqlite:///{work}/catalog.db", warehouse, S3Server(endpoint).properties()
    )


def _pyiceberg(work: Path, warehouse: str, endpoint: str):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        "bench",
        uri=f"sqlite:///{work}/c.db",
        warehouse=warehouse,
        **S3Server(endpoint).properties(),
    )


def build_phlo(data: Path, work: Path, warehouse: str, endpoint: str) -> None:
    lh = _open_phlo(work, warehouse, endpoint)
    lh.create_namespace("raw")
    base = pq.read_table(data / "base.parquet")
    lh.create_table("raw.events", base.schema).append(base)


def build_pyiceberg(data: Path, work: Path, warehouse: str, endpoint: str) -> None:
    catalog = _pyiceberg(work, warehouse, endpoint)
    catalog.create_namespace("raw")
    base = pq.read_table(data / "base.parquet")
    catalog.create_table("raw.events", schema=base.schema).append(base)


def phlo_merge(mode: str, work: Path, warehouse: str, endpoint: str) -> Callable[..., object]:
    table = _open_phlo(work, warehouse, endpoint).table("raw.events")
    return lambda batch, key: table.merge(batch, key, write_mode=MODES[mode])


def pyiceberg_upsert(work: Path, warehouse: str, endpoint: str) -> Callable[..., object]:
    table = _pyiceberg(work, warehouse, endpoint).load_table("raw.events")
    return lambda batch, _key: table.upsert(batch, join_cols=["id"])


def phlo_written(work: Path, warehouse: str, endpoint: str) -> int:
    """Bytes of the files the snapshots after the base's added (snapshot summaries)."""
    history = _open_phlo(work, warehouse, endpoint).table("raw.events").history()
    return sum(int(s.summary.get("added-files-size", 0)) for s in history[1:])


def pyiceberg_written(work: Path, warehouse: str, endpoint: str) -> int:
    snapshots = _pyiceberg(work, warehouse, endpoint).load_table("raw.events").snapshots()
    return sum(int((s.summary or {}).get("added-files-size", 0)) for s in snapshots[1:])


def cases(
    modes: list[str], pyiceberg: bool
) -> dict[str, tuple[Callable, Callable, bool, Callable]]:
    """name → (builder, merge, on S3, bytes written)"""
    found: dict[str, tuple[Callable, Callable, bool, Callable]] = {}
    for mode in modes:
        merge = functools.partial(phlo_merge, mode)
        found[f"phlo {mode}, local disk"] = (build_phlo, merge, False, phlo_written)
        found[f"phlo {mode}, S3"] = (build_phlo, merge, True, phlo_written)
    if pyiceberg:
        found["pyiceberg upsert, S3"] = (build_pyiceberg, pyiceberg_upsert, True, pyiceberg_written)
    return found


def _pin(cpus: list[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


def _build_child(case: tuple, data: str, work: str, warehouse: str, endpoint: str, cpus, queue):
    _pin(cpus)
    case[0](Path(data), Path(work), warehouse, endpoint)
    queue.put(None)


class CpuSamples:
    """(wall, own CPU, server CPU) every 5 ms on a thread of this process, while running."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid, self.samples = server_pid, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        server = cpu_seconds(self.server_pid) if self.server_pid else 0.0
        self.samples.append((time.perf_counter(), cpu_seconds(os.getpid()), server))

    def _run(self) -> None:
        while not self.stop.wait(0.005):
            self._sample()

    def __enter__(self) -> CpuSamples:
        self._sample()
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    def at(self, when: float) -> tuple[float, float]:
        """Own and server CPU seconds at `when` (the last sample before it)."""
        last = self.samples[0]
        for sample in self.samples:
            if sample[0] > when:
                break
            last = sample
        return last[1], last[2]

    def phases(self, started: float, timings: dict[str, float]) -> dict[str, tuple]:
        """phase → (wall s, own CPU s, server CPU s)."""
        split, at = {}, started
        for phase, spent in timings.items():
            (own0, srv0), (own1, srv1) = self.at(at), self.at(at + spent)
            split[phase] = (spent, own1 - own0, srv1 - srv0)
            at += spent
        return split


def _merge_child(
    case: tuple,
    data: str,
    work: str,
    warehouse: str,
    endpoint: str,
    cpus,
    summarize: bool,
    sample_pid: int | None,
    queue,
):
    _pin(cpus)
    batch = pq.read_table(Path(data) / "batch.parquet")
    merge = case[1](Path(work), warehouse, endpoint)
    sampling = CpuSamples(sample_pid) if sample_pid is not None else contextlib.nullcontext()
    with sampling:
        started, cpu = time.perf_counter(), time.process_time()
        result = merge(batch, "id")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    # Not when counting requests: reading the summaries makes requests.
    if not summarize:
        timings = getattr(result, "timings", {})
        queue.put((started, seconds, dict(timings)))
        return
    written = case[3](Path(work), warehouse, endpoint) / 2**20
    phases = {}
    if isinstance(sampling, CpuSamples):
        phases = sampling.phases(started, dict(getattr(result, "timings", {})))
    queue.put((seconds, cpu, peak_rss_mb(), written, phases))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server_profile(debug_port: int | None, path: Path | None) -> Iterator[None]:
    """Saves the server's CPU profile over the block (padded to whole seconds) to `path`."""
    if debug_port is None or path is None:
        yield
        return
    started = time.monotonic()
    box: dict[str, bytes] = {}
    seconds = 8  # a spawned merge process starts, merges and exits well within this

    def fetch() -> None:
        url = f"http://127.0.0.1:{debug_port}/debug/pprof/profile?seconds={seconds}"
        with urllib.request.urlopen(url, timeout=seconds + 30) as response:
            box["profile"] = response.read()

    thread = threading.Thread(target=fetch)
    thread.start()
    yield
    if time.monotonic() - started > seconds:
        print(f"warning: {path.name} covers only the first {seconds} s", file=sys.stderr)
    thread.join()
    path.write_bytes(box["profile"])


def _merge_requests(case: tuple, data: Path, tmp: Path, endpoint: str, cpus=None) -> tuple:
    """The S3 requests one merge of `case` makes (on a base table built direct): the proxy's
    record, when the merge started and took, and its phases' seconds."""
    work = tmp / uuid.uuid4().hex
    work.mkdir()
    warehouse = f"s3://warehouse/{work.name}"
    spawn(_build_child, case, str(data), str(work), warehouse, endpoint, cpus)
    with counting_proxy(endpoint) as (proxied, requests):
        started, seconds, timings = spawn(
            _merge_child, case, str(data), str(work), warehouse, proxied, cpus, False, None
        )
    return requests, started, seconds, timings


def _multipart_step(request) -> str:
    """Which step of a multipart upload a request is (blank for other requests)."""
    query = parse_qs(request.query, keep_blank_values=True)
    if "partNumber" in query:
        return f" part {query['partNumber'][0]}"
    if "uploads" in query:
        return " (start)"
    if "uploadId" in query:
        return " (abort)" if request.method == "DELETE" else " (complete)"
    return ""


def print_timeline(name: str, requests, started: float, seconds: float, timings: dict) -> None:
    """Each request of one merge: when it was sent, its first and last reply bytes (ms after
    the merge began), the bytes that came back; then the merge's phases."""
    print(f"timeline of {name} ({seconds * 1000:.0f} ms; through the proxy):")
    seen = sorted(requests.seen, key=lambda r: r.at)
    for i, request in enumerate(seen):
        following = (r.at for r in seen[i + 1 :] if r.connection == request.connection)
        until = next(following, float("inf"))
        replies = [
            (at, size)
            for connection, at, size in requests.replies
            if connection == request.connection and request.at <= at < until
        ]
        first = (replies[0][0] - started) * 1000 if replies else float("nan")
        last = (replies[-1][0] - started) * 1000 if replies else float("nan")
        down = sum(size for _, size in replies)
        print(
            f"  {(request.at - started) * 1000:8.1f} {first:8.1f} {last:8.1f} ms"
            f" {down / 2**20:7.2f} MiB  {request.method:<6} {request.kind:<14}"
            f" {request.path.rsplit('/', 1)[-1][:48]}{_multipart_step(request)}"
        )
    at = 0.0
    for phase, spent in timings.items():
        at += spent * 1000
        print(f"  phase {phase:<8} ends at {at:8.1f} ms ({spent * 1000:.1f} ms)")


def in_round_order(found: dict, round_: int) -> list[tuple[str, tuple]]:
    """The cases of round `round_` (from 0): each mode's local-disk and S3 merges one after the
    other, local first in even rounds and S3 first in odd ones."""
    ordered = list(found.items())
    if round_ % 2:
        for i in range(len(ordered) - 1):
            (a, case_a), (b, case_b) = ordered[i], ordered[i + 1]
            if a.endswith("local disk") and b == a.replace("local disk", "S3"):
                ordered[i], ordered[i + 1] = (b, case_b), (a, case_a)
    return ordered


def run_cases(
    found: dict,
    data: Path,
    tmp: Path,
    server: S3Server,
    cpus,
    profile: tuple,
    phase_cpu: bool,
    round_: int = 0,
) -> dict[str, tuple]:
    """Each case once: name → (seconds, phlo CPU s, server CPU s, peak MB, MiB written,
    {phase: (wall s, phlo CPU s, server CPU s)} with `phase_cpu`)."""
    results = {}
    for name, case in in_round_order(found, round_):
        work = tmp / uuid.uuid4().hex
        work.mkdir()
        warehouse = f"s3://warehouse/{work.name}" if case[2] else ""
        spawn(_build_child, case, str(data), str(work), warehouse, server.endpoint, cpus)
        debug_port, folder = profile
        path = None
        if folder is not None and case[2] and name.startswith("phlo"):
            path = (
                folder / f"{name.replace(' ', '').replace(',', '-')}-{uuid.uuid4().hex[:6]}.pb.gz"
            )
        before = cpu_seconds(server.pid)
        sample = server.pid if phase_cpu and name.startswith("phlo") else None
        with server_profile(debug_port, path):
            seconds, cpu, peak, written, phases = spawn(
                _merge_child,
                *(case, str(data), str(work), warehouse, server.endpoint, cpus, True, sample),
            )
        results[name] = (seconds, cpu, cpu_seconds(server.pid) - before, peak, written, phases)
    return {name: results[name] for name in found}


def report(n: int, setting: str, results: dict) -> None:
    for name, (seconds, cpu, server_cpu, peak, written, phases) in results.items():
        # Against phlo on local disk in the same mode (PyIceberg: the first mode run).
        mode = name.split(",")[0].split()[-1]
        first_local = next(r for n, r in results.items() if n.endswith("local disk"))
        local = results.get(f"phlo {mode}, local disk", first_local)[0]
        print(
            f"{n:>10,}  {setting:<8} {name:<22} {seconds:>8.3f} {cpu:>8.3f} {server_cpu:>8.3f}"
            f" {peak:>8.0f} {written:>8.1f} {seconds / local:>9.2f}x",
            flush=True,
        )
        if phases:
            split = ", ".join(
                f"{phase} {wall * 1000:.0f}/{own * 1000:.0f}/{srv * 1000:.0f}"
                for phase, (wall, own, srv) in phases.items()
            )
            print(f"{'':>12}phases, ms wall/phlo CPU/server CPU: {split}", flush=True)


#: The goal the ratios are read against: S3 within this factor of local disk.
GOAL = 1.5


def summarize(n: int, setting: str, rounds: list[dict]) -> None:
    """Per case over all rounds: median seconds (range), median CPU s of phlo and the server,
    the ratio of the medians to local disk in the same mode, and in how many rounds that
    round's own ratio was within the goal."""
    if len(rounds) < 2:
        return
    print(
        f"{n:,} rows, {setting}, {len(rounds)} rounds: median (min-max) seconds, CPU s, server CPU s"
    )
    for name in rounds[0]:
        seconds = [r[name][0] for r in rounds]
        cpu, server = (statistics.median(r[name][i] for r in rounds) for i in (1, 2))
        line = (
            f"  {name:<22} {statistics.median(seconds):7.3f} ({min(seconds):.3f}-{max(seconds):.3f})"
            f" {cpu:6.3f} {server:6.3f}"
        )
        local_name = f"phlo {name.split(',')[0].split()[-1]}, local disk"
        if name != local_name and local_name in rounds[0]:
            local = [r[local_name][0] for r in rounds]
            ratios = [s3 / disk for s3, disk in zip(seconds, local, strict=True)]
            within = sum(ratio <= GOAL for ratio in ratios)
            line += (
                f"  median/median {statistics.median(seconds) / statistics.median(local):.2f}x,"
                f" per round {statistics.median(ratios):.2f}x median"
                f" ({min(ratios):.2f}-{max(ratios):.2f}), within {GOAL}x in {within}/{len(ratios)}"
            )
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--rounds", "--runs", dest="rounds", type=int, default=1)
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--no-pyiceberg", action="store_true")
    parser.add_argument("--count-requests", action="store_true")
    parser.add_argument("--server-profile", type=Path)
    parser.add_argument("--timeline", action="store_true")
    parser.add_argument("--phase-cpu", action="store_true")
    args = parser.parse_args()
    found = cases(args.modes, not args.no_pyiceberg)
    debug_port = free_port() if args.server_profile else None
    flags = [] if debug_port is None else ["-debug", f"-debug.port={debug_port}"]
    if args.server_profile:
        args.server_profile.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}")
    print(
        f"{'rows':>10}  {'setting':<8} {'engine':<22} {'seconds':>8} {'CPU s':>8} "
        f"{'srv CPU':>8} {'peak MB':>8} {'MiB out':>8} {'vs local':>10}"
    )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        settings = {"unpinned": (stack.enter_context(running_server(flags=flags)), None)}
        if args.pin:
            pinned = stack.enter_context(running_server(cpus={SERVER_CPU}))
            settings["pinned"] = (pinned, [CLIENT_CPU])
        for n in args.rows:
            data = tmp / f"data{n}"
            data.mkdir()
            generate(n, data)
            rounds: dict[str, list[dict]] = {setting: [] for setting in settings}
            for round_ in range(args.rounds):
                for setting, (server, cpus) in settings.items():
                    profile = (debug_port, args.server_profile) if cpus is None else (None, None)
                    results = run_cases(
                        found, data, tmp, server, cpus, profile, args.phase_cpu, round_
                    )
                    report(n, setting, results)
                    rounds[setting].append(results)
                print(f"round {round_ + 1}, load average: {os.getloadavg()}", flush=True)
            for setting, results in rounds.items():
                summarize(n, setting, results)
            if not (args.count_requests or args.timeline):
                continue
            for setting, (server, cpus) in settings.items():
                for name, case in found.items():
                    if not case[2]:
                        continue
                    requests, *timed = _merge_requests(case, data, tmp, server.endpoint, cpus)
                    counts = requests.counts()
                    listed = ", ".join(f"{m} {k}: {c}" for (m, k), c in sorted(counts.items()))
                    print(
                        f"{n:>10,}  {setting:<8} {name}: {sum(counts.values())} requests ({listed})"
                    )
                    if args.timeline:
                        print_timeline(f"{name}, {setting}", requests, *timed)


if __name__ == "__main__":
    main()
