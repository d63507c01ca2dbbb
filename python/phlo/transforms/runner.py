"""dbt in phlo's own process (dbt-core's ``dbtRunner``), so that a build pays for what dbt runs,
not for dbt's start-up (~2.6 CPU-s of imports) and a parse of the project (~3-5 CPU-s).

dbt keeps process-wide state: its flags, its event loggers, the registered adapter and
dbt-duckdb's open database. Invocations therefore hold one lock, run in the dbt project's folder
(relative paths in models and macros resolve as they do for the ``dbt`` command), and close the
build's DuckDB file before returning (phlo reads it next, with settings of its own)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phlo.errors import ConfigError

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

__all__ = ["LOCK", "run_dbt"]

#: Held by every dbt invocation (and by whoever reads or fills phlo's cache of manifests).
LOCK = threading.RLock()
#: Levels of the events a ``dbt`` command prints (the ones quoted in phlo's errors).
_SHOWN = frozenset({"info", "warn", "error"})


def run_dbt(
    args: Sequence[str],
    folder: Path,
    profiles_dir: Path,
    target: Path,
    *,
    manifest: Manifest | None = None,
) -> Any:
    """Runs ``dbt <args>`` on the project in `folder` with phlo's profile in `profiles_dir`,
    its artifacts and logs in `target`; with `manifest`, dbt uses it instead of parsing (it is
    modified: pass a copy). Returns dbt's result (a ``Manifest`` for ``parse``, the run's
    results for ``build``). A dbt that could not load the project (bad YAML, a Jinja error, an
    unknown ref) is a `ConfigError` with what dbt printed; failed nodes are not errors here
    (they are in ``run_results.json``)."""
    from dbt.cli.main import dbtRunner

    from phlo.transforms.profile import PROFILE, TARGET

    shown: list[str] = []

    def keep(event: Any) -> None:
        if event.info.level in _SHOWN and event.info.msg.strip():
            shown.append(event.info.msg)

    command = [
        *args,
        "--project-dir",
        str(folder),
        "--profiles-dir",
        str(profiles_dir),
        "--profile",
        PROFILE,
        "--target",
        TARGET,
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
        # The events reach phlo through `keep`; dbt's own log file stays in `target`.
        "--log-level",
        "none",
        "--no-send-anonymous-usage-stats",
    ]
    with LOCK, contextlib.chdir(folder):
        try:
            done = dbtRunner(manifest=manifest, callbacks=[keep]).invoke(command)
        finally:
            _release()
    if done.exception is not None and not isinstance(done.exception, Exception):
        # Ctrl-C (a notebook, a supervisor), a Dagster run's termination: dbt catches them all,
        # but they are the caller's to see, not a project dbt could not load.
        raise done.exception
    if done.exception is not None or (
        not done.success and not (target / "run_results.json").exists()
    ):
        problem = str(done.exception or "")
        if problem not in "\n".join(shown):  # an error dbt raised before it logged anything
            shown.append(problem)
        raise ConfigError(f"dbt {args[0]} of {folder} failed: {_last_lines(shown)}")
    return done.result


def _release() -> None:
    """Closes the DuckDB database dbt-duckdb keeps open (``keep_open``: the plugin's views live
    in it) and detaches dbt's loggers from the build's log file."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt_common.events.event_manager_client import cleanup_event_logger

    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()  # type: ignore[no-untyped-call]
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]
    cleanup_event_logger()


def _last_lines(lines: list[str], count: int = 15) -> str:
    text = [line for message in lines for line in message.splitlines() if line.strip()]
    return "\n".join(text[-count:])
