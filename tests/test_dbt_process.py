"""dbt in phlo's process leaves the process as it found it: the working directory the other
threads use, no asyncio loops, no open log files, loggers, environment, ``sys.path`` or signal
handlers; a failed clean-up still cleans up; a project changed since it was loaded is built as
it is now; and two projects built in turn each get their own manifest, profile and target."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from dbt_support import DBT, INTERRUPTING_MODEL, lakehouse_of, orders_module, parsed_shop, shop
from phlo.errors import ConfigError, StorageError
from phlo.transforms import DbtBuild, build, find_dbt_project

DAY = "2025-01-02"
#: The module a gated Python model finds its events in (the test puts it in sys.modules).
GATE = "phlo_test_dbt_gate"
#: How long either side of a gate waits for the other before giving up: a safety net that
#: turns a broken build into a failure instead of a hang, never a measure of speed.
PATIENCE = 600.0

#: The fixtures of dbt_support, used by the tests below.
FIXTURES = (parsed_shop, shop)

GATED_MODEL = f"""\
import sys


def model(dbt, session):
    dbt.config(materialized="table")
    gate = sys.modules["{GATE}"]
    gate.building.set()
    if not gate.checked.wait({PATIENCE}):
        raise RuntimeError("the test never checked the process while the build ran")
    return session.sql("select 1 as one").arrow()
"""


def ingest(project: Path, day: str = DAY) -> None:
    orders_module(project).shop_orders.run(partition_date=day, lakehouse=lakehouse_of(project))


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """Events a Python model of the project waits on: `building` set by the model while dbt
    runs it, `checked` set by the test once it looked at the process."""
    events = SimpleNamespace(building=threading.Event(), checked=threading.Event())
    monkeypatch.setitem(sys.modules, GATE, events)
    yield events
    events.checked.set()  # a failed test never leaves the build waiting


def wait_while_building(gate: SimpleNamespace, running: Future[DbtBuild]) -> None:
    """Returns once the gated model runs; raises the build's error if it ended before."""
    while not gate.building.wait(0.05):
        if running.done():
            running.result()
            pytest.fail("the build ended without running the gated model")


def test_a_build_leaves_the_working_directory_to_the_processs_other_threads(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gate: SimpleNamespace
) -> None:
    """While dbt builds (here: while a Python model of the build is known to run), another
    thread (a Dagster step, an ingestion reading ./.dlt, a notebook cell) sees the process's
    working directory, not the dbt project's, and its relative paths open its own files."""
    ingest(shop)
    mine = tmp_path / "elsewhere"
    mine.mkdir()
    (mine / "settings.toml").write_text("mine = true\n")
    monkeypatch.chdir(mine)
    (shop / DBT / "models" / "marts" / "gated.py").write_text(GATED_MODEL)
    # A file of the same name in the dbt project: what a chdir to it would open instead.
    (shop / DBT / "settings.toml").write_text("mine = false\n")
    dbt = find_dbt_project(shop)
    assert dbt is not None
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            build, dbt, lakehouse_of(shop), "main", run_id="gated", select=["model.shop.gated"]
        )
        wait_while_building(gate, running)
        seen = (os.getcwd(), Path("settings.toml").read_text())
        gate.checked.set()
        result = running.result()
    assert seen == (str(mine), "mine = true\n")
    assert result.errors == [] and result.nodes["model.shop.gated"].status == "success"
    assert lakehouse_of(shop).table("marts.gated").to_arrow().column("one").to_pylist() == [1]


def test_relative_paths_a_model_reads_resolve_against_the_dbt_project(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt no longer runs in the project's folder, but a model's ``read_csv('data/x.csv')``
    still finds the project's file (DuckDB's file_search_path), and an ``external`` model is
    written under the project (dbt-duckdb's external_root), as with the ``dbt`` command."""
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    data = shop / DBT / "data"
    data.mkdir()
    (data / "rates.csv").write_text("code,rate\na,1.5\nb,2.5\n")
    (shop / DBT / "models" / "marts" / "mrt_rates.sql").write_text(
        "{{ config(materialized='table') }}\nselect * from read_csv('data/rates.csv')"
    )
    (shop / DBT / "models" / "marts" / "mrt_rates_file.sql").write_text(
        "{{ config(materialized='external', format='csv') }}\nselect * from {{ ref('mrt_rates') }}"
    )
    dbt = find_dbt_project(shop)
    assert dbt is not None
    selected = ["model.shop.mrt_rates", "model.shop.mrt_rates_file"]
    result = build(dbt, lakehouse_of(shop), "main", run_id="rates", select=selected)
    result.raise_for_errors()
    rates = lakehouse_of(shop).table("marts.mrt_rates").to_arrow().to_pylist()
    assert rates == [{"code": "a", "rate": 1.5}, {"code": "b", "rate": 2.5}]
    written = (shop / DBT / "mrt_rates_file.csv").read_text().splitlines()
    assert written == ["code,rate", "a,1.5", "b,2.5"]
    assert list(here.iterdir()) == []  # dbt wrote nothing in the process's folder


def test_python_models_leave_no_unclosed_event_loop(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt-duckdb sets an asyncio loop in each dbt thread that runs a Python model; phlo
    closes it when the model is done, so no loop is left for the garbage collector to warn
    about (ResourceWarning, an error here)."""
    ingest(shop)
    (shop / DBT / "models" / "marts" / "mrt_py.py").write_text(
        "import asyncio\n\n"
        "def model(dbt, session):\n"
        "    dbt.config(materialized='table')\n"
        "    loop = asyncio.get_event_loop()  # dbt-duckdb's promise: the thread has one\n"
        "    assert not loop.is_closed()\n"
        "    return session.sql('select 1 as one').arrow()\n"
    )
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        for run in ("one", "two"):
            result = build(
                dbt, lakehouse_of(shop), "main", run_id=run, select=["model.shop.mrt_py"]
            )
            result.raise_for_errors()
        gc.collect()
    assert [str(u.exc_value) for u in unraisable] == []


def test_a_model_added_after_the_project_was_loaded_is_built_and_reported(shop: Path) -> None:
    """A notebook loads the project, writes a new model, builds: the build runs the model and
    its result lists it (the DbtProject passed was parsed before the file existed)."""
    ingest(shop)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    (shop / DBT / "models" / "marts" / "mrt_new.sql").write_text(
        "{{ config(materialized='table') }}\nselect count(*) as orders from {{ ref('stg_orders') }}"
    )
    result = build(dbt, lakehouse_of(shop), "main", run_id="new", partition_date=DAY)
    assert result.errors == []
    write = result.nodes["model.shop.mrt_new"].write
    assert write is not None and write.outcome == "created"
    assert lakehouse_of(shop).table("marts.mrt_new").to_arrow().column("orders").to_pylist() == [4]
    # A model removed since is a clear error when selected, not a KeyError.
    (shop / DBT / "models" / "marts" / "mrt_new.sql").unlink()
    with pytest.raises(ConfigError, match=r"has no node model\.shop\.mrt_new"):
        build(dbt, lakehouse_of(shop), "main", run_id="gone", select=["model.shop.mrt_new"])


def test_a_model_rewritten_within_its_files_time_is_built_as_rewritten(shop: Path) -> None:
    """A model written again with the same size right after a build, on a filesystem keeping
    whole seconds (here: its time set back), is not taken for the one already parsed."""
    ingest(shop)
    model = shop / DBT / "models" / "marts" / "mrt_flag.sql"
    model.write_text("{{ config(materialized='table') }}\nselect 1 as flag")
    dbt = find_dbt_project(shop)
    assert dbt is not None
    lh = lakehouse_of(shop)
    build(dbt, lh, "main", run_id="one", select=["model.shop.mrt_flag"]).raise_for_errors()
    written = model.stat()
    model.write_text("{{ config(materialized='table') }}\nselect 2 as flag")
    os.utime(model, ns=(written.st_atime_ns, written.st_mtime_ns))
    build(dbt, lh, "main", run_id="two", select=["model.shop.mrt_flag"]).raise_for_errors()
    assert lh.table("marts.mrt_flag").to_arrow().column("flag").to_pylist() == [2]


def test_a_failed_clean_up_step_still_runs_the_others_and_raises_a_storage_error(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing dbt-duckdb's database fails (after closing it: a failed checkpoint): dbt's
    loggers are detached and its log file closed all the same, the error is a StorageError
    naming the step, and the next build runs."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt_common.events.event_manager_client import get_event_manager

    ingest(shop)
    fail_closing_duckdb(monkeypatch)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    lh = lakehouse_of(shop)
    with pytest.raises(StorageError, match="closing dbt-duckdb's database") as failed:
        build(dbt, lh, "main", run_id="failing", partition_date=DAY)
    assert isinstance(failed.value.__cause__, OSError)
    # The failed build's folder is kept, with dbt's log of it, closed.
    (log,) = (shop / ".phlo" / "staging" / "failing").rglob("dbt.log")
    assert "Completed successfully" in log.read_text()
    assert get_event_manager().loggers == []
    assert logging.getLogger("file_log").handlers == []
    assert DuckDBConnectionManager._ENV is None
    assert _build_files_open(shop) == []
    monkeypatch.undo()
    again = build(dbt, lh, "main", run_id="again", partition_date=DAY)
    assert again.errors == [] and again.nodes["model.shop.fct_orders"].status == "success"


def test_an_interrupt_stays_an_interrupt_when_a_clean_up_step_fails(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the build, then a clean-up step fails: the caller sees the interrupt, with
    a note about the clean-up, not a StorageError that would hide it."""
    ingest(shop)
    (shop / DBT / "models" / "marts" / "interrupting.py").write_text(INTERRUPTING_MODEL)
    fail_closing_duckdb(monkeypatch)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    with pytest.raises(KeyboardInterrupt) as interrupted:
        build(dbt, lakehouse_of(shop), "main", run_id="both", select=["model.shop.interrupting"])
    assert any("injected: checkpoint failed" in note for note in interrupted.value.__notes__)


def test_a_build_leaves_no_process_wide_state_behind(shop: Path) -> None:
    """What dbt sets for the process (environment, sys.path, signal handlers, loggers and
    their files, warning filters, the working directory, threads) is as before once a build
    returned."""
    ingest(shop)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    lh = lakehouse_of(shop)
    build(dbt, lh, "main", run_id="warm", partition_date=DAY).raise_for_errors()  # dbt imported
    before, threads = _process_state(), _threads()
    build(dbt, lh, "main", run_id="checked", partition_date=DAY).raise_for_errors()
    after = _process_state()
    assert after == before
    # No thread of the build is left; threads of earlier tests on this worker (an HTTP
    # source's request handlers) may end meanwhile.
    assert {t.name for t in _threads() - threads if t.is_alive()} == set()
    assert _build_files_open(shop) == []


def test_two_projects_built_in_turn_each_get_their_own_manifest_profile_and_target(
    parsed_shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process builds two different dbt projects alternately (two notebooks' projects, a
    code location's two repositories): neither sees the other's models, lakehouse or
    artifacts, and neither is parsed again."""
    first = tmp_path / "first" / "shop"
    second = tmp_path / "second" / "shop"
    for folder in (first, second):
        shutil.copytree(parsed_shop, folder)
        ingest(folder)
        sys.modules.pop("workflows.ingestion.shop.orders", None)
    config = second / DBT / "dbt_project.yml"
    settings = yaml.safe_load(config.read_text())
    settings["name"] = "outlet"
    settings["models"] = {"outlet": settings["models"]["shop"]}
    config.write_text(yaml.safe_dump(settings))
    (second / DBT / "models" / "marts" / "mrt_outlet.sql").write_text(
        "{{ config(materialized='table') }}\nselect 'outlet' as project"
    )
    projects = {folder: find_dbt_project(folder) for folder in (first, second)}
    parses = None
    for run in range(2):
        if run == 1:  # each project's manifest is kept from its first build on
            parses = _count_parses(monkeypatch)
        for folder, dbt in projects.items():
            assert dbt is not None
            result = build(dbt, lakehouse_of(folder), "main", run_id=f"{folder.parent.name}{run}")
            assert result.errors == []
            name = "shop" if folder == first else "outlet"
            assert {uid.split(".")[1] for uid in result.nodes} == {name}, result.nodes
            assert ("model.outlet.mrt_outlet" in result.nodes) == (folder == second)
    assert parses is not None and parses() == 0
    marts = {folder: lakehouse_of(folder).tables("marts") for folder in (first, second)}
    assert "marts.mrt_outlet" in marts[second] and "marts.mrt_outlet" not in marts[first]
    # Each build's dbt artifacts and log went to its own folder, under its own lakehouse.
    for folder in (first, second):
        assert _build_files_open(folder) == []


def test_threads_asking_for_a_project_at_once_share_one_parse(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Builds starting in several threads at once (a Dagster step per thread, a notebook's
    pool) on a project the process has not parsed: one parse, and each thread gets its own
    copy of dbt's manifest (a build modifies it)."""
    from phlo.transforms import project

    monkeypatch.setattr(project, "_MANIFESTS", {})
    parses = _count_parses(monkeypatch)
    start = threading.Barrier(4)

    def load(_: int) -> tuple[Any, Any]:
        start.wait()
        return project.current_project(shop / DBT)

    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(load, range(4)))
    assert parses() == 1
    assert {len(dbt.manifest["nodes"]) for dbt, _ in loaded} == {
        len(loaded[0][0].manifest["nodes"])
    }
    assert len({id(manifest) for _, manifest in loaded}) == 4
    assert all("model.shop.fct_orders" in manifest.nodes for _, manifest in loaded)


def fail_closing_duckdb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing dbt-duckdb's database raises, after closing it (a failed checkpoint)."""
    from dbt.adapters.duckdb.environments.local import LocalEnvironment

    close = LocalEnvironment.close

    def failing_close(self: LocalEnvironment) -> None:
        close(self)
        # Not from `__del__`: an environment collected whenever the garbage collector runs
        # would report the failure against no build of this test's.
        if sys._getframe(1).f_code.co_name != "__del__":
            raise OSError("injected: checkpoint failed")

    monkeypatch.setattr(LocalEnvironment, "close", failing_close)


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """A function returning how many dbt parses ran since this was called."""
    from phlo.transforms import project

    seen: list[Path] = []
    parse = project._parse

    def counting(folder: Path, stamp: str) -> None:
        seen.append(folder)
        parse(folder, stamp)

    monkeypatch.setattr(project, "_parse", counting)
    return lambda: len(seen)


def _process_state() -> dict[str, Any]:
    loggers = {
        name: (logger.level, logger.propagate, [type(h).__name__ for h in logger.handlers])
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {
        "cwd": os.getcwd(),
        "environ": dict(os.environ),
        "sys.path": list(sys.path),
        "signals": {s.name: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)},
        "root logger": (logging.root.level, list(logging.root.handlers)),
        "warning filters": list(warnings.filters),
        "streams": (sys.stdout, sys.stderr),
        "loggers": loggers,
    }


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def _build_files_open(project: Path) -> list[str]:
    """Files of `project`'s dbt builds (their folders under ``.phlo/staging``, the dbt project)
    this process holds open (Linux: /proc/self/fd)."""
    folders = (str(project / ".phlo" / "staging"), str(project / DBT))
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(folders):
            found.append(target)
    return found
