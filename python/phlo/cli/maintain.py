"""`phlo maintain`: expire snapshots, remove orphans, compact, rewrite manifests, and fold
merge-on-read deletes back in."""

from __future__ import annotations

import dataclasses

import click

from phlo.cli import output, parsing
from phlo.cli.app import main, open_lakehouse


@main.group()
def maintain() -> None:
    """Expire snapshots, remove orphan files, compact small files, regroup manifests, report
    and fold merge-on-read deletes."""


@maintain.command("expire")
@click.option("--older-than", default="5d", show_default=True, help="Age: 90s, 30m, 12h, 5d.")
@click.option(
    "--keep-last",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Snapshots every branch keeps.",
)
@output.json_option
@click.pass_context
def maintain_expire(ctx: click.Context, older_than: str, keep_last: int) -> None:
    """Expire snapshots older than an age on every branch; delete files only they used."""
    with output.activity("expiring snapshots"):
        result = open_lakehouse(ctx).expire_snapshots(parsing.age(older_than), keep_last)
    if output.is_json(ctx):
        output.print_json(dataclasses.asdict(result))
        return
    click.echo(
        f"expired {result.snapshots_expired} snapshots on {len(result.refs_rewritten)} "
        f"table refs, deleted {result.files_deleted} files"
    )
    for ref in result.refs_expired:
        click.echo(f"removed expired table ref {ref}")


@maintain.command("orphans")
@click.option("--older-than", default="3d", show_default=True, help="Age: 90s, 30m, 12h, 5d.")
@click.option("--dry-run", is_flag=True, help="List the files without deleting them.")
@output.json_option
@click.pass_context
def maintain_orphans(ctx: click.Context, older_than: str, dry_run: bool) -> None:
    """Delete files nothing references (leftovers of crashed writes)."""
    with output.activity("looking for orphan files"):
        lh = open_lakehouse(ctx)
        result = lh.remove_orphan_files(parsing.age(older_than), dry_run=dry_run)
    if output.is_json(ctx):
        output.print_json(dataclasses.asdict(result))
        return
    for path in result.files:
        click.echo(path)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(result.files)} orphan files ({result.bytes} bytes)")


@maintain.command("compact")
@click.argument("table")
@click.option(
    "--target-file-size",
    help="e.g. 128MB [default: the table's write.target-file-size-bytes, else 256MB]",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help="Only files that may hold matching rows: 'COLUMN OP VALUE' (repeatable, ANDed).",
)
@click.option("--ref", default="main", show_default=True, help="Branch to compact.")
@output.json_option
@click.pass_context
def maintain_compact(
    ctx: click.Context,
    table: str,
    target_file_size: str | None,
    filters: tuple[str, ...],
    ref: str,
) -> None:
    """Rewrite the small data files of TABLE into target-size files (same rows)."""
    t = open_lakehouse(ctx).table(table, ref=ref)
    conditions = [parsing.condition(f) for f in filters]
    with output.activity(f"compacting {table}"):
        target = parsing.size(target_file_size) if target_file_size is not None else None
        result = t.compact(target, conditions)
    if output.is_json(ctx):
        output.print_json(dataclasses.asdict(result))
        return
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
@output.json_option
@click.pass_context
def maintain_rewrite_manifests(ctx: click.Context, table: str, ref: str) -> None:
    """Regroup the manifests of TABLE into target-size ones, sorted by partition."""
    with output.activity(f"rewriting the manifests of {table}"):
        result = open_lakehouse(ctx).rewrite_manifests(table, ref=ref)
    if output.is_json(ctx):
        output.print_json(dataclasses.asdict(result))
        return
    if result.snapshot_id is None:
        click.echo(f"{table} has no data yet")
        return
    click.echo(
        f"rewrote {result.manifests_before} manifests into {result.manifests_after}, "
        f"snapshot {result.snapshot_id}"
    )


@maintain.command("deletes")
@click.argument("tables", nargs=-1)
@click.option("--ref", default="main", show_default=True, help="Branch to look at.")
@click.option(
    "--compact-above",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Compact each table whose read amplification is above this (e.g. 1.2); "
    "without it, only report.",
)
@output.json_option
@click.pass_context
def maintain_deletes(
    ctx: click.Context, tables: tuple[str, ...], ref: str, compact_above: float | None
) -> None:
    """Show delete files and read amplification (rows decoded per live row) of TABLES (default:
    every table), and compact those above --compact-above."""
    lh = open_lakehouse(ctx)
    names = list(tables) or [t for ns in lh.namespaces() for t in lh.tables(ns)]
    report = []
    for name in names:
        table = lh.table(name, ref=ref)
        stats = table.delete_stats()
        row: dict[str, object] = {
            "table": name,
            **dataclasses.asdict(stats),
            "read_amplification": round(stats.read_amplification, 3),
            "compacted": None,
        }
        if compact_above is not None and stats.read_amplification > compact_above:
            with output.activity(f"compacting {name}"):
                row["compacted"] = table.compact().snapshot_id
        report.append(row)
    if output.is_json(ctx):
        output.print_json(report)
        return
    for row in report:
        done = f", compacted (snapshot {row['compacted']})" if row["compacted"] else ""
        click.echo(
            f"{row['table']}: {row['delete_files']} delete files over {row['data_files']} data "
            f"files, {row['deleted_rows']} of {row['rows']} rows deleted, read amplification "
            f"{row['read_amplification']}{done}"
        )
