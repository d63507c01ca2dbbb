"""What phlo reads back from a finished Dagster run's event log (promotion, in another process
than the run, decides from it)."""

from __future__ import annotations

import dagster as dg

__all__ = ["run_events"]


def run_events(
    instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType
) -> list[dg.DagsterEvent]:
    """The events of type `event_type` run `run_id` logged, in order."""
    records = instance.get_records_for_run(run_id, of_type=event_type).records
    events = (record.event_log_entry.dagster_event for record in records)
    return [event for event in events if event is not None]
