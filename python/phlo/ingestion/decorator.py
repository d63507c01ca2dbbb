"""`@phlo_ingestion`: one decorated function becomes a validated, merged, published table (and,
through `phlo.dagster.definitions`, a partitioned, scheduled Dagster asset)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from phlo.ingestion.result import IngestionResult
    from phlo.lakehouse import Lakehouse

__all__ = ["IngestionDefinition", "phlo_ingestion"]

MergeStrategy = Literal["merge", "append"]


class IngestionDefinition:
    """A decorated ingestion function and its settings. Calling it calls the function;
    `run` runs the whole pipeline for one partition."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        table_name: str,
        unique_key: str | Sequence[str],
        group: str,
        validation_schema: Any = None,
        table_schema: Any = None,
        partition_spec: Sequence[str] | None = None,
        cron: str | None = None,
        freshness_hours: tuple[float, float] | None = None,
        max_runtime_seconds: float = 300,
        max_retries: int = 3,
        retry_delay_seconds: float = 30,
        validate: bool = True,
        strict_validation: bool = True,
        merge_strategy: MergeStrategy = "merge",
        merge_config: Mapping[str, Any] | None = None,
        add_metadata_columns: bool = True,
        namespace: str | None = None,
        partitions_start: str | None = None,
    ) -> None:
        self.fn = fn
        self.table_name = table_name
        self.unique_key = [unique_key] if isinstance(unique_key, str) else list(unique_key)
        self.group = group
        self.validation_schema = validation_schema
        self.table_schema = table_schema
        if isinstance(partition_spec, str):
            partition_spec = [partition_spec]
        self.partition_spec = list(partition_spec) if partition_spec else None
        self.cron = cron
        self.freshness_hours = freshness_hours
        self.max_runtime_seconds = max_runtime_seconds
        self.max_retries = max_retries
        self.retry_delay_seconds = retry_delay_seconds
        self.validate = validate
        self.strict_validation = strict_validation
        self.merge_strategy = merge_strategy
        self.merge_config = dict(merge_config) if merge_config else {}
        self.add_metadata_columns = add_metadata_columns
        #: None: the project's namespace (`phlo.yaml`), ``raw`` by default.
        self.namespace = namespace
        #: None: the project's partition start (`phlo.yaml`).
        self.partitions_start = partitions_start
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        """The function's name."""
        return str(self.fn.__name__)

    @property
    def asset_key(self) -> str:
        """The Dagster asset key, ``dlt_<table_name>``."""
        return f"dlt_{self.table_name}"

    @property
    def description(self) -> str | None:
        """The function's docstring."""
        return self.fn.__doc__

    def table_identifier(self, default_namespace: str = "raw") -> str:
        """``namespace.table_name``."""
        return f"{self.namespace or default_namespace}.{self.table_name}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def run(
        self,
        partition_date: str,
        *,
        lakehouse: Lakehouse | None = None,
        ref: str = "main",
    ) -> IngestionResult:
        """Runs the pipeline for one partition without Dagster (a script, a test, Jupyter):
        extract, stage, validate, merge into a run branch, audit it with the project's
        `@phlo_quality` checks of the table, publish into `ref` (`QualityCheckError`, nothing
        published, when a blocking check fails). `lakehouse` None opens the project's
        (`phlo.yaml`'s ``lakehouse``, default ``.phlo`` under the project root)."""
        from phlo.ingestion.runner import run_inline
        from phlo.progress import activity

        with activity(f"{self.name}: ingesting partition {partition_date}"):
            return run_inline(self, partition_date, lakehouse=lakehouse, ref=ref)

    def __repr__(self) -> str:
        return f"<phlo_ingestion {self.name} → {self.table_identifier()}>"


def phlo_ingestion(
    table_name: str,
    unique_key: str | Sequence[str],
    group: str,
    validation_schema: Any = None,
    table_schema: Any = None,
    partition_spec: Sequence[str] | None = None,
    cron: str | None = None,
    freshness_hours: tuple[float, float] | None = None,
    max_runtime_seconds: float = 300,
    max_retries: int = 3,
    retry_delay_seconds: float = 30,
    validate: bool = True,
    strict_validation: bool = True,
    merge_strategy: MergeStrategy = "merge",
    merge_config: Mapping[str, Any] | None = None,
    add_metadata_columns: bool = True,
    namespace: str | None = None,
    partitions_start: str | None = None,
) -> Callable[[Callable[..., Any]], IngestionDefinition]:
    """Declares an ingestion: the decorated function takes ``partition_date`` (``YYYY-MM-DD``)
    and returns a dlt source/resource, Arrow-like data, an iterable of dicts, or None.
    Settings are checked here, when the module is imported (`ConfigError` naming the
    parameter)."""

    def decorate(fn: Callable[..., Any]) -> IngestionDefinition:
        from phlo.ingestion.checks import check_definition

        definition = IngestionDefinition(
            fn,
            table_name=table_name,
            unique_key=unique_key,
            group=group,
            validation_schema=validation_schema,
            table_schema=table_schema,
            partition_spec=partition_spec,
            cron=cron,
            freshness_hours=freshness_hours,
            max_runtime_seconds=max_runtime_seconds,
            max_retries=max_retries,
            retry_delay_seconds=retry_delay_seconds,
            validate=validate,
            strict_validation=strict_validation,
            merge_strategy=merge_strategy,
            merge_config=merge_config,
            add_metadata_columns=add_metadata_columns,
            namespace=namespace,
            partitions_start=partitions_start,
        )
        check_definition(definition)
        return definition

    return decorate
