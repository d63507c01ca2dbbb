"""The glucose example end to end, as `make demo` runs it: three days of CGM readings pulled
from a Nightscout-style API (the project's sample data, served on 127.0.0.1), validated by a
Pandera contract, checked by @phlo_quality, transformed by dbt (bronze → silver → gold → marts)
and published atomically through Write-Audit-Publish — then the marts go to PostgreSQL when
one is configured (`PHLO_POSTGRES_URL`).

It drives the project the way a user does, with the `phlo` command (`phlo backfill`), and reads
the result with `phlo.Lakehouse`. Each run starts from a fresh lakehouse in `.phlo/` here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import phlo

HERE = Path(__file__).resolve().parent
DAYS = ("2025-01-01", "2025-01-03")
LAYERS = (
    "raw.glucose_entries",
    "bronze.stg_glucose_entries",
    "silver.fct_glucose_readings",
    "gold.fct_daily_glucose_metrics",
    "marts.mrt_glucose_overview",
    "marts.mrt_glucose_hourly_patterns",
)


def backfill() -> dict[str, Any]:
    """`phlo backfill` over the sample's days, its --json report returned."""
    phlo_command = Path(sys.executable).with_name("phlo")
    command = [str(phlo_command), "backfill", "--start", DAYS[0], "--end", DAYS[1], "--json"]
    print(f"$ phlo backfill --start {DAYS[0]} --end {DAYS[1]}")
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):  # 1: a partition failed, which this example shows
        sys.exit(f"phlo backfill failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def show_run(run: dict[str, Any]) -> None:
    checks = run["checks"]
    passed = sum(1 for c in checks if c["passed"])
    warned = [c for c in checks if not c["passed"] and c["severity"] == "WARN"]
    failed = [c for c in checks if not c["passed"] and c["severity"] != "WARN"]
    print(f"\n{run['partition']}  run {run['run_id'][:8]}")
    for asset, rows in run["rows"].items():
        written = "-" if rows is None else rows
        print(f"  {asset:<30} {written:>5} rows written")
    print(f"  checks: {passed} passed, {len(warned)} warned, {len(failed)} failed")
    for check in warned + failed:
        level = "warn" if check in warned else "FAIL"
        print(f"    {level} {check['asset']}:{check['name']}  {check.get('description') or ''}")
    for error in run["errors"]:
        print(f"  refused: {error}")
    published = ", ".join(run["published_tables"])
    detail = f"merged into main: {published}" if published else run["promotion_reason"]
    print(f"  promotion: {run['promotion']}  {detail}")


def show_lakehouse(lh: phlo.Lakehouse) -> None:
    print("\nrows on main, per layer")
    for table in LAYERS:
        ((count,),) = lh.sql(f"SELECT count(*) FROM {table}").fetchall()
        print(f"  {table:<36} {count:>5}")
    print("\nmarts.mrt_glucose_overview")
    overview = lh.sql(
        "SELECT reading_date, readings, avg_mg_dl, time_in_range_pct, time_below_range_pct, "
        "target_met FROM marts.mrt_glucose_overview ORDER BY reading_date"
    )
    print(overview)
    open_branches = [b for b in lh.branches() if b.startswith("pipeline-run-")]
    print(f"open run branches (kept for inspection): {', '.join(open_branches) or '-'}")


def fresh_lakehouse(folder: Path) -> None:
    """Empties the project's lakehouse folder (tables, catalog, staging, Dagster runs) but
    keeps its settings files (`.env.local`, `*.example`)."""
    for entry in folder.iterdir() if folder.exists() else []:
        if entry.name == ".env.local" or entry.suffix == ".example":
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def main() -> None:
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    fresh_lakehouse(HERE / ".phlo")
    print(f"glucose example: a fresh embedded lakehouse in {HERE / '.phlo'}")
    report = backfill()
    for run in report["runs"]:
        show_run(run)
    show_lakehouse(phlo.Lakehouse.open(HERE / ".phlo"))
    if not os.environ.get("PHLO_POSTGRES_URL"):
        print("\nPostgreSQL: not configured (set PHLO_POSTGRES_URL to publish the marts)")


if __name__ == "__main__":
    main()
