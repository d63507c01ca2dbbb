"""The contracts of the weather tables: phlo validates every run against them before it
writes, and creates the Iceberg tables from them."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class ReadingSchema(pa.DataFrameModel):
    """One hourly reading of one weather station."""

    reading_id: Series[str] = pa.Field(nullable=False, unique=True)
    station: Series[str] = pa.Field(nullable=False, str_matches=r"^[A-Z]{3}$")
    observed_at: Series[pd.DatetimeTZDtype] = pa.Field(
        nullable=False, dtype_kwargs={"unit": "us", "tz": "UTC"}
    )
    temperature_c: Series[float] = pa.Field(ge=-90, le=60)
    humidity_pct: Series[float] = pa.Field(ge=0, le=100, nullable=True)

    class Config:
        strict = True
        coerce = True
