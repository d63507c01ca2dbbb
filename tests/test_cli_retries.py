"""A source that raises is retried (by default after 30, 60 and 120 s): the command must say
so as each retry starts waiting, in `phlo materialize` and from `phlo backfill --parallel`'s
workers, or it looks hung. On a copy of tests/projects/events."""

from __future__ import annotations

from pathlib import Path

from tests.dagster_support import project
from tests.test_cli_project import backfill, clean_env, phlo_cli

__all__ = ["clean_env", "project"]  # fixtures

FLAKY = """
from workflows.schemas.events import UserSchema

from phlo import phlo_ingestion


@phlo_ingestion(table_name="flaky", unique_key="id", validation_schema=UserSchema,
                group="flaky", max_retries=2, retry_delay_seconds=0.5)
def flaky(partition_date: str) -> list[dict[str, object]]:
    raise ConnectionError("refused")
"""

NOTICES = [
    "retry: flaky: attempt 1 of 3 failed (ConnectionError: refused); retrying in 0.5s",
    "retry: flaky: attempt 2 of 3 failed (ConnectionError: refused); retrying in 1s",
]


def test_materialize_prints_each_retry_and_its_wait(project: Path) -> None:
    """Before, the line reached the terminal only by Python's last-resort handler: not at
    all once anything (here pytest) configured logging."""
    (project / "workflows" / "ingestion" / "flaky.py").write_text(FLAKY)
    result = phlo_cli(project, "materialize", "--select", "dlt_flaky", "--partition", "2025-01-02")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == NOTICES
    assert "the source failed on all 3 attempts (max_retries=2)" in result.stdout


def test_parallel_backfill_passes_its_workers_retries_on(project: Path) -> None:
    """Before, they went to the worker's captured stderr: nothing was shown for minutes."""
    (project / "workflows" / "ingestion" / "flaky.py").write_text(FLAKY)
    result = backfill(
        project, "2025-01-02", "2025-01-03", "--select", "dlt_flaky", "--parallel", "2"
    )
    assert result.exit_code == 1
    assert sorted(result.stderr.splitlines()) == sorted(NOTICES * 2)
    assert "0 partitions succeeded, 2 failed" in result.stdout
