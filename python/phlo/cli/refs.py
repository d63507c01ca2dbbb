"""Commands on refs: branches and tags."""

from __future__ import annotations

import dataclasses

import click

from phlo.cli import output
from phlo.cli.app import main, open_lakehouse


@main.group()
def branch() -> None:
    """List, create, delete and merge branches."""


@branch.command("list")
@output.json_option
@click.pass_context
def branch_list(ctx: click.Context) -> None:
    """List branches (main first)."""
    output.print_names("branches", open_lakehouse(ctx).branches())


@branch.command("create")
@click.argument("name")
@click.option("--from", "from_ref", default="main", show_default=True, help="Ref to branch from.")
@output.json_option
@click.pass_context
def branch_create(ctx: click.Context, name: str, from_ref: str) -> None:
    """Create branch NAME from a ref (pointers only: no data is copied)."""
    open_lakehouse(ctx, create=True).create_branch(name, from_ref=from_ref)
    if output.is_json(ctx):
        output.print_json({"created": name, "from": from_ref})
        return
    click.echo(f"created branch {name} from {from_ref}")


@branch.command("delete")
@click.argument("name")
@output.json_option
@click.pass_context
def branch_delete(ctx: click.Context, name: str) -> None:
    """Delete branch NAME (its data files stay; other refs may use them)."""
    open_lakehouse(ctx).delete_branch(name)
    if output.is_json(ctx):
        output.print_json({"deleted": name})
        return
    click.echo(f"deleted branch {name}")


@branch.command("diff")
@click.argument("source")
@click.option("--against", default="main", show_default=True, help="Ref to compare with.")
@output.json_option
@click.pass_context
def branch_diff(ctx: click.Context, source: str, against: str) -> None:
    """List the tables that differ between AGAINST and SOURCE."""
    diff = open_lakehouse(ctx).diff(against, source)
    if output.is_json(ctx):
        output.print_json({"source": source, "against": against, **dataclasses.asdict(diff)})
        return
    for marker, names in (("~", diff.changed), ("+", diff.added), ("-", diff.removed)):
        for name in names:
            click.echo(f"{marker} {name}")


@branch.command("merge")
@click.argument("source")
@click.option("--into", default="main", show_default=True, help="Branch to merge into.")
@output.json_option
@click.pass_context
def branch_merge(ctx: click.Context, source: str, into: str) -> None:
    """Merge branch SOURCE into another branch, all tables at once."""
    with output.activity(f"merging {source} into {into}"):
        result = open_lakehouse(ctx).merge(source, into=into)
    if output.is_json(ctx):
        output.print_json({"source": source, "into": into, **dataclasses.asdict(result)})
        return
    for name in result.fast_forwarded:
        click.echo(f"fast-forwarded {name}")
    for name in result.added:
        click.echo(f"added {name}")
    for name in result.rebased:
        click.echo(f"rebased {name} (re-applied {source}'s appends)")
    if not (result.fast_forwarded or result.added or result.rebased):
        click.echo(f"{into} already has everything of {source}")


@main.group(invoke_without_command=True)
@output.json_option
@click.pass_context
def tag(ctx: click.Context) -> None:
    """List tags, or create one (`phlo tag create NAME`)."""
    if ctx.invoked_subcommand is None:
        output.print_names("tags", open_lakehouse(ctx).tags())


@tag.command("create")
@click.argument("name")
@click.option("--ref", default="main", show_default=True, help="Ref to tag.")
@output.json_option
@click.pass_context
def tag_create(ctx: click.Context, name: str, ref: str) -> None:
    """Tag the current state of a ref (tags are immutable)."""
    open_lakehouse(ctx, create=True).create_tag(name, ref=ref)
    if output.is_json(ctx):
        output.print_json({"tag": name, "ref": ref})
        return
    click.echo(f"tagged {ref} as {name}")
