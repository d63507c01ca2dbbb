"""dbt in phlo's own process (dbt-core's ``dbtRunner``), so that a build pays for what dbt runs,
not for dbt's start-up (~2.6 CPU-s of imports) and a parse of the project (~3-5 CPU-s).

dbt keeps process-wide state: its flags, its event loggers, the registered adapter and
dbt-duckdb's open database. Invocations therefore hold one lock, and release that state before
returning (`phlo.transforms.process_state`): phlo reads the build's DuckDB file next, with
settings of its own. They never change the process's working directory, which the other
threads of the process (a Dagster step, an ingestion, a notebook) rely on: every path dbt uses
is given as an absolute one, and relative paths a model's SQL reads resolve against the dbt
project folder by DuckDB's ``file_search_path`` (`phlo.transforms.profile`)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phlo.errors import ConfigError, StorageError

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

    from phlo.transforms.process_state import close_python_model_loops, release
    from phlo.transforms.profile import PROFILE, TARGET

    # Absolute, as dbt would otherwise resolve them against the process's working directory.
    folder, profiles_dir, target = folder.absolute(), profiles_dir.absolute(), target.absolute()
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
        # Nothing on the terminal (the events reach phlo through `keep`); what a `dbt` command
        # prints goes to the log file in `target` (without this, `none` applies to it too).
        "--log-level",
        "none",
        "--log-level-file",
        "info",
        "--no-send-anonymous-usage-stats",
    ]
    with LOCK:
        close_python_model_loops()
        try:
            done = dbtRunner(manifest=manifest, callbacks=[keep]).invoke(command)
        except BaseException as exc:
            _note(exc, release())
            raise
        unreleased = release()
    if done.exception is not None and not isinstance(done.exception, Exception):
        # Ctrl-C (a notebook, a supervisor), a Dagster run's termination: dbt catches them all,
        # but they are the caller's to see, not a project dbt could not load.
        _note(done.exception, unreleased)
        raise done.exception
    if done.exception is not None or (
        not done.success and not (target / "run_results.json").exists()
    ):
        problem = str(done.exception or "")
        if problem not in "\n".join(shown):  # an error dbt raised before it logged anything
            shown.append(problem)
        error = ConfigError(f"dbt {args[0]} of {folder} failed: {_last_lines(shown)}")
        _note(error, unreleased)
        raise error
    if unreleased is not None:
        raise unreleased
    return done.result


def _note(error: BaseException, unreleased: StorageError | None) -> None:
    """Notes on `error` (the one the caller sees) that dbt's state was not all released."""
    if unreleased is not None:
        error.add_note(f"Then: {unreleased}")


def _last_lines(lines: list[str], count: int = 15) -> str:
    text = [line for message in lines for line in message.splitlines() if line.strip()]
    return "\n".join(text[-count:])
