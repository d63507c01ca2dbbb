"""The project commands of `phlo` on a real project (a copy of tests/projects/events): materialize,
backfill, dev, status, doctor, config show, validate — success and error paths, ``--json``,
exit codes, and the lakehouse the command line defaults to."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.dagster_support import lakehouse_of, project, published_runs, rows, run_branches
from tests.test_dagster import events_of

import phlo
from phlo.cli import main

__all__ = ["project"]  # fixture

QUALITY = """
from phlo import phlo_quality
from phlo.quality import RangeCheck

@phlo_quality(table="raw.events", checks=[RangeCheck(column="value", min_value=0, max_value={max_value})])
def events_quality():
    '''Values stay in range.'''
"""


#: The `phlo` command in a process of its own.
PHLO = [sys.executable, "-c", "from phlo.cli import main; main()"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the project only; runs go to ``<project>/.phlo/dagster``."""
    for name in [n for n in os.environ if n.upper().startswith("PHLO_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def phlo_cli(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args])


def as_json(result: Result) -> dict:
    return json.loads(result.stdout)


def backfill(project: Path, start: str, end: str, *args: str) -> Result:
    return phlo_cli(project, "backfill", "--start", start, "--end", end, *args)


def with_quality(project: Path, max_value: float) -> None:
    folder = project / "workflows" / "quality"
    folder.mkdir(exist_ok=True)
    (folder / "events.py").write_text(QUALITY.format(max_value=max_value))


# --- materialize -------------------------------------------------------------------------------


def test_materialize_runs_checks_and_publishes(project: Path) -> None:
    with_quality(project, max_value=100)
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-02")
    assert result.exit_code == 0, result.output
    assert "2025-01-02" in result.output and "dlt_events: 5 rows" in result.output
    assert "check dlt_events:pandera_contract passed" in result.output
    assert "check dlt_events:range_check_value passed" in result.output
    assert "published raw.events into main" in result.output
    assert rows(project, "raw.events") == events_of("2025-01-02")
    assert run_branches(project) == []
    assert (project / ".phlo" / "dagster").is_dir()  # the project's Dagster home


def test_materialize_json(project: Path) -> None:
    result = phlo_cli(
        project, "materialize", "--select", "dlt_events", "--partition", "2025-01-03", "--json"
    )
    assert result.exit_code == 0, result.output
    (run,) = as_json(result)["runs"]
    assert as_json(result)["ok"] is True
    assert run["partition"] == "2025-01-03" and run["rows"] == {"dlt_events": 5}
    assert run["promotion"] == "published" and run["published_tables"] == ["raw.events"]
    assert [c["name"] for c in run["checks"]] == ["pandera_contract"]
    assert published_runs(project) == [run["run_id"]]


def test_a_failing_contract_fails_materialize_and_keeps_main(project: Path) -> None:
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-13")
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "the Pandera contract failed" in result.output
    assert "not published (blocked)" in result.output
    assert lakehouse_of(project).table("raw.events").current_snapshot_id is None
    assert len(run_branches(project)) == 1  # kept for investigation


def test_a_failing_quality_check_blocks_the_publication(project: Path) -> None:
    with_quality(project, max_value=2)  # values 0..4: two rows out of range
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-02")
    assert result.exit_code == 1, result.output
    assert "check dlt_events:range_check_value FAILED (ERROR)" in result.output
    assert "blocking checks failed: dlt_events:range_check_value" in result.output
    assert lakehouse_of(project).table("raw.events").current_snapshot_id is None


def test_materialize_everything_runs_one_run_per_partitions_definition(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where Dagster logs its telemetry
    result = phlo_cli(project, "materialize", "--partition", "2025-01-06", "--json")
    assert result.exit_code == 0, result.output
    runs = as_json(result)["runs"]
    # The project's ingestions share its partitions: one run, published in one merge.
    assert [r["assets"] for r in runs] == [["dlt_clicks", "dlt_events", "dlt_users"]]
    assert all(r["ok"] for r in runs)
    assert rows(project, "raw.clicks") == events_of("2025-01-06")
    # The Dagster home phlo made keeps Dagster's telemetry off: not even a local log of it.
    assert "enabled: false" in (project / ".phlo" / "dagster" / "dagster.yaml").read_text()
    assert not (tmp_path / "home" / ".dagster" / "logs" / "event.log").exists()


def test_an_ingestion_starting_elsewhere_runs_apart(project: Path) -> None:
    users = project / "workflows" / "ingestion" / "api" / "events.py"
    users.write_text(
        users.read_text().replace(
            '@phlo_ingestion(table_name="users",',
            '@phlo_ingestion(partitions_start="2025-01-02", table_name="users",',
        )
    )
    result = phlo_cli(project, "materialize", "--partition", "2025-01-07", "--json")
    assert result.exit_code == 0, result.output
    runs = as_json(result)["runs"]
    # Its own partitions definition: Dagster runs it apart (and it publishes on its own).
    assert sorted(r["assets"] for r in runs) == [["dlt_clicks", "dlt_events"], ["dlt_users"]]


def test_materialize_rejects_unknown_assets_and_partitions(project: Path) -> None:
    result = phlo_cli(project, "materialize", "--select", "nope")
    assert result.exit_code == 2
    assert "[usage]" in result.output and "dlt_clicks, dlt_events, dlt_users" in result.output
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2024-01-01")
    assert result.exit_code == 2 and "is no partition of dlt_events" in result.output
    assert "hint: see `phlo materialize --help`" in result.output


def test_materialize_in_a_folder_without_workflows(tmp_path: Path) -> None:
    result = phlo_cli(tmp_path, "materialize")
    assert result.exit_code == 2
    assert "[usage] the project defines no assets" in result.output
    assert "hint: `phlo validate` shows what the project defines" in result.output


def test_materialize_by_group_glob(project: Path) -> None:
    result = phlo_cli(
        project, "materialize", "--select", "group:cr*", "--partition", "2025-01-06", "--json"
    )
    assert result.exit_code == 0, result.output
    assert [r["assets"] for r in as_json(result)["runs"]] == [["dlt_users"]]


# --- backfill ----------------------------------------------------------------------------------


def test_backfill_lists_the_failed_partitions(project: Path) -> None:
    result = backfill(project, "2025-01-12", "2025-01-14", "--select", "dlt_events")
    assert result.exit_code == 1, result.output
    assert "2 partitions succeeded, 1 failed" in result.output
    assert "failed 2025-01-13: dlt_events: raw.events partition 2025-01-13" in result.output
    assert rows(project, "raw.events") == sorted(
        events_of("2025-01-12") + events_of("2025-01-14"), key=lambda r: r["id"]
    )


def test_backfill_in_parallel_processes(project: Path) -> None:
    result = backfill(
        project, "2025-01-12", "2025-01-15", "--select", "dlt_events", "--parallel", "2", "--json"
    )
    assert result.exit_code == 1, result.output
    report = as_json(result)
    assert report["failed_partitions"] == ["2025-01-13"] and report["partitions"] == 4
    assert [r["partition"] for r in report["runs"]] == [
        "2025-01-12",
        "2025-01-13",
        "2025-01-14",
        "2025-01-15",
    ]
    expected = events_of("2025-01-12") + events_of("2025-01-14") + events_of("2025-01-15")
    assert rows(project, "raw.events") == sorted(expected, key=lambda r: r["id"])
    assert len(published_runs(project)) == 3


CRASHING = """
import os
from phlo import phlo_ingestion
from workflows.schemas.events import UserSchema

@phlo_ingestion(table_name="crashy", unique_key="id", validation_schema=UserSchema, group="crash")
def crashy(partition_date: str):
    if partition_date == "2025-01-03":
        os._exit(7)  # the process dies mid-run
    return [{"id": int(partition_date[-2:]), "name": partition_date}]
"""


def test_a_dying_worker_fails_its_day_and_the_others_go_on(project: Path) -> None:
    (project / "workflows" / "ingestion" / "crash.py").write_text(CRASHING)
    result = backfill(
        project, "2025-01-02", "2025-01-05", "--select", "group:crash", "--parallel", "2", "--json"
    )
    assert result.exit_code == 1, result.output
    report = as_json(result)
    assert report["failed_partitions"] == ["2025-01-03"]
    (failed,) = [r for r in report["runs"] if not r["ok"]]
    assert failed["errors"] == [failed["errors"][0]]
    assert failed["errors"][0].startswith("the worker process exited with code 7")
    names = lakehouse_of(project).table("raw.crashy").to_arrow().column("name").to_pylist()
    assert sorted(names) == ["2025-01-02", "2025-01-04", "2025-01-05"]


def test_backfill_success_and_bad_ranges(project: Path) -> None:
    result = backfill(project, "2025-01-02", "2025-01-03", "--select", "dlt_clicks")
    assert result.exit_code == 0, result.output
    assert "2 partitions succeeded, 0 failed" in result.output
    result = backfill(project, "2025-01-03", "2025-01-02")
    assert result.exit_code == 2 and "is before --start" in result.output
    result = phlo_cli(project, "backfill", "--start", "2025-01-03", "--json")
    assert result.exit_code == 2
    assert as_json(result)["error"]["code"] == "usage"
    assert "--end" in as_json(result)["error"]["message"]


def test_progress_is_shown_on_a_terminal_only(project: Path) -> None:
    """Under a pseudo-terminal the backfill draws its bar on stderr; with --json it does not."""
    import pty

    args = ["--project", str(project), "backfill", "--start", "2025-01-02", "--end", "2025-01-03"]
    for extra, shown in (([], True), (["--json"], False)):
        leader, follower = pty.openpty()
        chunks: list[bytes] = []
        # Read while the command runs, as a terminal does: a full pty buffer blocks the writer.
        reader = threading.Thread(target=_drain, args=(leader, chunks))
        reader.start()
        done = subprocess.run(
            [*PHLO, *args, *extra],
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=600,
        )
        os.close(follower)
        reader.join()
        os.close(leader)
        terminal = b"".join(chunks)
        assert done.returncode == 0, terminal.decode(errors="replace")
        assert (b"backfilling" in terminal) is shown


def _drain(leader: int, chunks: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed
            return
        if not chunk:
            return
        chunks.append(chunk)


# --- dev ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dev_serves_the_project_on_localhost_and_stops(project: Path, tmp_path: Path) -> None:
    log = tmp_path / "dev.log"
    process, port, info = _serving(project, log)
    try:
        url = f"http://127.0.0.1:{port}"
        assert "dagster_webserver_version" in info
        query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
        request = urllib.request.Request(
            f"{url}/graphql", data=query, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            nodes = json.load(response)["data"]["assetNodes"]
        assert sorted(n["assetKey"]["path"][0] for n in nodes) == [
            "dlt_clicks",
            "dlt_events",
            "dlt_users",
        ]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        output = log.read_text(errors="replace")
        assert process.returncode == 0, output[-3000:]
        assert f"on http://127.0.0.1:{port}" in output
        assert _group_is_gone(process.pid)
    finally:
        if process.poll() is None or not _group_is_gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _serving(project: Path, log: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    """`phlo dev` on a free port, once it answers: the process, its port and its
    /server_info. When another process took the port first (dagster dev then stays up
    without its web server), again on another port."""
    for _ in range(5):
        port = free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*PHLO, "--project", str(project), "dev", "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        info = _wait_for(f"http://127.0.0.1:{port}/server_info", process, log)
        if info is not None:
            return process, port, info
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    raise AssertionError(f"every port was taken:\n{log.read_text(errors='replace')}")


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> str | None:
    """The body of `url` once the server answers (the process must stay up meanwhile); None
    when its port was taken."""
    for _ in range(3000):  # 5 minutes
        said = log.read_text(errors="replace")
        assert process.poll() is None, said
        if "address already in use" in said:
            return None
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def _group_is_gone(pgid: int) -> bool:
    for _ in range(300):  # 30 seconds
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_dev_needs_the_dagster_extra(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dagster_webserver", None)  # as if not installed
    result = phlo_cli(project, "dev")
    assert result.exit_code == 5
    assert "[missing_extra] phlo dev needs 'dagster_webserver'" in result.output
    assert "hint: pip install 'phlo[dagster]'" in result.output


# --- status ------------------------------------------------------------------------------------


def test_status_shows_tables_runs_and_open_wap_branches(project: Path) -> None:
    phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-02")
    phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-13")
    result = phlo_cli(project, "status", "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    tables = {t["table"]: t for t in report["tables"]}
    assert tables["raw.events"]["rows"] == 5 and tables["raw.clicks"]["rows"] == 0
    assert [(r["partition"], r["status"], r["promotion"]) for r in report["runs"]] == [
        ("2025-01-13", "FAILURE", "blocked"),
        ("2025-01-02", "SUCCESS", "published"),
    ]
    assert report["runs"][0]["assets"] == ["dlt_events"]
    (branch,) = report["wap_branches"]
    assert branch["run_id"] == report["runs"][0]["run_id"] and branch["run_status"] == "FAILURE"
    assert branch["branch"] in report["branches"]
    human = phlo_cli(project, "status")
    assert human.exit_code == 0
    assert "open WAP branches (1)" in human.output and "run FAILURE" in human.output
    assert "raw.events" in human.output and "5 rows" in human.output


def test_status_marks_a_row_count_that_still_counts_deleted_rows(project: Path) -> None:
    """Rows removed by a delete file (merge-on-read) are in the snapshot's ``total-records``:
    the count is an upper bound, said in JSON and text (as the notebook display does)."""
    import pyarrow as pa

    lakehouse_of(project).create_namespace("raw")
    table = lakehouse_of(project).create_table("raw.t", {"id": pa.int64()})
    table.append(pa.table({"id": pa.array([1, 2, 3, 4], pa.int64())}))
    lakehouse_of(project).create_table("raw.kept", {"id": pa.int64()}).append(
        pa.table({"id": pa.array([1], pa.int64())})
    )
    lakehouse_of(project).table("raw.t").delete(("id", "<", 3), write_mode="merge-on-read")
    tables = {t["table"]: t for t in as_json(phlo_cli(project, "status", "--json"))["tables"]}
    assert (tables["raw.t"]["rows"], tables["raw.t"]["rows_upper_bound"]) == (4, True)
    assert (tables["raw.kept"]["rows"], tables["raw.kept"]["rows_upper_bound"]) == (1, False)
    lines = phlo_cli(project, "status").output.splitlines()
    assert "≤ 4 rows" in next(line for line in lines if "raw.t " in line)
    assert "≤" not in next(line for line in lines if "raw.kept" in line)


def test_status_of_a_fresh_project_and_of_a_broken_one(project: Path) -> None:
    result = phlo_cli(project, "status", "--json")
    assert result.exit_code == 0, result.output  # no lakehouse yet: said, not created
    assert as_json(result)["lakehouse"] is None and as_json(result)["tables"] == []
    assert "not created yet" in phlo_cli(project, "status").output
    assert not (project / ".phlo").exists()
    result = phlo_cli(project, "--root", str(project / "typo"), "status")
    assert result.exit_code == 4 and "no_lakehouse" in result.output  # a named path must exist
    assert not (project / "typo").exists()
    lakehouse_of(project)
    result = phlo_cli(project, "status", "--json")
    assert result.exit_code == 0
    assert as_json(result)["runs"] == [] and as_json(result)["wap_branches"] == []
    assert not (project / ".phlo" / "dagster").exists()  # status creates no Dagster home
    (project / "phlo.yaml").write_text("lakehose: x\n")
    result = phlo_cli(project, "status")
    assert result.exit_code == 3
    assert (
        "[config]" in result.output
        and "unknown key lakehose (did you mean lakehouse?)" in result.output
    )


# --- doctor ------------------------------------------------------------------------------------


def test_doctor_on_a_healthy_project(project: Path) -> None:
    result = phlo_cli(project, "doctor", "--json")
    assert result.exit_code == 0, result.output
    checks = {c["check"]: c for c in as_json(result)["checks"]}
    assert {"python", "extra dagster", "settings", "lakehouse", "postgres"} <= set(checks)
    assert all(c["status"] == "ok" for c in checks.values())
    assert "created on first use" in checks["lakehouse"]["detail"]
    assert not (project / ".phlo" / "catalog.db").exists()  # doctor creates no lakehouse


def test_doctor_says_what_to_fix(project: Path) -> None:
    (project / "phlo.yaml").write_text("wap: {enabled: maybe}\n")
    result = phlo_cli(project, "doctor")
    assert result.exit_code == 1
    assert (
        "FAIL  settings" in result.output and "wap.enabled must be true or false" in result.output
    )
    assert "fix: correct the key named above" in result.output

    (project / "phlo.yaml").write_text("lakehouse: lake\n")
    (project / "lake").write_text("not a folder")
    result = phlo_cli(project, "doctor", "--json")
    assert result.exit_code == 1
    lakehouse = {c["check"]: c for c in as_json(result)["checks"]}["lakehouse"]
    assert lakehouse["status"] == "fail" and "is not a folder" in lakehouse["detail"]


def test_doctor_checks_postgres_without_showing_the_password(
    project: Path, postgres_url: str
) -> None:
    (project / ".phlo").mkdir()
    (project / ".phlo" / ".env.local").write_text(f"PHLO_POSTGRES_URL={postgres_url}\n")
    result = phlo_cli(project, "doctor", "--json")
    assert result.exit_code == 0, result.output
    postgres = {c["check"]: c for c in as_json(result)["checks"]}["postgres"]
    assert postgres["status"] == "ok" and "reachable" in postgres["detail"]

    closed = free_port()
    url = f"postgresql://bi:pg-s3cret@127.0.0.1:{closed}/analytics"
    (project / ".phlo" / ".env.local").write_text(f"PHLO_POSTGRES_URL={url}\n")
    result = phlo_cli(project, "doctor")
    assert result.exit_code == 1
    assert "FAIL  postgres" in result.output and "cannot connect to PostgreSQL" in result.output
    assert "pg-s3cret" not in result.output


def test_doctor_on_the_scaled_profile(project: Path) -> None:
    result = phlo_cli(project, "--profile", "scaled", "doctor")
    assert result.exit_code == 1
    assert "profile 'scaled' (flag --profile) needs storage.bucket" in result.output


# --- config show -------------------------------------------------------------------------------


def test_config_show_gives_values_sources_and_masks_secrets(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "phlo.yaml").write_text(
        (project / "phlo.yaml").read_text()
        + "profiles:\n  scaled:\n    storage: {bucket: lake, secret_access_key: s3-s3cret}\n"
        "    catalog: {uri: 'http://127.0.0.1:8181'}\n    trino: {host: 127.0.0.1}\n"
    )
    (project / ".phlo").mkdir()
    (project / ".phlo" / ".env.local").write_text(
        "PHLO_POSTGRES__URL=postgresql://bi:pg-s3cret@127.0.0.1:5432/analytics\n"
    )
    monkeypatch.setenv("PHLO_NAMESPACE", "bronze")
    result = phlo_cli(project, "--profile", "scaled", "config", "show", "--json")
    assert result.exit_code == 0, result.output
    shown = as_json(result)
    assert "s3cret" not in result.output
    assert shown["profile"] == "scaled" and shown["lakehouse_path"] == str(project / ".phlo")
    assert shown["settings"]["storage"]["secret_access_key"] == "***"
    assert shown["target"]["warehouse"] == "s3://lake"
    assert shown["target"]["properties"]["s3.secret-access-key"] == "***"
    assert shown["settings"]["postgres"]["url"] == "postgresql://bi:***@127.0.0.1:5432/analytics"
    assert shown["settings"]["namespace"] == "bronze"
    assert shown["sources"]["namespace"] == "environment variable PHLO_NAMESPACE"
    assert shown["sources"]["profile"] == "flag --profile"
    assert shown["sources"]["storage.bucket"].endswith("phlo.yaml: profiles.scaled.storage.bucket")
    assert shown["sources"]["postgres.url"].endswith(".env.local: PHLO_POSTGRES__URL")

    human = phlo_cli(project, "config", "show")
    assert human.exit_code == 0 and "s3cret" not in human.output
    assert f"lakehouse {project / '.phlo'}" in human.output
    assert "environment variable PHLO_NAMESPACE" in human.output


def test_config_show_of_bad_settings(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHLO_WAP__BRANCH_RETENTION_HOURS", "soon")
    result = phlo_cli(project, "config", "show", "--json")
    assert result.exit_code == 3
    error = as_json(result)["error"]
    assert error["code"] == "config"
    assert "environment variable PHLO_WAP__BRANCH_RETENTION_HOURS" in error["message"]
    assert "config show" in error["hint"]


# --- validate ----------------------------------------------------------------------------------


def test_validate_the_project(project: Path) -> None:
    with_quality(project, max_value=100)
    result = phlo_cli(project, "validate", "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["valid"] and report["ingestions"] == ["dlt_events", "dlt_clicks", "dlt_users"]
    assert report["quality"] == ["events_quality"]
    assert "dlt_events:range_check_value" in report["definitions"]["asset_checks"]
    assert "auto_promotion_sensor" in report["definitions"]["sensors"]
    human = phlo_cli(project, "validate")
    assert "3 ingestions, 1 quality definitions" in human.output and "valid" in human.output


def test_validate_names_the_broken_module(project: Path) -> None:
    (project / "workflows" / "broken.py").write_text("raise RuntimeError('half-written module')\n")
    result = phlo_cli(project, "validate")
    assert result.exit_code == 3
    assert f"[config] {project / 'workflows' / 'broken.py'}: importing workflows.broken" in (
        result.output
    )
    assert "RuntimeError: half-written module" in result.output
    assert "Traceback" not in result.output


def test_validate_a_file_still_works_and_needs_both_arguments(project: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    good, bad = project / "good.parquet", project / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(events_of("2025-01-02")), good)
    pq.write_table(pa.Table.from_pylist([{"id": 1, "category": "z", "value": -1.0}]), bad)
    spec = f"{project / 'workflows' / 'schemas' / 'events.py'}:EventSchema"
    assert phlo_cli(project, "validate", str(good), "--schema", spec).exit_code == 0
    failed = phlo_cli(project, "validate", str(bad), "--schema", spec, "--json")
    assert failed.exit_code == 1
    assert {f["column"] for f in as_json(failed)["failures"]} == {"category", "value"}
    result = phlo_cli(project, "validate", str(good))
    assert result.exit_code == 2 and "needs both PATH and --schema" in result.output


# --- the lakehouse the command line opens ------------------------------------------------------


def test_root_defaults_to_the_projects_lakehouse(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "phlo.yaml").write_text("lakehouse: data/lake\n")
    for folder, name in ((project / "data" / "lake", "from_yaml"), (project / "env", "from_env")):
        lh = phlo.Lakehouse.open(folder)
        lh.create_namespace(name)
    deep = project / "workflows" / "ingestion"
    monkeypatch.chdir(deep)  # the nearest folder holding phlo.yaml is the project
    assert CliRunner().invoke(main, ["namespaces"]).output.split() == ["from_yaml"]
    monkeypatch.setenv("PHLO_LAKEHOUSE", str(project / "env"))
    assert CliRunner().invoke(main, ["namespaces"]).output.split() == ["from_env"]
    flagged = CliRunner().invoke(main, ["--root", str(project / "data" / "lake"), "namespaces"])
    assert flagged.output.split() == ["from_yaml"]


def test_root_flag_reaches_the_project_code(project: Path, tmp_path: Path) -> None:
    """`--root` is exported to the runs (ingestions load the settings themselves)."""
    elsewhere = tmp_path / "elsewhere"
    result = phlo_cli(
        project,
        "--root",
        str(elsewhere),
        "materialize",
        "--select",
        "dlt_events",
        "--partition",
        "2025-01-02",
    )
    assert result.exit_code == 0, result.output
    assert phlo.Lakehouse.open(elsewhere).table("raw.events").to_arrow().num_rows == 5
    assert not (project / ".phlo" / "catalog.db").exists()
    assert "PHLO_LAKEHOUSE" not in os.environ  # restored after the command


def test_commands_open_the_profiles_catalog_and_warehouse(project: Path) -> None:
    shared = project / "shared"
    shared.mkdir()
    (project / "phlo.yaml").write_text(
        "profiles:\n  scaled:\n    catalog: {uri: 'sqlite:///shared/catalog.db'}\n"
        f"    storage: {{warehouse: '{(shared / 'warehouse').as_uri()}'}}\n"
    )
    result = phlo_cli(project, "--profile", "scaled", "branch", "create", "dev")
    assert result.exit_code == 0, result.output
    lh = phlo.Lakehouse.connect(
        f"sqlite:///{shared / 'catalog.db'}", (shared / "warehouse").as_uri()
    )
    assert "dev" in lh.branches()
    assert not (project / ".phlo" / "catalog.db").exists()  # not the embedded folder
    doctor = as_json(phlo_cli(project, "--profile", "scaled", "doctor", "--json"))
    (check,) = [c for c in doctor["checks"] if c["check"] == "lakehouse"]
    assert check["status"] == "ok" and check["detail"].startswith("catalog sqlite:///")
