"""Types of the compiled engine module. Users import from `phlo`, not from here."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, final

import pyarrow as pa

__all__ = [
    "NativeLakehouse",
    "NativeRestService",
    "NativeScan",
    "QualityEvaluator",
    "__version__",
    "dedupe",
    "iceberg_schema",
    "stage",
    "validate",
]

__version__: str

# A filter value: bool, int, float, str, or a tagged ("timestamp_us" | "date_days", int).
_Literal = bool | int | float | str | tuple[str, int]

def dedupe(
    data: Any, unique_key: Sequence[str], method: str, order_by: str | None = None
) -> tuple[Any, int]: ...
def stage(
    data: Any,
    directory: str | Path,
    run_id: str,
    partition_date: str | None,
    rows_per_file: int,
) -> dict[str, Any]: ...

@final
class NativeScan:
    @property
    def schema(self) -> Any: ...
    @property
    def files_total(self) -> int: ...
    @property
    def files_scanned(self) -> int: ...
    @property
    def manifests_total(self) -> int: ...
    @property
    def manifests_scanned(self) -> int: ...
    @property
    def snapshot_id(self) -> int | None: ...
    @property
    def data_files(self) -> list[tuple[str, int, bool]]: ...
    def reader(self) -> Any: ...
    def select(self, columns: list[str]) -> NativeScan: ...
    def raise_error(self) -> None: ...

@final
class NativeLakehouse:
    def __new__(cls, root: str | Path) -> NativeLakehouse: ...
    @staticmethod
    def connect(catalog: str, warehouse: str, properties: dict[str, str]) -> NativeLakehouse: ...
    @property
    def root(self) -> Path | None: ...
    @property
    def warehouse(self) -> str: ...
    def create_namespace(self, namespace: str) -> None: ...
    def namespace_exists(self, namespace: str) -> bool: ...
    def list_namespaces(self) -> list[str]: ...
    def drop_namespace(self, namespace: str) -> None: ...
    def list_tables(self, namespace: str) -> list[str]: ...
    def create_table(
        self,
        name: str,
        schema: pa.Schema,
        partition_by: Sequence[tuple[str, str]],
        properties: dict[str, str],
        ref_name: str,
    ) -> None: ...
    def drop_table(self, name: str, purge: bool, ref_name: str) -> None: ...
    def snapshot_as_of(
        self, name: str, ref_name: str | None, as_of_ms: int | None, commit_id: str | None
    ) -> tuple[str, int | None]: ...
    def expire_snapshots(
        self, older_than_ms: int, keep_last: int
    ) -> tuple[int, int, list[str], list[str]]: ...
    def remove_orphan_files(self, older_than_ms: int, dry_run: bool) -> tuple[list[str], int]: ...
    def compact(
        self,
        name: str,
        ref_name: str,
        target_file_size: int | None,
        filters: Sequence[tuple[str, str, Sequence[_Literal]]],
        properties: dict[str, str],
    ) -> dict[str, Any]: ...
    def rewrite_manifests(
        self, name: str, ref_name: str, properties: dict[str, str]
    ) -> tuple[int | None, int, int]: ...
    def table_metadata(self, name: str, ref_name: str) -> tuple[str, str, Any]: ...
    def create_ref(self, name: str, kind: str, from_ref: str) -> None: ...
    def create_internal_branch(self, prefix: str, from_ref: str) -> str: ...
    def discard_transaction(self, name: str) -> None: ...
    def list_refs(self, kind: str) -> list[tuple[str, str, int]]: ...
    def delete_branch(self, name: str) -> None: ...
    def diff_rows(
        self, name: str, from_ref: str, to_ref: str, key: Sequence[str], sample: int
    ) -> dict[str, Any]: ...
    def diff(self, from_ref: str, to_ref: str) -> tuple[list[str], list[str], list[str]]: ...
    def log(self, ref_name: str | None, limit: int) -> list[dict[str, Any]]: ...
    def merge_ref(
        self, source: str, into: str, properties: dict[str, str]
    ) -> tuple[list[str], list[str], list[str]]: ...
    def append(
        self,
        name: str,
        data: Any,
        branch: str,
        properties: dict[str, str],
        schema_evolution: str,
    ) -> dict[str, int]: ...
    def merge(
        self,
        name: str,
        data: Any,
        unique_key: Sequence[str],
        strategy: str,
        deduplication_method: str | None,
        order_by: str | None,
        branch: str,
        properties: dict[str, str],
        schema_evolution: str,
        write_mode: str | None = None,
    ) -> dict[str, Any]: ...
    def delete(
        self,
        name: str,
        filters: Sequence[tuple[str, str, Sequence[_Literal]]],
        branch: str,
        properties: dict[str, str],
        write_mode: str | None = None,
    ) -> dict[str, Any]: ...
    def set_properties(
        self, name: str, ref_name: str, updates: Sequence[tuple[str, str | None]]
    ) -> bool: ...
    def changes(
        self,
        name: str,
        ref_name: str,
        from_snapshot: int | None,
        to_snapshot: int | None,
        batch_size: int | None,
    ) -> NativeScan: ...
    def scan(
        self,
        name: str,
        columns: Sequence[str] | None,
        filters: Sequence[tuple[str, str, Sequence[_Literal]]],
        snapshot_id: int | None,
        as_of_ms: int | None,
        ref_name: str | None,
        batch_size: int | None,
        string_dictionaries: bool = False,
    ) -> NativeScan: ...

def iceberg_schema(schema: pa.Schema) -> Any: ...
def validate(data: Any, plan_json: str, declared: pa.Schema) -> dict[str, Any]: ...

@final
class QualityEvaluator:
    """The engine's quality checks of one plan, fed batch by batch."""

    def __new__(cls, plan_json: str, schema: Any) -> QualityEvaluator: ...
    def settle(self, scan: NativeScan) -> list[str]: ...
    def check(self, scan: NativeScan) -> list[str]: ...
    def update(self, batch: Any) -> None: ...
    def finish(self) -> list[dict[str, Any]]: ...

@final
class NativeRestService:
    """The Iceberg REST catalog over one lakehouse: one HTTP request in, one response out."""

    def __new__(
        cls,
        lakehouse: NativeLakehouse,
        token: str | None = None,
        vend_credentials: bool = False,
    ) -> NativeRestService: ...
    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> tuple[int, list[tuple[str, str]], bytes]: ...
