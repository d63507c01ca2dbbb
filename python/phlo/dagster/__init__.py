"""phlo on Dagster: `definitions(project_dir)` turns a project's `@phlo_ingestion`s into
partitioned, scheduled, checked assets that write through Write-Audit-Publish; `promote`
publishes a run (what the ``auto_promotion_sensor`` does for runs the daemon launched).

    # definitions.py of a project
    import phlo.dagster
    defs = phlo.dagster.definitions(".")
"""

from phlo._extras import require

require("dagster", "phlo.dagster")

from phlo.dagster.definitions import definitions  # noqa: E402
from phlo.dagster.promotion import RunPromotion, failed_blocking_checks, promote  # noqa: E402
from phlo.dagster.resource import PhloResource  # noqa: E402

__all__ = ["PhloResource", "RunPromotion", "definitions", "failed_blocking_checks", "promote"]
