"""A worker process of `phlo backfill --parallel`: ``python -m phlo.cli.backfill_worker ROOT``
loads the project's definitions once, then runs one task per line of stdin (``{"partition":
..., "assets": [...]}``) and answers each with one line of JSON (a `RunReport`) on stdout,
after a ``{"notice": ...}`` line for each retry of a source (`phlo.cli.notices`).

Workers are plain processes started by module name, not `multiprocessing` ones: those re-import
the caller's ``__main__``, which a console script, a notebook or a test runner may not allow."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(root: str) -> None:
    # Only reports go to the real stdout: whatever a library prints goes to stderr.
    reports = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    import phlo.dagster
    from phlo.cli.execution import assets_of, open_instance, run_assets
    from phlo.cli.notices import retries_shown

    def send(message: dict[str, object]) -> None:
        reports.write(json.dumps(message) + "\n")
        reports.flush()

    defs = phlo.dagster.definitions(root)
    # The backfill command repairs (and reports) runs of dead workers: a worker starting late
    # would otherwise take a sibling's dead run and say so where nobody reads it.
    instance = open_instance(Path(root), repair=False)
    with retries_shown(lambda notice: send({"notice": notice})):
        for line in sys.stdin:
            task = json.loads(line)
            keys = set(task["assets"])
            assets = [a for a in assets_of(defs) if any(k.to_user_string() in keys for k in a.keys)]
            send(run_assets(defs, assets, task["partition"], instance).to_json())


if __name__ == "__main__":
    main(sys.argv[1])
