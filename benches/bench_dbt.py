"""phlo's dbt builds: CPU seconds (user + sys, this process and its children) of parsing the
shop project (tests/projects/shop) and of each ``phlo.transforms.build`` of it, one partition a
build, in a fresh spawned process (dbt's imports and caches count as a user's first run would);
then of one more build in another new process (a Dagster step in a process of its own).

    PYTHONPATH=python .venv/bin/python benches/bench_dbt.py --builds 4
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import spawn

SHOP = Path(__file__).resolve().parents[1] / "tests" / "projects" / "shop"


def cpu() -> float:
    """CPU seconds of this process and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(folder: Path, builds: int, queue: Any) -> None:
    """Copies the shop project to `folder`, ingests a day per build, then parses and builds."""
    shutil.copytree(SHOP, folder, ignore=shutil.ignore_patterns("__pycache__", ".phlo"))
    import phlo
    from phlo.discovery import discover
    from phlo.transforms import build, find_dbt_project

    discover(folder)
    from workflows.ingestion.shop import orders  # type: ignore[import-not-found]

    lh = phlo.Lakehouse.open(folder / ".phlo")
    days = [f"2025-01-{d:02d}" for d in range(2, 2 + builds)]
    for day in days:
        orders.shop_orders.run(partition_date=day, lakehouse=lh)
    rows = []
    start, wall = cpu(), time.perf_counter()
    project = find_dbt_project(folder)
    assert project is not None
    rows.append(("parse (find_dbt_project)", cpu() - start, time.perf_counter() - wall))
    for i, day in enumerate(days):
        start, wall = cpu(), time.perf_counter()
        build(project, lh, "main", run_id=f"r{i}", partition_date=day).raise_for_errors()
        rows.append((f"build {i + 1} ({day})", cpu() - start, time.perf_counter() - wall))
    queue.put(rows)


def measure_next_process(folder: Path, queue: Any) -> None:
    """One build in a new process of the project parsed by `measure` (a Dagster step running
    in a process of its own): the definitions' parse is cached on disk."""
    import phlo
    from phlo.transforms import build, find_dbt_project

    start, wall = cpu(), time.perf_counter()
    project = find_dbt_project(folder)
    assert project is not None
    lh = phlo.Lakehouse.open(folder / ".phlo")
    build(project, lh, "main", run_id="next", partition_date="2025-01-02").raise_for_errors()
    queue.put([("new process: load + build", cpu() - start, time.perf_counter() - wall)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--builds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shop"
        rows = spawn(measure, folder, args.builds) + spawn(measure_next_process, folder)
    print(f"{'step':<28} {'CPU s':>7} {'wall s':>7}")
    for name, cpu_s, wall_s in rows:
        print(f"{name:<28} {cpu_s:7.2f} {wall_s:7.2f}")
    total = sum(r[1] for r in rows)
    print(f"{'total':<28} {total:7.2f} {sum(r[2] for r in rows):7.2f}", file=sys.stdout)


if __name__ == "__main__":
    main()
