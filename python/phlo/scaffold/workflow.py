"""A new table in a project (`phlo create-workflow`): its Pandera contract, an ingestion that
returns sample rows until its source is written, quality checks and a test, in the project
layout (``workflows/schemas/{domain}.py``, ``workflows/ingestion/{domain}/{table}.py``,
``workflows/quality/{domain}.py``, ``tests/test_{table}.py``). Existing domain files get the
new contract and checks appended; nothing that exists is overwritten."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

from phlo.errors import InputError, WouldOverwriteError

__all__ = ["COLUMN_TYPES", "Workflow", "add_workflow"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

#: Column type → (Pandera annotation, extra `pa.Field` arguments, sample value for row `i` of
#: the day `day`).
COLUMN_TYPES: dict[str, tuple[str, str, str]] = {
    "str": ("Series[str]", "", 'f"{name} {i}"'),
    "int": ("Series[int]", "", "i"),
    "float": ("Series[float]", "", "i * 1.5"),
    "bool": ("Series[bool]", "", "i % 2 == 0"),
    "date": ("Series[pa.Date]", "", "day"),
    "datetime": (
        "Series[pd.DatetimeTZDtype]",
        'dtype_kwargs={"unit": "us", "tz": "UTC"}, ',
        "dt.datetime.combine(day, dt.time(i), tzinfo=dt.UTC)",
    ),
}
#: Sample values of a unique key: distinct within a day and across days.
_KEY_SAMPLES = {
    "str": 'f"{day}-{i}"',
    "int": "day.toordinal() * 100 + i",
    "datetime": COLUMN_TYPES["datetime"][2],
}
SAMPLE_ROWS = 3

_SCHEMA_HEADER = '"""The contracts of the $domain tables."""\n'
_SCHEMA = Template('''

class $schema(pa.DataFrameModel):
    """One row of $namespace.$table."""

$fields
    class Config:
        strict = True
        coerce = True
''')
_INGESTION = Template('''"""Ingestion of $namespace.$table: one daily partition per run."""

import datetime as dt

from workflows.schemas.$domain import $schema

from phlo import phlo_ingestion


@phlo_ingestion(
    table_name="$table",
    unique_key="$key",
    validation_schema=$schema,
    group="$domain",
    cron="$cron",
    merge_strategy="merge",
)
def $function(partition_date: str) -> list[dict[str, object]]:
    """Rows of $namespace.$table for the day. The sample rows stand in for your source: return an API's records,
    a dlt source, or any Arrow-like data instead."""
    day = dt.date.fromisoformat(partition_date)
    return [
        {
$row
        }
        for i in range($rows)
    ]
''')
_QUALITY_HEADER = '"""Quality checks of the $domain tables."""\n'
_QUALITY = Template('''

@phlo_quality(
    table="$namespace.$table",
    checks=[
        NullCheck(columns=["$key"]),
        UniqueCheck(columns=["$key"]),
        CountCheck(min_rows=1),
    ],
)
def $quality() -> None:
    """Each day's $table rows have a unique, present $key."""
''')
_TEST = Template('''"""$namespace.$table: its ingestion and checks on a throwaway lakehouse."""

import phlo
from workflows.ingestion.$domain.$table import $function
from workflows.quality.$domain import $quality

DAY = "2025-01-02"


def test_${table}_is_ingested_and_passes_its_checks(tmp_path):
    lakehouse = phlo.Lakehouse.open(tmp_path / "lakehouse")
    result = $function.run(DAY, lakehouse=lakehouse)
    assert result.status == "published"
    assert lakehouse.table("$namespace.$table").to_arrow().num_rows == $rows
    assert [r.name for r in $quality.run(DAY, lakehouse=lakehouse) if not r.passed] == []
''')


@dataclass(frozen=True)
class Workflow:
    """A new table: ``domain`` groups it (files, Dagster group), ``columns`` are
    ``(name, type)`` with a type of `COLUMN_TYPES`, ``key`` is the unique key column."""

    domain: str
    table: str
    columns: tuple[tuple[str, str], ...]
    key: str
    cron: str = "0 6 * * *"
    namespace: str = "raw"

    def __post_init__(self) -> None:
        for what, value in (("domain", self.domain), ("table", self.table)):
            _identifier(what, value)
        if not self.columns:
            raise InputError("a workflow needs at least one column, e.g. --column id:int")
        for name, kind in self.columns:
            _identifier("column", name)
            if kind not in COLUMN_TYPES:
                raise InputError(
                    f"column {name!r}: unknown type {kind!r}; use one of {', '.join(COLUMN_TYPES)}",
                    column=name,
                )
        kinds = dict(self.columns)
        if self.key not in kinds:
            raise InputError(
                f"unique key {self.key!r} is not one of the columns ({', '.join(kinds)})"
            )
        if kinds[self.key] not in _KEY_SAMPLES:
            raise InputError(
                f"unique key {self.key!r} is {kinds[self.key]}; a key must be "
                f"{', '.join(_KEY_SAMPLES)}",
                column=self.key,
            )

    def names(self) -> dict[str, str]:
        camel = "".join(part.capitalize() for part in self.table.split("_"))
        return {
            "domain": self.domain,
            "table": self.table,
            "namespace": self.namespace,
            "key": self.key,
            "cron": self.cron,
            "rows": str(SAMPLE_ROWS),
            "schema": f"{camel}Schema",
            "function": f"{self.domain}_{self.table}",
            "quality": f"{self.table}_quality",
        }


def add_workflow(root: Path, workflow: Workflow) -> list[Path]:
    """Writes the workflow's files into the project at `root`; returns the paths written or
    extended, relative to `root`. Refuses (`WouldOverwriteError`, nothing written) when the
    ingestion or test file, the contract class or the checks function already exists."""
    names = workflow.names()
    schema_file = Path("workflows", "schemas", f"{workflow.domain}.py")
    ingestion_file = Path("workflows", "ingestion", workflow.domain, f"{workflow.table}.py")
    quality_file = Path("workflows", "quality", f"{workflow.domain}.py")
    test_file = Path("tests", f"test_{workflow.table}.py")
    for new in (ingestion_file, test_file):
        if (root / new).exists():
            raise WouldOverwriteError(
                f"{root / new} already exists: choose another --table, or remove the file"
            )
    for file, defined in ((schema_file, names["schema"]), (quality_file, names["quality"])):
        if defined in _top_level_names(root / file):
            raise WouldOverwriteError(
                f"{root / file} already defines {defined}: choose another --table, or "
                f"rename it there"
            )
    schema_imports = ["import pandera.pandas as pa", "from pandera.typing import Series"]
    if any(kind == "datetime" for _, kind in workflow.columns):
        schema_imports.insert(0, "import pandas as pd")
    _extend(
        root / schema_file,
        Template(_SCHEMA_HEADER).substitute(names),
        schema_imports,
        _SCHEMA.substitute(names, fields=_fields(workflow)),
    )
    _write(root / ingestion_file, _INGESTION.substitute(names, row=_row(workflow)))
    _extend(
        root / quality_file,
        Template(_QUALITY_HEADER).substitute(names),
        [
            "from phlo import phlo_quality",
            "from phlo.quality import CountCheck, NullCheck, UniqueCheck",
        ],
        _QUALITY.substitute(names),
    )
    _write(root / test_file, _TEST.substitute(names))
    return [schema_file, ingestion_file, quality_file, test_file]


def _identifier(what: str, value: str) -> None:
    if not _IDENT.match(value):
        raise InputError(
            f"{what} {value!r} must be a lowercase Python name (letters, digits, '_'), "
            "e.g. page_views"
        )


def _fields(workflow: Workflow) -> str:
    lines = []
    for name, kind in workflow.columns:
        annotation, arguments, _ = COLUMN_TYPES[kind]
        constraint = "nullable=False, unique=True" if name == workflow.key else "nullable=True"
        lines.append(f"    {name}: {annotation} = pa.Field({arguments}{constraint})\n")
    return "".join(lines)


def _row(workflow: Workflow) -> str:
    lines = []
    for name, kind in workflow.columns:
        sample = _KEY_SAMPLES[kind] if name == workflow.key else COLUMN_TYPES[kind][2]
        lines.append(f'            "{name}": {sample.replace("{name}", name)},')
    return "\n".join(lines)


def _top_level_names(file: Path) -> set[str]:
    if not file.exists():
        return set()
    tree = ast.parse(file.read_text(), filename=str(file))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _extend(file: Path, header: str, imports: list[str], block: str) -> None:
    """Appends `block` to `file` (created with `header` when new), adding the names of
    `imports` the file does not bind yet after its last top-level import."""
    text = file.read_text() if file.exists() else header
    tree = ast.parse(text, filename=str(file))
    bound = {name for node in tree.body for name in _bound_names(node)}
    missing = [line for line in map(_missing_part(bound), imports) if line]
    lines = text.splitlines()
    if missing:
        ends = [n.end_lineno or 0 for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        docstring = ast.get_docstring(tree) is not None
        at = max(ends) if ends else (tree.body[0].end_lineno or 0) if docstring else 0
        lines[at:at] = ["", *missing] if not ends and docstring else missing
    _write(file, "\n".join(lines).rstrip("\n") + "\n" + block)


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [a.asname or a.name.partition(".")[0] for a in node.names]
    return []


def _missing_part(bound: set[str]) -> Callable[[str], str]:
    """`import x as y` when `y` is unbound; `from m import <the unbound names>`."""

    def missing(statement: str) -> str:
        (node,) = ast.parse(statement).body
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names if (a.asname or a.name) not in bound]
            return f"from {node.module} import {', '.join(names)}" if names else ""
        return "" if set(_bound_names(node)) <= bound else statement

    return missing


def _write(file: Path, text: str) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
