"""Commands on tables: list, show, head, delete, SQL, the commit log."""

from __future__ import annotations

import dataclasses
import json

import click

from phlo.cli import output, parsing
from phlo.cli.app import main, open_lakehouse


@main.command()
@output.json_option
@click.pass_context
def namespaces(ctx: click.Context) -> None:
    """List namespaces."""
    output.print_names("namespaces", open_lakehouse(ctx).namespaces())


@main.command()
@click.argument("namespace", required=False)
@output.json_option
@click.pass_context
def tables(ctx: click.Context, namespace: str | None) -> None:
    """List tables (of NAMESPACE, or of every namespace)."""
    lh = open_lakehouse(ctx)
    spaces = [namespace] if namespace else lh.namespaces()
    output.print_names("tables", [name for ns in spaces for name in lh.tables(ns)])


@main.command()
@click.argument("table")
@click.option("--ref", default="main", show_default=True, help="Branch or tag to read.")
@output.json_option
@click.pass_context
def show(ctx: click.Context, table: str, ref: str) -> None:
    """Schema, partitioning and history of TABLE."""
    t = open_lakehouse(ctx).table(table, ref=ref)
    if output.is_json(ctx):
        output.print_json(
            {
                "table": t.name,
                "ref": ref,
                "metadata_location": t.metadata_location,
                "schema": [
                    {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in t.schema
                ],
                "partition_spec": [dataclasses.asdict(p) for p in t.partition_spec],
                "history": [dataclasses.asdict(s) for s in t.history()],
            }
        )
        return
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
@output.json_option
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
    t = open_lakehouse(ctx).table(table, ref=ref, as_of=as_of)
    scan = t.scan(snapshot_id=snapshot_id, batch_size=rows)
    found: list[dict[str, object]] = []
    for batch in scan.to_reader():
        found.extend(batch.slice(0, rows - len(found)).to_pylist())
        if len(found) >= rows:
            break
    if output.is_json(ctx):
        output.print_json({"table": table, "rows": found})
        return
    for row in found:
        click.echo(row)


@main.command()
@click.argument("table")
@click.option(
    "--where", "conditions", multiple=True, required=True, help="A condition; several are ANDed."
)
@click.option("--ref", default="main", show_default=True, help="Branch to delete on.")
@click.option("-m", "--message", default=None, help="Message for the log.")
@output.json_option
@click.pass_context
def delete(
    ctx: click.Context, table: str, conditions: tuple[str, ...], ref: str, message: str | None
) -> None:
    """Delete the rows of TABLE matching every --where condition, as one snapshot."""
    filters = [parsing.where(c) for c in conditions]
    with output.activity(f"deleting from {table}"):
        result = open_lakehouse(ctx).table(table, ref=ref).delete(filters, message=message)
    if output.is_json(ctx):
        output.print_json(dataclasses.asdict(result))
        return
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
    if as_json:
        output.set_json(ctx)
    relation = open_lakehouse(ctx).sql(query, ref=ref, as_of=as_of)
    if not as_json:
        with output.activity("running the query"):
            text = str(relation)
        click.echo(text, nl=False)
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
@output.json_option
@click.pass_context
def log_command(ctx: click.Context, ref: str | None, limit: int) -> None:
    """Print the commit log, newest first."""
    entries = open_lakehouse(ctx).log(ref, limit)
    if output.is_json(ctx):
        output.print_json({"entries": [dataclasses.asdict(e) for e in entries]})
        return
    # Columns as wide as their longest value: a run's branch is pipeline-run-<uuid>.
    ref_width = max((len(e.ref) for e in entries), default=0)
    author_width = max((len(e.author) for e in entries), default=0)
    for entry in entries:
        click.echo(
            f"{entry.commit_id}  {entry.timestamp:%Y-%m-%d %H:%M:%S}  {entry.ref:<{ref_width}}"
            f"  {entry.author:<{author_width}}  {entry.message}"
        )
