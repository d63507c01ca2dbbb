"""`phlo materialize` and `phlo backfill`: the project's assets run in this process through
Dagster (checks included), each run published through WAP as the promotion sensor would."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from phlo._extras import require
from phlo.cli import output
from phlo.cli.app import main, project_config
from phlo.cli.execution import (
    RunReport,
    open_instance,
    plan,
    repair_runs,
    run_assets,
    select,
)
from phlo.cli.notices import RETRY, retries_shown

if TYPE_CHECKING:
    import dagster as dg

    from phlo.config import ProjectConfig

_SELECT_HELP = (
    "Assets to run: a key (dlt_events), a glob (dlt_*) or group:NAME; repeatable. Default: all."
)


def load_definitions(config: ProjectConfig) -> dg.Definitions:
    require("dagster", "running the project's assets")
    import phlo.dagster

    with output.activity("loading the project"):
        return phlo.dagster.definitions(config.root)


@main.command()
@click.option("--select", "patterns", multiple=True, help=_SELECT_HELP)
@click.option(
    "--partition",
    help="Day to run (YYYY-MM-DD). Default: the latest partition of each asset.",
)
@output.json_option
@click.pass_context
def materialize(ctx: click.Context, patterns: tuple[str, ...], partition: str | None) -> None:
    """Run the project's assets now, with their checks, and publish each run's writes
    (exit code 1 when a run, a check or a publication failed)."""
    config = project_config(ctx)
    defs = load_definitions(config)
    runs = plan(select(defs, patterns), partition)
    instance = open_instance(config.root)
    config.open_lakehouse()  # a lakehouse that cannot open fails here, not in every step
    reports = []
    with _retries_on_stderr(), output.progress(len(runs), "materializing") as advance:
        for key, assets in runs:
            reports.append(run_assets(defs, assets, key, instance))
            advance(key or "")
    ok = all(r.ok for r in reports)
    if output.is_json(ctx):
        output.print_json({"ok": ok, "runs": [r.to_json() for r in reports]})
    else:
        for report in reports:
            _echo_report(report, config.wap.target)
    if not ok:
        ctx.exit(output.FAILURES)


def _echo_report(report: RunReport, target: str) -> None:
    state = "succeeded" if report.success else "FAILED"
    run = (report.run_id or "-")[:8]
    click.echo(f"{report.partition or 'unpartitioned'}  run {run}  {state}")
    for asset, rows in report.rows.items():
        click.echo(f"  {asset}: {'?' if rows is None else rows} rows")
    for error in report.errors:
        click.echo(f"  error {error}")
    for check in report.checks:
        verdict = "passed" if check.passed else f"FAILED ({check.severity})"
        detail = f": {check.description}" if check.description and not check.passed else ""
        click.echo(f"  check {check.asset}:{check.name} {verdict}{detail}")
    if report.promotion in ("published", "already_published"):
        click.echo(f"  published {', '.join(report.published_tables) or 'no tables'} into {target}")
    elif report.promotion == "no_branch":
        click.echo("  nothing to publish")
    else:
        click.echo(f"  not published ({report.promotion}): {_unpublished_reason(report)}")
    for table, sent in report.postgres.items():
        detail = f"{sent['rows']} rows ({sent['mode']})"
        if sent["mode"] == "unchanged":
            detail = "unchanged (this snapshot was published already)"
        elif sent["rows_deleted"]:
            detail += f", {sent['rows_deleted']} deleted"
        click.echo(f"  published {sent['source']} to PostgreSQL {table}: {detail}")


def _unpublished_reason(report: RunReport) -> str:
    """Why a run was not published, without repeating the errors printed above it."""
    if report.promotion != "blocked" or (report.success and not report.errors):
        return report.promotion_reason
    failed = [
        f"{c.asset}:{c.name}"
        for c in report.checks
        if not c.passed and c.blocking and c.severity == "ERROR"
    ]
    reasons = ["the run failed" + (" (the errors above)" if report.errors else "")]
    if failed:
        reasons.append(f"blocking checks failed: {', '.join(failed)}")
    return "; ".join(reasons)


def _retries_on_stderr() -> contextlib.AbstractContextManager[None]:
    return retries_shown(lambda message: click.echo(RETRY + message, err=True))


def _days(start: dt.date, end: dt.date) -> list[str]:
    if end < start:
        raise click.BadParameter(f"{end} is before --start {start}", param_hint="--end")
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@main.command()
@click.option("--start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day.")
@click.option("--end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day.")
@click.option("--select", "patterns", multiple=True, help=_SELECT_HELP)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Partitions run at once (each in its own process).",
)
@output.json_option
@click.pass_context
def backfill(
    ctx: click.Context,
    start: dt.datetime,
    end: dt.datetime,
    patterns: tuple[str, ...],
    parallel: int,
) -> None:
    """Run the project's assets for every day from --start to --end (one run per day, each
    published on its own); lists the failed days (exit code 1 when any failed)."""
    config = project_config(ctx)
    defs = load_definitions(config)
    assets = select(defs, patterns)
    tasks = [(day, run) for day in _days(start.date(), end.date()) for run in plan(assets, day)]
    reports: list[RunReport] = []
    # Created here, once: workers creating the Dagster storage and the catalog at the same
    # time would race.
    instance = open_instance(config.root)
    config.open_lakehouse()
    with _retries_on_stderr(), output.progress(len(tasks), "backfilling") as advance:
        if parallel == 1:
            for _day, (key, members) in tasks:
                reports.append(run_assets(defs, members, key, instance))
                advance(key or "")
        else:
            keyed = [
                (key, [k.to_user_string() for a in m for k in a.keys]) for _d, (key, m) in tasks
            ]
            try:
                with (
                    _sigterm_as_ctrl_c(),
                    contextlib.closing(_in_processes(config.root, keyed, parallel)) as finished,
                ):
                    for report in finished:
                        reports.append(report)
                        advance(report.partition or "")
            except KeyboardInterrupt:
                raise _interrupted(config, len(reports), len(tasks)) from None
            repair_runs(instance)  # the run of a worker that died is not left STARTED
    reports.sort(key=lambda r: (r.partition or "", r.assets))
    failed = sorted({r.partition or "unpartitioned" for r in reports if not r.ok})
    if output.is_json(ctx):
        output.print_json(
            {
                "ok": not failed,
                "partitions": len({day for day, _ in tasks}),
                "failed_partitions": failed,
                "runs": [r.to_json() for r in reports],
            }
        )
    else:
        for report in reports:
            rows = sum(n or 0 for n in report.rows.values())
            state = "ok" if report.ok else f"FAILED ({report.promotion})"
            click.echo(f"{report.partition}  {', '.join(report.assets)}  {rows} rows  {state}")
        done = len({day for day, _ in tasks}) - len(failed)
        click.echo(f"{done} partitions succeeded, {len(failed)} failed")
        for report in reports:
            if not report.ok:
                reason = "; ".join(report.errors) or report.promotion_reason
                click.echo(f"failed {report.partition}: {reason}")
    if failed:
        ctx.exit(output.FAILURES)


def _in_processes(
    root: Path, tasks: Sequence[tuple[str | None, list[str]]], parallel: int
) -> Generator[RunReport]:
    """Runs `tasks` (partition, asset keys) on `parallel` worker processes
    (`phlo.cli.backfill_worker`, each loading the project once), handing a worker its next
    task when it reports one done; yields the reports in completion order. A worker that dies
    fails its task with the end of its stderr, and the others take the remaining tasks."""
    pending = list(reversed(tasks))
    selector = selectors.DefaultSelector()
    workers = [_Worker(root) for _ in range(min(parallel, len(tasks)))]
    try:
        for worker in workers:
            worker.give(pending.pop())
            selector.register(worker.output, selectors.EVENT_READ, worker)
        while selector.get_map():
            for key, _events in selector.select():
                worker = key.data
                lines = worker.read_lines()
                if lines is None:  # the worker's end of the pipe closed: it died
                    yield worker.crashed()
                    selector.unregister(worker.output)
                    worker.stop()
                    continue
                for line in lines:
                    message = json.loads(line)
                    if "notice" in message:  # the worker runs on
                        click.echo(RETRY + message["notice"], err=True)
                        continue
                    yield RunReport.from_json(message)
                    if pending:
                        worker.give(pending.pop())
                    else:
                        selector.unregister(worker.output)
                        worker.stop()
        for partition, assets in reversed(pending):  # every worker died
            yield RunReport(partition, assets, errors=["not run: every worker process died"])
    except (KeyboardInterrupt, GeneratorExit):
        # Ctrl-C here or in the caller (which closes this generator): the workers stop their
        # runs as `phlo materialize` does (canceled, nothing published), instead of being
        # left to finish and publish them; what each says is passed on.
        for worker in workers:
            worker.interrupt()
        for worker in workers:
            if said := worker.interrupted():
                click.echo(said, err=True)
        raise
    finally:
        for worker in workers:
            worker.stop()


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (a supervisor, `kill`) stops a parallel backfill as Ctrl-C does; by default
    it would end this process at once and leave the workers to finish and publish their runs."""
    if threading.current_thread() is not threading.main_thread():  # no signals arrive there
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(config: ProjectConfig, done: int, total: int) -> output.CliError:
    left = (
        "nothing of them is published (their branches are kept)"
        if config.wap.enabled
        else f"with Write-Audit-Publish off, what they committed before the interrupt is on "
        f"{config.wap.target} (`phlo log --ref {config.wap.target}` shows it)"
    )
    return output.CliError(
        "interrupted",
        f"interrupted: {done} of {total} runs had finished (their outcome stands); "
        f"the runs under way were stopped and recorded CANCELED: {left}",
        output.INTERRUPTED,
        hint="run the command again for the days not done (`phlo status` lists the runs)",
    )


_EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b")


class _Worker:
    """One `phlo.cli.backfill_worker` process and the task it is running."""

    def __init__(self, root: Path) -> None:
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "phlo.cli.backfill_worker", str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            bufsize=0,  # read_lines: no lines left unseen in a buffer the selector ignores
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.input, self.output = self.process.stdin, self.process.stdout
        self.task: tuple[str | None, list[str]] = (None, [])
        self._partial = b""

    def read_lines(self) -> list[str] | None:
        """The whole lines the worker has written since the last call (after the selector
        said its pipe is readable); None when the pipe is closed."""
        chunk = os.read(self.output.fileno(), 1 << 16)
        if not chunk:
            return None
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        return [line.decode() for line in lines]

    def give(self, task: tuple[str | None, list[str]]) -> None:
        self.task = task
        self.input.write((json.dumps({"partition": task[0], "assets": task[1]}) + "\n").encode())
        self.input.flush()

    def crashed(self) -> RunReport:
        code = self.process.wait()
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").strip().splitlines() or ["-"]
        # The exception line of a traceback says most; else the last line.
        cause = next((ln for ln in reversed(lines) if _EXCEPTION_LINE.match(ln)), lines[-1])
        message = f"the worker process exited with code {code}: {cause}"
        return RunReport(self.task[0], self.task[1], errors=[message])

    def interrupt(self) -> None:
        """Ctrl-C to the worker: it stops its run (`phlo.cli.execution._stop`) and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def interrupted(self) -> str | None:
        """The interrupt message of the worker's run, once the worker has exited."""
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            return None
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").splitlines()
        return next((ln for ln in lines if ln.startswith("[interrupted]")), None)

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # a dead worker's pipe
            self.input.close()  # no more tasks: the worker ends
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()
        self.log.close()
