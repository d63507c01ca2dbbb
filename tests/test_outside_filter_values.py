"""Filter values as other tools hand them over: the decimals pyarrow and PyIceberg read back
from a table (`Decimal("0E-8")` is a zero of scale 8, `Decimal("1.0E-7")` a small value), and
normalized ones (`Decimal("1E+2")` is 100). Each, used as a filter value on phlo's scans and
deletes, matches exactly the rows PyIceberg's scan with the same value matches."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual, LessThan
from pyiceberg.schema import Schema
from pyiceberg.types import DecimalType, LongType
from tests.outside_support import optional, sql_catalog

import phlo

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "small", DecimalType(18, 8)),
    optional(3, "whole", DecimalType(10, 0)),
)

SMALL = ["0", "0.0000001", "-0.00000001", "100", "12.5", "0.000001", "-3000"]
WHOLE = ["100", "0", "-7", "5", "1000000", "-100", "20"]


def seeded(lh: phlo.Lakehouse) -> list[dict[str, Any]]:
    """raw.t written by PyIceberg, and its rows as pyarrow reads them back."""
    table = sql_catalog(lh).create_table("raw.t", schema=SCHEMA)
    rows = [
        {"id": i, "small": Decimal(s), "whole": Decimal(w)}
        for i, (s, w) in enumerate(zip(SMALL, WHOLE, strict=True))
    ]
    table.append(pa.Table.from_pylist(rows, schema=SCHEMA.as_arrow()))
    return sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()


OPS = {
    "=": (EqualTo, lambda a, b: a == b),
    ">=": (GreaterThanOrEqual, lambda a, b: a >= b),
    "<": (LessThan, lambda a, b: a < b),
}


@pytest.mark.parametrize("column", ["small", "whole"])
def test_decimals_read_back_filter_the_rows_pyiceberg_filters(lh, column):
    rows = seeded(lh)
    read_back = [r[column] for r in rows]
    normalized = [v.normalize() for v in read_back]
    assert any("E" in str(v) for v in read_back + normalized)  # exponents are in play
    pyiceberg = sql_catalog(lh).load_table("raw.t")
    for value in read_back + normalized:
        for op, (expression, holds) in OPS.items():
            expected = sorted(r["id"] for r in rows if holds(r[column], value))
            ours = lh.table("raw.t").scan(filter=(column, op, value)).to_arrow()
            assert sorted(ours["id"].to_pylist()) == expected, (op, value)
            # PyIceberg itself refuses some normalized values ("Could not convert 1E+2 into a
            # decimal(10, 0)"): those are checked against the rows alone.
            if any(value is v for v in read_back):
                theirs = pyiceberg.scan(row_filter=expression(column, value)).to_arrow()
                assert sorted(theirs["id"].to_pylist()) == expected, (op, value)
        between = lh.table("raw.t").scan(filter=(column, "between", (value, value)))
        assert between.to_arrow()["id"].to_pylist() == [r["id"] for r in rows if r[column] == value]


def test_a_delete_by_a_decimal_read_back_deletes_its_rows(lh):
    rows = seeded(lh)
    zero = next(r["small"] for r in rows if r["small"] == 0)
    assert "E" in str(zero)
    assert lh.table("raw.t").delete(("small", "=", zero)).rows_deleted == 1
    left = sql_catalog(lh).load_table("raw.t").scan().to_arrow()["id"].to_pylist()
    assert sorted(left) == [r["id"] for r in rows if r["small"] != 0]


@pytest.mark.parametrize("text", ["1E+2", "1e2", "-.5", "1.2.3", "", "0x10"])
def test_a_decimal_string_phlo_cannot_read_is_refused_naming_the_column(lh, text):
    seeded(lh)
    with pytest.raises(phlo.errors.InputError, match="whole"):
        lh.table("raw.t").scan(filter=("whole", "=", text)).to_arrow()
