"""The contract of the ingested orders."""

import pandera.pandas as pa
from pandera.typing import Series


class OrderSchema(pa.DataFrameModel):
    id: Series[int] = pa.Field(nullable=False)
    category: Series[str]
    amount: Series[float] = pa.Field(ge=0)

    class Config:
        strict = True
        coerce = True
