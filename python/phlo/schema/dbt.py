"""dbt model YAML → Pandera `DataFrameModel`: one contract for dbt and for ingestion.

Tests become field constraints: ``not_null`` → ``nullable=False``, ``unique`` →
``unique=True``, ``accepted_values`` → ``isin``, ``dbt_utils.accepted_range`` and
``dbt_expectations.expect_column_values_to_be_between`` → ``ge``/``le`` (``gt``/``lt`` when
exclusive). Types come from each column's ``data_type`` (dbt model contracts); without one,
they are inferred (see `infer_type`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from phlo.errors import ConfigError, SchemaError

__all__ = ["dbt_model_to_pandera", "infer_type", "sql_type"]

_INTEGER_32 = {"integer", "int", "int4", "smallint", "int2", "tinyint", "int1", "mediumint"}
_INTEGER_64 = {"bigint", "int8", "long", "hugeint", "int64", "number"}
_FLOAT_64 = {"double", "double precision", "float8", "float64", "float"}
_FLOAT_32 = {"real", "float4", "float32"}
_STRING = {"varchar", "text", "string", "char", "character varying", "character", "nvarchar"}
_BOOL = {"boolean", "bool"}
_TIMESTAMP = {"timestamp", "datetime", "timestamp without time zone", "timestamp_ntz"}
_TIMESTAMP_TZ = {"timestamptz", "timestamp with time zone", "timestamp_tz", "timestamp_ltz"}
_BINARY = {"bytea", "blob", "binary", "varbinary"}


def sql_type(data_type: str, column: str) -> Any:
    """The Pandera (pandas) dtype of a SQL `data_type` of a dbt contract."""
    import pandas as pd
    import pyarrow as pa
    from pandera.engines import pandas_engine

    text = data_type.strip().lower()
    base = re.sub(r"\(.*\)", "", text).strip()
    args = [int(a) for a in re.findall(r"\d+", text[len(base) :])]
    if base in ("decimal", "numeric"):
        precision, scale = (args[0], args[1] if len(args) > 1 else 0) if args else (38, 9)
        return pandas_engine.Decimal(precision, scale)
    if base in _INTEGER_32:
        return "int32"
    if base in _INTEGER_64:
        return "int64"
    if base in _FLOAT_64:
        return "float64"
    if base in _FLOAT_32:
        return "float32"
    if base in _STRING:
        return str
    if base in _BOOL:
        return bool
    if base in _TIMESTAMP_TZ:
        return pd.DatetimeTZDtype(tz="UTC")
    if base in _TIMESTAMP:
        return "datetime64[ns]"
    if base == "date":
        return pandas_engine.Date
    if base == "time":
        return pd.ArrowDtype(pa.time64("us"))
    if base in _BINARY:
        return pd.ArrowDtype(pa.binary())
    raise SchemaError(
        f"column {column!r}: data_type {data_type!r} has no phlo mapping; use a standard SQL "
        "type (varchar, integer, bigint, double, decimal(p,s), boolean, date, timestamp, "
        "timestamptz, time, blob)",
        column=column,
    )


def infer_type(name: str, tests: dict[str, Any]) -> Any:
    """A column's type when its YAML has no ``data_type``: bool for ``is_*``/``has_*``;
    tz-aware timestamp for ``*_at``/``*_timestamp``/``*_ts``; date for ``*_date``/``date``;
    float for a range test; int when every accepted value is an int; otherwise str."""
    import pandas as pd
    from pandera.engines import pandas_engine

    lowered = name.lower()
    if lowered.startswith(("is_", "has_")):
        return bool
    if lowered.endswith(("_at", "_timestamp", "_ts")) or lowered == "timestamp":
        return pd.DatetimeTZDtype(tz="UTC")
    if lowered.endswith("_date") or lowered == "date":
        return pandas_engine.Date
    if "range" in tests:
        return "float64"
    values = tests.get("isin")
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int64"
    return str


def dbt_model_to_pandera(
    yaml_path: str | Path, model_name: str, class_name: str | None = None
) -> type:
    """A Pandera `DataFrameModel` class for model `model_name` of a dbt properties YAML file.
    Its name is `class_name`, by default the model name in CamelCase; ``Config.coerce`` is on
    and ``Config.strict`` follows the model's ``contract: {enforced: true}``."""
    import pandera.pandas as pandera
    import yaml
    from pandera.typing import Series

    path = Path(yaml_path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read dbt YAML {path}: {exc}") from exc
    models = (document or {}).get("models") or []
    model = next((m for m in models if m.get("name") == model_name), None)
    if model is None:
        names = [m.get("name") for m in models]
        raise ConfigError(f"{path} has no model {model_name!r} (models: {names})")
    annotations: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for column in model.get("columns") or []:
        name = column.get("name")
        if not name:
            raise ConfigError(f"{path}: a column of {model_name} has no name")
        constraints = _constraints(column, path)
        range_ = constraints.pop("range", None)
        kwargs = {k: v for k, v in constraints.items() if k != "isin" or v}
        if range_:
            kwargs.update(range_)
        if column.get("data_type"):
            dtype = sql_type(str(column["data_type"]), name)
        else:
            dtype = infer_type(name, {**constraints, "range": range_} if range_ else constraints)
        annotations[name] = Series[dtype]  # type: ignore[valid-type]
        attributes[name] = pandera.Field(
            nullable=kwargs.pop("nullable", True),
            description=column.get("description") or None,
            **kwargs,
        )
    enforced = bool(((model.get("config") or {}).get("contract") or {}).get("enforced"))
    config = type("Config", (), {"coerce": True, "strict": enforced, "name": model_name})
    if class_name is None:
        class_name = "".join(p.capitalize() for p in re.split(r"[^0-9a-zA-Z]+", model_name))
    elif not class_name.isidentifier():
        raise ConfigError(f"class_name {class_name!r} is not a Python identifier")
    namespace = {
        "__annotations__": annotations,
        "__doc__": model.get("description") or f"Generated from {path.name}:{model_name}.",
        "__module__": __name__,
        "Config": config,
        **attributes,
    }
    return type(class_name or "DbtModel", (pandera.DataFrameModel,), namespace)


def _constraints(column: dict[str, Any], path: Path) -> dict[str, Any]:
    """Field keyword arguments from a column's dbt tests (``data_tests`` or ``tests``)."""
    out: dict[str, Any] = {}
    for test in (column.get("data_tests") or []) + (column.get("tests") or []):
        name, args = (test, {}) if isinstance(test, str) else next(iter(test.items()))
        args = dict(args or {})
        args.update(args.pop("arguments", None) or {})  # dbt ≥ 1.10 nests them
        short = name.split(".")[-1]
        if short == "not_null":
            out["nullable"] = False
        elif short == "unique":
            out["unique"] = True
        elif short == "accepted_values":
            out["isin"] = [_plain(v) for v in args.get("values") or []]
        elif short in ("accepted_range", "expect_column_values_to_be_between"):
            inclusive = args.get("inclusive", True) and not args.get("strictly", False)
            bounds: dict[str, Any] = {}
            if args.get("min_value") is not None:
                bounds["ge" if inclusive else "gt"] = args["min_value"]
            if args.get("max_value") is not None:
                bounds["le" if inclusive else "lt"] = args["max_value"]
            out["range"] = bounds
        # Other tests (relationships, custom SQL) stay dbt tests: they need the warehouse.
    return out


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value
