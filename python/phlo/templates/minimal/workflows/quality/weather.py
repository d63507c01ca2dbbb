"""Quality checks of the weather tables: they run on each run's partition, on the run's
branch, and a failing blocking check keeps the run from being published."""

from phlo import phlo_quality
from phlo.quality import CountCheck, NullCheck, RangeCheck, UniqueCheck


@phlo_quality(
    table="raw.readings",
    checks=[
        NullCheck(columns=["reading_id", "station", "observed_at", "temperature_c"]),
        UniqueCheck(columns=["reading_id"]),
        RangeCheck(column="temperature_c", min_value=-50, max_value=50),
        CountCheck(min_rows=24),
    ],
)
def readings_quality() -> None:
    """Each day's readings are complete, unique and plausible."""
