"""The `phlo` command: look at the project's lakehouse from the shell."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import click

from phlo.errors import PhloError
from phlo.lakehouse import Lakehouse


class _Group(click.Group):
    """Shows phlo errors as one clean line (code, message) instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PhloError as exc:
            raise click.ClickException(f"[{exc.code}] {exc}") from exc


@click.group(cls=_Group)
@click.option(
    "--root",
    envvar="PHLO_ROOT",
    default=".phlo",
    show_default=True,
    help="Lakehouse folder (catalog.db + warehouse/). Env: PHLO_ROOT.",
)
@click.pass_context
def main(ctx: click.Context, root: str) -> None:
    """phlo: a data lakehouse with a Rust engine and a Python face."""
    ctx.obj = root


def _lakehouse(ctx: click.Context) -> Lakehouse:
    return Lakehouse.open(ctx.obj)


@main.command()
@click.pass_context
def namespaces(ctx: click.Context) -> None:
    """List namespaces."""
    for namespace in _lakehouse(ctx).namespaces():
        click.echo(namespace)


@main.command()
@click.argument("namespace", required=False)
@click.pass_context
def tables(ctx: click.Context, namespace: str | None) -> None:
    """List tables (of NAMESPACE, or of every namespace)."""
    lh = _lakehouse(ctx)
    for ns in [namespace] if namespace else lh.namespaces():
        for name in lh.tables(ns):
            click.echo(name)


@main.command()
@click.argument("table")
@click.option("--ref", default="main", show_default=True, help="Branch or tag to read.")
@click.pass_context
def show(ctx: click.Context, table: str, ref: str) -> None:
    """Schema, partitioning and history of TABLE."""
    t = _lakehouse(ctx).table(table, ref=ref)
    click.echo(f"table     {t.name}")
    click.echo(f"metadata  {t.metadata_location}")
    click.echo("schema")
    for field in t.schema:
        required = "" if field.nullable else "  required"
        click.echo(f"  {field.name:<24} {field.type}{required}")
    spec = t.partition_spec
    click.echo(
        "partitioned by  " + (", ".join(f"{p.transform}({p.source_column})" for p in spec) or "-")
    )
    click.echo("history")
    for s in t.history():
        click.echo(
            f"  {s.snapshot_id:>20}  {s.timestamp:%Y-%m-%d %H:%M:%S}  {s.operation:<9}"
            f" +{s.summary.get('added-records', '0')} rows  total {s.summary.get('total-records', '?')}"
        )


@main.command()
@click.argument("table")
@click.option(
    "-n", "--rows", type=click.IntRange(min=1), default=10, show_default=True, help="Rows to print."
)
@click.option("--snapshot", "snapshot_id", type=int, help="Read this snapshot.")
@click.option("--ref", default=None, help="Branch or tag to read (default: main).")
@click.option("--as-of", help="A time (ISO) or a commit id of `phlo log`: read the table then.")
@click.pass_context
def head(
    ctx: click.Context,
    table: str,
    rows: int,
    snapshot_id: int | None,
    ref: str | None,
    as_of: str | None,
) -> None:
    """Print the first rows of TABLE."""
    t = _lakehouse(ctx).table(table, ref=ref, as_of=as_of)
    scan = t.scan(snapshot_id=snapshot_id, batch_size=rows)
    reader = scan.to_reader()
    shown = 0
    for batch in reader:
        for row in batch.slice(0, rows - shown).to_pylist():
            click.echo(row)
        shown += min(batch.num_rows, rows - shown)
        if shown >= rows:
            break


_WHERE = re.compile(
    r"^\s*([\w.-]+)\s+(=|==|!=|<>|<=|>=|<|>|not\s+in|in|between|is\s+not\s+null|is\s+null)"
    r"\s*(.*?)\s*$",
    re.IGNORECASE,
)


def _where(text: str) -> tuple[str, str, Any] | tuple[str, str]:
    """``id = 5``, ``region in eu,us``, ``value between 1 and 9``, ``note is null`` → a filter
    tuple; unquoted values that read as numbers are numbers, ``'5'`` stays text."""
    match = _WHERE.match(text)
    if match is None:
        raise click.BadParameter(
            f'{text!r}: write COLUMN OP VALUE, e.g. "id = 5", "region in eu,us", '
            '"value between 1 and 9", "note is null"'
        )
    column, op, rest = match.group(1), " ".join(match.group(2).lower().split()), match.group(3)
    if op.startswith("is "):
        return column, op
    if op == "between":
        parts = re.split(r"\s+and\s+|,", rest, flags=re.IGNORECASE)
        return column, op, tuple(_value(p) for p in parts)
    if op in ("in", "not in"):
        return column, op, [_value(p) for p in rest.strip("()").split(",")]
    return column, op, _value(rest)


def _value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


@main.command()
@click.argument("table")
@click.option(
    "--where", "conditions", multiple=True, required=True, help="A condition; several are ANDed."
)
@click.option("--ref", default="main", show_default=True, help="Branch to delete on.")
@click.option("-m", "--message", default=None, help="Message for the log.")
@click.pass_context
def delete(
    ctx: click.Context, table: str, conditions: tuple[str, ...], ref: str, message: str | None
) -> None:
    """Delete the rows of TABLE matching every --where condition, as one snapshot."""
    filters = [_where(c) for c in conditions]
    result = _lakehouse(ctx).table(table, ref=ref).delete(filters, message=message)
    if result.snapshot_id is None:
        click.echo("no rows matched; nothing committed")
        return
    click.echo(
        f"deleted {result.rows_deleted} rows (files: {result.files_scanned} read, "
        f"{result.files_removed} removed, {result.files_added} written) "
        f"in snapshot {result.snapshot_id}"
    )


@main.command("sql")
@click.argument("query")
@click.option("--ref", default="main", show_default=True, help="Branch or tag to read.")
@click.option("--as-of", help="A time (ISO) or a commit id of `phlo log`: read the tables then.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row (JSON Lines).")
@click.pass_context
def sql_command(ctx: click.Context, query: str, ref: str, as_of: str | None, as_json: bool) -> None:
    """Run a SQL QUERY (DuckDB) over the tables of a ref, e.g. 'SELECT count(*) FROM raw.events'."""
    relation = _lakehouse(ctx).sql(query, ref=ref, as_of=as_of)
    if not as_json:
        click.echo(str(relation), nl=False)
        return
    for batch in relation.to_arrow_reader(batch_size=10_000):
        for row in batch.to_pylist():
            click.echo(json.dumps(row, default=str))


@main.command("log")
@click.option("--ref", default=None, help="Only this branch or tag (default: every ref).")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Entries to print.",
)
@click.pass_context
def log_command(ctx: click.Context, ref: str | None, limit: int) -> None:
    """Print the commit log, newest first."""
    for entry in _lakehouse(ctx).log(ref, limit):
        click.echo(
            f"{entry.commit_id}  {entry.timestamp:%Y-%m-%d %H:%M:%S}  {entry.ref:<16}"
            f" {entry.author:<10} {entry.message}"
        )


@main.group()
def branch() -> None:
    """List, create, delete and merge branches."""


@branch.command("list")
@click.pass_context
def branch_list(ctx: click.Context) -> None:
    """List branches (main first)."""
    for name in _lakehouse(ctx).branches():
        click.echo(name)


@branch.command("create")
@click.argument("name")
@click.option("--from", "from_ref", default="main", show_default=True, help="Ref to branch from.")
@click.pass_context
def branch_create(ctx: click.Context, name: str, from_ref: str) -> None:
    """Create branch NAME from a ref (pointers only: no data is copied)."""
    _lakehouse(ctx).create_branch(name, from_ref=from_ref)
    click.echo(f"created branch {name} from {from_ref}")


@branch.command("delete")
@click.argument("name")
@click.pass_context
def branch_delete(ctx: click.Context, name: str) -> None:
    """Delete branch NAME (its data files stay; other refs may use them)."""
    _lakehouse(ctx).delete_branch(name)
    click.echo(f"deleted branch {name}")


@branch.command("diff")
@click.argument("source")
@click.option("--against", default="main", show_default=True, help="Ref to compare with.")
@click.pass_context
def branch_diff(ctx: click.Context, source: str, against: str) -> None:
    """List the tables that differ between AGAINST and SOURCE."""
    diff = _lakehouse(ctx).diff(against, source)
    for marker, names in (("~", diff.changed), ("+", diff.added), ("-", diff.removed)):
        for name in names:
            click.echo(f"{marker} {name}")


@branch.command("merge")
@click.argument("source")
@click.option("--into", default="main", show_default=True, help="Branch to merge into.")
@click.pass_context
def branch_merge(ctx: click.Context, source: str, into: str) -> None:
    """Merge branch SOURCE into another branch, all tables at once."""
    result = _lakehouse(ctx).merge(source, into=into)
    for name in result.fast_forwarded:
        click.echo(f"fast-forwarded {name}")
    for name in result.added:
        click.echo(f"added {name}")
    for name in result.rebased:
        click.echo(f"rebased {name} (re-applied {source}'s appends)")
    if not (result.fast_forwarded or result.added or result.rebased):
        click.echo(f"{into} already has everything of {source}")


def _load_schema(spec: str) -> Any:
    """``package.module:Name`` (or a file ``path/to/schemas.py:Name``) → the object."""
    import importlib
    import importlib.util
    import sys

    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise click.BadParameter(
            f"{spec!r}: use module:Name, e.g. workflows.schemas.events:EventSchema"
        )
    try:
        if module_name.endswith(".py"):
            loaded = importlib.util.spec_from_file_location("_phlo_cli_schema", module_name)
            if loaded is None or loaded.loader is None:
                raise ImportError(f"cannot load {module_name}")
            module = importlib.util.module_from_spec(loaded)
            loaded.loader.exec_module(module)
        else:
            sys.path.insert(0, ".")
            module = importlib.import_module(module_name)
        return getattr(module, attribute)
    except (ImportError, AttributeError, OSError) as exc:
        raise click.BadParameter(f"cannot load {spec!r}: {exc}") from exc


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--schema", "schema_spec", required=True, help="module:Model of a Pandera schema.")
@click.option(
    "--max-failure-cases", type=click.IntRange(min=0), default=None, help="Cases kept per check."
)
@click.pass_context
def validate(
    ctx: click.Context, path: str, schema_spec: str, max_failure_cases: int | None
) -> None:
    """Validate a Parquet or CSV file against a Pandera schema (exit code 1 on failures)."""
    import pyarrow.csv
    import pyarrow.parquet

    from phlo.validation import Validator

    data = pyarrow.csv.read_csv(path) if path.endswith(".csv") else pyarrow.parquet.read_table(path)
    validator = Validator(_load_schema(schema_spec), max_failure_cases=max_failure_cases)
    report = validator.report(data)
    click.echo(
        f"{len(report.native_checks)} checks in the engine, {len(report.pandera_checks)} by Pandera"
    )
    if report.valid:
        click.echo(f"valid: {report.table.num_rows} rows")
        return
    for r in report.records:
        sample = ", ".join(
            f"row {s['index']}: {s['failure_case']!r}"
            for s in r["sample"][:3]
            if s["index"] is not None
        )
        click.echo(f"FAIL [{r['code']}] {r['column']}: {r['check']} x{r['count']}  {sample}")
    ctx.exit(1)


def _age(text: str) -> dt.timedelta:
    """``90s``, ``30m``, ``12h`` or ``5d``."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    try:
        return dt.timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError, IndexError):
        raise click.BadParameter(f"{text!r} is not an age like 90s, 30m, 12h or 5d") from None


def _size(text: str) -> int:
    """``1048576``, ``512KB``, ``128MB``, ``1GB`` (or KiB/MiB/GiB: the same, powers of 1024)."""
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    lowered = text.strip().lower().removesuffix("ib").removesuffix("b")
    number = lowered.rstrip("kmg")
    try:
        return int(float(number) * units[lowered[len(number) :]])
    except (KeyError, ValueError):
        raise click.BadParameter(f"{text!r} is not a size like 128MB, 512KB or 1GB") from None


def _filter(text: str) -> tuple[str, str, Any]:
    """``"day = 2024-01-01"``, ``"id >= 10"``: column, operator, value (int, float or text)."""
    parts = text.split(None, 2)
    if len(parts) != 3:
        raise click.BadParameter(f"{text!r}: write COLUMN OP VALUE, e.g. 'day >= 2024-01-01'")
    column, op, raw = parts
    value: Any = raw
    for parse in (int, float):
        try:
            value = parse(raw)
            break
        except ValueError:
            continue
    return column, op, value


@main.group()
def maintain() -> None:
    """Expire snapshots, remove orphan files, compact small files, regroup manifests."""


@maintain.command("expire")
@click.option("--older-than", default="5d", show_default=True, help="Age: 90s, 30m, 12h, 5d.")
@click.option(
    "--keep-last",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Snapshots every branch keeps.",
)
@click.pass_context
def maintain_expire(ctx: click.Context, older_than: str, keep_last: int) -> None:
    """Expire snapshots older than an age on every branch; delete files only they used."""
    result = _lakehouse(ctx).expire_snapshots(_age(older_than), keep_last)
    click.echo(
        f"expired {result.snapshots_expired} snapshots on {len(result.refs_rewritten)} "
        f"table refs, deleted {result.files_deleted} files"
    )
    for ref in result.refs_expired:
        click.echo(f"removed expired table ref {ref}")


@maintain.command("orphans")
@click.option("--older-than", default="3d", show_default=True, help="Age: 90s, 30m, 12h, 5d.")
@click.option("--dry-run", is_flag=True, help="List the files without deleting them.")
@click.pass_context
def maintain_orphans(ctx: click.Context, older_than: str, dry_run: bool) -> None:
    """Delete files nothing references (leftovers of crashed writes)."""
    result = _lakehouse(ctx).remove_orphan_files(_age(older_than), dry_run=dry_run)
    for path in result.files:
        click.echo(path)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(result.files)} orphan files ({result.bytes} bytes)")


@maintain.command("compact")
@click.argument("table")
@click.option("--target-file-size", default="256MB", show_default=True, help="e.g. 128MB.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help="Only files that may hold matching rows: 'COLUMN OP VALUE' (repeatable, ANDed).",
)
@click.option("--ref", default="main", show_default=True, help="Branch to compact.")
@click.pass_context
def maintain_compact(
    ctx: click.Context, table: str, target_file_size: str, filters: tuple[str, ...], ref: str
) -> None:
    """Rewrite the small data files of TABLE into target-size files (same rows)."""
    t = _lakehouse(ctx).table(table, ref=ref)
    result = t.compact(_size(target_file_size), [_filter(f) for f in filters])
    if result.snapshot_id is None:
        click.echo(f"nothing to compact in {table}")
        return
    click.echo(
        f"compacted {result.files_rewritten} files ({result.bytes_before} bytes) into "
        f"{result.files_added} ({result.bytes_after} bytes), snapshot {result.snapshot_id}"
    )


@maintain.command("rewrite-manifests")
@click.argument("table")
@click.option("--ref", default="main", show_default=True, help="Branch to rewrite.")
@click.pass_context
def maintain_rewrite_manifests(ctx: click.Context, table: str, ref: str) -> None:
    """Regroup the manifests of TABLE into target-size ones, sorted by partition."""
    result = _lakehouse(ctx).rewrite_manifests(table, ref=ref)
    if result.snapshot_id is None:
        click.echo(f"{table} has no data yet")
        return
    click.echo(
        f"rewrote {result.manifests_before} manifests into {result.manifests_after}, "
        f"snapshot {result.snapshot_id}"
    )


@main.group(invoke_without_command=True)
@click.pass_context
def tag(ctx: click.Context) -> None:
    """List tags, or create one (`phlo tag create NAME`)."""
    if ctx.invoked_subcommand is None:
        for name in _lakehouse(ctx).tags():
            click.echo(name)


@tag.command("create")
@click.argument("name")
@click.option("--ref", default="main", show_default=True, help="Ref to tag.")
@click.pass_context
def tag_create(ctx: click.Context, name: str, ref: str) -> None:
    """Tag the current state of a ref (tags are immutable)."""
    _lakehouse(ctx).create_tag(name, ref=ref)
    click.echo(f"tagged {ref} as {name}")


if __name__ == "__main__":
    main()
