"""`phlo dev`: Dagster's webserver and daemon (``dagster dev``) on the project, bound to
127.0.0.1, sharing the runs of `phlo materialize` (the same ``DAGSTER_HOME``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import click

from phlo._extras import require
from phlo.cli import output
from phlo.cli.app import main, project_config
from phlo.cli.execution import dagster_home

#: The code location `dagster dev` loads: the project's `phlo.dagster.definitions`.
CODE_LOCATION = "phlo.cli.dev_location"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=3000,
    show_default=True,
    help="Port of the Dagster UI.",
)
@output.json_option
@click.pass_context
def dev(ctx: click.Context, host: str, port: int) -> None:
    """Run the Dagster UI and daemon on the project until Ctrl-C (schedules and sensors run,
    so runs launched in the UI are published through WAP)."""
    config = project_config(ctx)
    require("dagster", "phlo dev")
    home = dagster_home(config.root)
    url = f"http://{host}:{port}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PHLO_PROJECT_DIR": str(config.root),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    command = [sys.executable, "-m", "dagster", "dev", "-m", CODE_LOCATION]
    command += ["-d", str(config.root), "-h", host, "-p", str(port)]
    if output.is_json(ctx):
        output.print_json({"url": url, "project": config.root, "dagster_home": home})
    else:
        click.echo(f"Dagster UI for {config.root} on {url} (DAGSTER_HOME={home}); Ctrl-C stops it")
    # A shell that started phlo in the background ignores Ctrl-C for it; dagster dev must not
    # inherit that (it would then ignore SIGTERM too: it maps SIGTERM to its SIGINT handler).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(command, env=env, cwd=config.root)
    # SIGTERM to phlo stops dagster dev the way Ctrl-C does: it then stops its own processes.
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGINT))
    try:
        code = process.wait()
    except KeyboardInterrupt:
        # dagster dev got the same Ctrl-C: let it stop its webserver and daemon itself.
        code = process.wait()
    ctx.exit(output.OK if code in (0, -2, 130) else code)
