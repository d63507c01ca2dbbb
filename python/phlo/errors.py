"""The phlo exception tree. Every error phlo raises, from Python or from the Rust engine, is a
`PhloError`; each carries a stable ``code`` and, when known, the ``table`` and ``column`` it is
about. Messages say what went wrong, where, and how to fix it."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CatalogError",
    "CommitConflictError",
    "CommitStateUnknownError",
    "ConfigError",
    "EmptyInputError",
    "IngestionTimeoutError",
    "InputError",
    "InternalError",
    "MergeError",
    "MissingExtraError",
    "NamespaceAlreadyExistsError",
    "NamespaceNotEmptyError",
    "NoSuchNamespaceError",
    "NoSuchTableError",
    "PhloError",
    "PostgresConnectionError",
    "PublishError",
    "QualityCheckError",
    "SchemaError",
    "SourceError",
    "SqlError",
    "StorageError",
    "TableAlreadyExistsError",
    "ValidationError",
    "WouldOverwriteError",
]


class PhloError(Exception):
    """Base class of every phlo error."""

    code: str = "phlo"

    def __init__(
        self, message: str, *, table: str | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.table = table
        self.column = column


class InputError(PhloError, ValueError):
    """The caller passed something unusable: a bad name, option, filter or data object."""

    code = "invalid_input"


class EmptyInputError(InputError):
    """A write was given no rows."""

    code = "empty_input"


class SchemaError(PhloError):
    """Data does not fit the table schema, or a schema cannot be represented in Iceberg."""

    code = "schema"


class ValidationError(PhloError):
    """Data broke its validation contract (Pandera schema, quality checks).

    `failure_cases` is a pyarrow Table in Pandera's layout (``schema_context, column, check,
    check_number, failure_case, index``: one row per failing value, `index` = input row);
    `errors()` summarises it per check with a stable code, an exact count and a sample."""

    code = "validation"

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        column: str | None = None,
        failure_cases: Any = None,
        records: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, table=table, column=column)
        self.failure_cases = failure_cases
        self._records = records or []

    def errors(self) -> list[dict[str, Any]]:
        """One record per failed check: ``code`` (null_values, duplicate_values,
        duplicate_rows, missing_column, unexpected_column, wrong_dtype, coercion_failed,
        check_failed), ``schema_context``, ``column``, ``check``, ``check_number``, ``count``
        (exact) and ``sample`` (up to 20 ``{"index", "failure_case"}``)."""
        return [dict(r) for r in self._records]

    def _repr_html_(self) -> str:
        from phlo.display import validation_error_html  # display imports this module

        return validation_error_html(self)


class QualityCheckError(ValidationError):
    """Blocking `@phlo_quality` checks failed, or could not run, on an ingestion run's WAP
    branch, so the run was not published: the target is unchanged and the branch kept.
    `results` holds every check's `CheckResult`; `result` the run's `IngestionResult`."""

    code = "quality_check"

    def __init__(self, message: str, *, table: str | None = None, results: Any = None) -> None:
        super().__init__(message, table=table)
        self.results = list(results or [])
        self.result: Any = None


class SqlError(PhloError, ValueError):
    """A SQL query could not be parsed or bound (a bad column, function or syntax)."""

    code = "sql"


class MergeError(PhloError):
    """A merge (upsert) could not be carried out."""

    code = "merge"


class PublishError(PhloError):
    """Publishing a table to PostgreSQL failed; the published table is unchanged."""

    code = "publish"


class PostgresConnectionError(PublishError, ConnectionError):
    """PostgreSQL could not be reached or refused the login (the message never shows the
    password)."""

    code = "postgres_connection"


class CatalogError(PhloError):
    """The catalog failed or refused an operation."""

    code = "catalog"


class NoSuchTableError(CatalogError, LookupError):
    code = "no_such_table"


class NoSuchNamespaceError(CatalogError, LookupError):
    code = "no_such_namespace"


class TableAlreadyExistsError(CatalogError):
    code = "table_already_exists"


class NamespaceAlreadyExistsError(CatalogError):
    code = "namespace_already_exists"


class NamespaceNotEmptyError(CatalogError):
    code = "namespace_not_empty"


class CommitConflictError(CatalogError):
    """Another writer committed first and this change could not be re-applied safely."""

    code = "commit_conflict"


class CommitStateUnknownError(CatalogError):
    """The commit may or may not have landed; reload the table before retrying."""

    code = "commit_state_unknown"


class StorageError(PhloError, OSError):
    """Reading or writing files failed."""

    code = "storage"


class ConfigError(PhloError):
    """Project configuration (phlo.yaml, environment) is missing or invalid."""

    code = "config"


class SourceError(PhloError):
    """An ingestion's source failed: it raised on every attempt, or returned something phlo
    cannot read. The last exception of the source is the ``__cause__``."""

    code = "source"


class IngestionTimeoutError(SourceError, TimeoutError):
    """An ingestion's extraction ran past its ``max_runtime_seconds`` (over all attempts)."""

    code = "ingestion_timeout"


class MissingExtraError(PhloError, ImportError):
    """A feature needs an optional dependency that is not installed; ``extra`` names the
    ``phlo[...]`` extra that brings it (``pip install 'phlo[dagster]'``)."""

    code = "missing_extra"

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class WouldOverwriteError(PhloError, FileExistsError):
    """`phlo init` / `phlo create-workflow` refused to write over existing files."""

    code = "would_overwrite"


class InternalError(PhloError):
    """An unexpected engine failure (a bug or a corrupt file): please report it."""

    code = "internal"


_BY_CODE: dict[str, type[PhloError]] = {
    cls.code: cls
    for cls in (
        InputError,
        EmptyInputError,
        SchemaError,
        ValidationError,
        SqlError,
        PublishError,
        PostgresConnectionError,
        MergeError,
        CatalogError,
        NoSuchTableError,
        NoSuchNamespaceError,
        TableAlreadyExistsError,
        NamespaceAlreadyExistsError,
        NamespaceNotEmptyError,
        CommitConflictError,
        CommitStateUnknownError,
        StorageError,
        ConfigError,
        SourceError,
        IngestionTimeoutError,
        InternalError,
    )
}


def _from_native(code: str, message: str, table: str | None, column: str | None) -> PhloError:
    """Called by the Rust engine to build the exception for one of its errors."""
    return _BY_CODE.get(code, InternalError)(message, table=table, column=column)
