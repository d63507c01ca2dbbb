"""The contracts of the project's tables."""

import pandera.pandas as pa
from pandera.typing import Series


class EventSchema(pa.DataFrameModel):
    id: Series[int] = pa.Field(nullable=False)
    category: Series[str] = pa.Field(isin=["a", "b", "c"])
    value: Series[float] = pa.Field(ge=0)

    class Config:
        strict = True
        coerce = True


class UserSchema(pa.DataFrameModel):
    id: Series[int] = pa.Field(nullable=False)
    name: Series[str]

    class Config:
        strict = True
        coerce = True
