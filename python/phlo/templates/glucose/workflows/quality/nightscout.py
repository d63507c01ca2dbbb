"""Checks on the raw readings of each run's partition; error-level checks block publication."""

from phlo import (
    CountCheck,
    FreshnessCheck,
    NullCheck,
    RangeCheck,
    UniqueCheck,
    phlo_quality,
)


@phlo_quality(
    table="raw.glucose_entries",
    checks=[
        NullCheck(columns=["_id", "sgv", "date_string"]),
        UniqueCheck(columns=["_id"]),
        RangeCheck(column="sgv", min_value=40, max_value=400),
        CountCheck(min_rows=200, max_rows=300),
        # The shipped readings are from 2025: this one warns (it does not block publication).
        FreshnessCheck(timestamp_column="date_string", max_age_hours=24, severity="warn"),
    ],
)
def glucose_quality() -> None:
    """A day of 5-minute readings: 288 expected; values inside the sensor's range."""
