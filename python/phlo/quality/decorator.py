"""`@phlo_quality`: declared checks of one table, run by the engine in one pass over the
checked partition (and, through `phlo.dagster`, as asset checks)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from phlo.errors import ConfigError
from phlo.progress import activity
from phlo.quality.base import QualityCheck
from phlo.quality.runner import run_checks

if TYPE_CHECKING:
    from phlo.lakehouse import Lakehouse
    from phlo.quality.contract import CheckResult

__all__ = ["QualityDefinition", "phlo_quality"]

_TABLE = re.compile(r"^[^.\s]+(\.[^.\s]+)+$")


class QualityDefinition:
    """A decorated quality function and its checks. `run` evaluates them outside Dagster."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        table: str,
        checks: Sequence[QualityCheck],
        asset_key: str | None = None,
        group: str | None = None,
        blocking: bool = True,
        partition_aware: bool = True,
        partition_column: str = "_phlo_partition_date",
        rolling_window_days: int | None = None,
        full_table: bool = False,
        description: str | None = None,
    ) -> None:
        self.fn = fn
        self.table = table
        self.checks = list(checks)
        self.asset_key = asset_key
        self.group = group
        #: A failing ``error`` check blocks downstream assets and WAP promotion.
        self.blocking = blocking
        self.partition_aware = partition_aware
        self.partition_column = partition_column
        self.rolling_window_days = rolling_window_days
        self.full_table = full_table
        self.description = description if description is not None else fn.__doc__
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        return str(self.fn.__name__)

    def check_names(self) -> list[str]:
        """The result name of each check, in order."""
        return [c.name for c in self.checks]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def run(
        self,
        partition_date: str | None = None,
        *,
        lakehouse: Lakehouse | None = None,
        ref: str = "main",
    ) -> list[CheckResult]:
        """Runs every check over the rows of `partition_date` (``YYYY-MM-DD``; with
        `rolling_window_days`, that many days ending there; None or ``full_table``: the whole
        table) of the table at `ref`, in one pass. `lakehouse` None opens the project's."""
        if lakehouse is None:
            from phlo.config import load_project

            lakehouse = load_project().open_lakehouse()
        with activity(f"{self.name}: {len(self.checks)} checks on {self.table}"):
            return run_checks(self, partition_date, lakehouse, ref)

    def __repr__(self) -> str:
        return f"<phlo_quality {self.name} on {self.table}: {len(self.checks)} checks>"


def phlo_quality(
    table: str,
    checks: Sequence[QualityCheck],
    asset_key: str | None = None,
    group: str | None = None,
    blocking: bool = True,
    partition_aware: bool = True,
    partition_column: str = "_phlo_partition_date",
    rolling_window_days: int | None = None,
    full_table: bool = False,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], QualityDefinition]:
    """Declares quality checks of `table` (``namespace.table``). Settings are checked when the
    module is imported (`ConfigError` naming the parameter)."""
    _check(table, checks, asset_key, group, partition_column, rolling_window_days, full_table)
    for name, flag in (
        ("blocking", blocking),
        ("partition_aware", partition_aware),
        ("full_table", full_table),
    ):
        if not isinstance(flag, bool):
            raise ConfigError(f"phlo_quality: {name} must be True or False, not {flag!r}")

    def decorate(fn: Callable[..., Any]) -> QualityDefinition:
        if not callable(fn):
            raise ConfigError(f"phlo_quality decorates a function, not {fn!r}")
        return QualityDefinition(
            fn,
            table=table,
            checks=checks,
            asset_key=asset_key,
            group=group,
            blocking=blocking,
            partition_aware=partition_aware,
            partition_column=partition_column,
            rolling_window_days=rolling_window_days,
            full_table=full_table,
            description=description,
        )

    return decorate


def _check(
    table: Any,
    checks: Any,
    asset_key: Any,
    group: Any,
    partition_column: Any,
    rolling_window_days: Any,
    full_table: bool,
) -> None:
    if not isinstance(table, str) or not _TABLE.match(table):
        raise ConfigError(
            f"phlo_quality: table must be 'namespace.table' (e.g. 'raw.events'), not {table!r}"
        )
    if isinstance(checks, QualityCheck):
        checks = [checks]
    if not isinstance(checks, Sequence) or not checks:
        raise ConfigError("phlo_quality: checks must be a non-empty list of checks")
    for check in checks:
        if not isinstance(check, QualityCheck):
            raise ConfigError(
                f"phlo_quality: checks holds {check!r}, which is not a check "
                "(NullCheck, RangeCheck, … or a QualityCheck subclass)"
            )
    names = [c.name for c in checks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(
            f"phlo_quality: checks has several checks named {', '.join(twice)}; "
            "split them over two decorators or merge them into one check"
        )
    for parameter, value in (("asset_key", asset_key), ("group", group)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(
                f"phlo_quality: {parameter} must be a non-empty string, not {value!r}"
            )
    if not isinstance(partition_column, str) or not partition_column:
        raise ConfigError(
            f"phlo_quality: partition_column must be a column name, not {partition_column!r}"
        )
    if rolling_window_days is not None:
        if (
            isinstance(rolling_window_days, bool)
            or not isinstance(rolling_window_days, int)
            or rolling_window_days < 1
        ):
            raise ConfigError(
                "phlo_quality: rolling_window_days must be a positive number of days, "
                f"not {rolling_window_days!r}"
            )
        if full_table is True:
            raise ConfigError(
                "phlo_quality: rolling_window_days and full_table=True contradict each other; "
                "give one of them"
            )
