"""The contract of the raw readings, written the way users of the original framework write it:
plain annotations on a `PhloSchema` (`T | None` is nullable, `datetime` is a UTC timestamp,
`_id` is a real column)."""

from datetime import datetime

from pandera.pandas import Field

from phlo import PhloSchema

DIRECTIONS = [
    "DoubleUp",
    "SingleUp",
    "FortyFiveUp",
    "Flat",
    "FortyFiveDown",
    "SingleDown",
    "DoubleDown",
    "NOT COMPUTABLE",
]


class RawGlucoseEntries(PhloSchema):
    """One CGM reading as Nightscout serves it (dlt turns camelCase into snake_case)."""

    _id: str = Field(unique=True)
    sgv: int = Field(ge=20, le=600, description="sensor glucose, mg/dL")
    date: int = Field(description="epoch milliseconds")
    date_string: datetime
    trend: int | None
    direction: str | None = Field(isin=DIRECTIONS)
    device: str | None
    type: str
    utc_offset: int | None
