"""The glucose example end to end, as a user gets it: `phlo init --template glucose`, then
`phlo backfill` over its three sample days (the `phlo` command in a process of its own) with a
real PostgreSQL configured. The marts are compared with what plain Python computes from the
sample readings; the day with sensor errors is refused and publishes nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest

import phlo
from notebooks import activity_of, execute, html_of, outputs_by_tag, text_of

PHLO = str(Path(sys.executable).with_name("phlo"))
GOOD_DAYS = ("2025-01-01", "2025-01-02")


def phlo_command(
    project: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PHLO, *args], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture
def glucose(tmp_path: Path) -> Path:
    done = subprocess.run(
        [PHLO, "init", "cgm", "--template", "glucose"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return tmp_path / "cgm"


def readings(project: Path) -> list[dict[str, Any]]:
    with (project / "data" / "entries.jsonl").open() as lines:
        return [json.loads(line) for line in lines]


def expected_overview(rows: list[dict[str, Any]]) -> dict[dt.date, tuple[int, float, float]]:
    """reading_date → (readings, avg mg/dL, % in range), as the dbt models define them."""
    by_day: dict[dt.date, list[int]] = defaultdict(list)
    for row in rows:
        day = dt.date.fromisoformat(row["dateString"][:10])
        if row["dateString"][:10] in GOOD_DAYS:
            by_day[day].append(row["sgv"])
    return {
        day: (
            len(values),
            round(sum(values) / len(values), 1),
            round(100.0 * sum(70 <= v <= 180 for v in values) / len(values), 1),
        )
        for day, values in by_day.items()
    }


def test_the_glucose_template_runs_end_to_end_and_publishes_to_postgres(
    glucose: Path, postgres_url: str
) -> None:
    env = {**os.environ, "PHLO_POSTGRES_URL": postgres_url}
    env.pop("PHLO_LAKEHOUSE", None)
    done = phlo_command(
        glucose, "backfill", "--start", "2025-01-01", "--end", "2025-01-03", "--json", env=env
    )
    assert done.returncode == 1, done.stderr  # one partition refused
    report = json.loads(done.stdout)
    runs = {r["partition"]: r for r in report["runs"]}

    for day in GOOD_DAYS:
        assert runs[day]["promotion"] == "published", runs[day]
        assert runs[day]["rows"]["dlt_glucose_entries"] == 288
        assert "marts.mrt_glucose_overview" in runs[day]["published_tables"]
        failed = [c["name"] for c in runs[day]["checks"] if not c["passed"]]
        assert failed == ["freshness_check_date_string"]  # the sample is old: a warning only
    refused = runs["2025-01-03"]
    assert refused["promotion"] == "blocked"
    assert "sgv" in refused["errors"][0] and "4x" in refused["errors"][0]
    assert refused["published_tables"] == []

    lh = phlo.Lakehouse.open(glucose / ".phlo")
    sample = readings(glucose)
    ingested = lh.table("raw.glucose_entries").to_arrow()
    good_ids = {r["_id"] for r in sample if r["dateString"][:10] in GOOD_DAYS}
    assert set(ingested["_id"].to_pylist()) == good_ids and ingested.num_rows == len(good_ids)

    overview = lh.sql(
        "SELECT reading_date, readings, avg_mg_dl, time_in_range_pct "
        "FROM marts.mrt_glucose_overview"
    ).fetchall()
    expected = expected_overview(sample)
    assert {r[0]: tuple(r[1:]) for r in overview} == expected
    hourly = lh.sql("SELECT sum(readings) FROM marts.mrt_glucose_hourly_patterns").fetchall()
    assert hourly == [(len(good_ids),)]

    # The run that failed kept its branch, with nothing of it on main.
    assert any(b.startswith("pipeline-run-") for b in lh.branches())

    with psycopg.connect(postgres_url) as con:
        published = con.execute(
            "SELECT reading_date, readings, avg_mg_dl, time_in_range_pct FROM marts.glucose_overview"
        ).fetchall()
        (hours,) = con.execute("SELECT count(*) FROM marts.glucose_hourly_patterns").fetchone()
    assert {r[0]: (r[1], float(r[2]), float(r[3])) for r in published} == expected
    assert hours == 24


def test_without_postgres_the_example_skips_publishing_and_still_publishes_the_lakehouse(
    glucose: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PHLO_POSTGRES_URL", "PHLO_LAKEHOUSE")}
    done = phlo_command(glucose, "materialize", "--partition", "2025-01-02", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    assert run["promotion"] == "published"
    assert "publish_glucose" in run["assets"]
    lh = phlo.Lakehouse.open(glucose / ".phlo")
    assert lh.sql("SELECT count(*) FROM marts.mrt_glucose_overview").fetchall() == [(1,)]


def test_the_notebook_walks_the_same_steps(
    glucose: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PHLO_LAKEHOUSE", raising=False)
    notebook = execute(glucose / "notebooks" / "glucose.ipynb", tmp_path, monkeypatch, glucose)
    out = outputs_by_tag(notebook)
    assert "published" in html_of(out["ingest"])[0]
    # The build's one live line: empty when it finished within a second (dbt runs in phlo's
    # process, so a warm build can), otherwise how long it took.
    (building,) = activity_of(out["dbt"])
    assert building == "" or "dbt build: done in" in building
    checks = text_of(out["quality"])
    assert "('freshness_check_date_string', False, 'warn')" in checks
    assert checks.count("True") == 4
    built = text_of(out["dbt"])
    assert "('marts.mrt_glucose_overview', 1)" in built
    assert "('silver.fct_glucose_readings', 288)" in built
    published = text_of(out["publish"])
    assert "marts.mrt_glucose_overview" in published and "raw.glucose_entries" in published
    marts = text_of(out["marts"])
    assert "readings: [[288]]" in marts
    refused = html_of(out["refused"])[0]
    assert "ValidationError" in refused and "sgv" in refused
    head = text_of(out["head"])
    assert head.startswith("pyarrow.Table") and "_id: string" in head
    lh = phlo.Lakehouse.open(glucose / ".phlo" / "notebook")
    assert lh.table("raw.glucose_entries", ref="main").to_arrow().num_rows == 288


def test_run_py_starts_afresh_but_keeps_the_settings_files(glucose: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("glucose_run", glucose / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lakehouse = glucose / ".phlo"
    phlo.Lakehouse.open(lakehouse).create_namespace("raw")
    (lakehouse / ".env.local").write_text("PHLO_POSTGRES_URL=postgresql://x@127.0.0.1/x\n")
    module.fresh_lakehouse(lakehouse)
    assert sorted(p.name for p in lakehouse.iterdir()) == [".env.local", ".env.local.example"]
