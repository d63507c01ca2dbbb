"""`phlo config show`: the effective settings, where each came from, secrets masked."""

from __future__ import annotations

from typing import Any

import click

from phlo.cli import output
from phlo.cli.app import main, project_config
from phlo.config import URL_SECRETS, ProjectConfig, is_secret


@main.group("config")
def config_group() -> None:
    """Inspect the project's settings (phlo.yaml, .phlo/.env.local, PHLO_* variables)."""


@config_group.command("show")
@output.json_option
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings and the source of each (flag, environment variable,
    .env.local, phlo.yaml, default); passwords, keys and tokens are masked."""
    config = project_config(ctx)
    settings = masked(config)
    target = config.lakehouse_target()
    if output.is_json(ctx):
        output.print_json(
            {
                "project": config.root,
                "file": config.file,
                "env_file": config.env_file if config.env_file.is_file() else None,
                "profile": config.profile,
                "lakehouse_path": config.lakehouse_path,
                "target": target.masked(),
                "settings": settings,
                "sources": dict(config.sources),
            }
        )
        return
    click.echo(f"project   {config.root}")
    click.echo(f"file      {config.file or '(none: defaults)'}")
    click.echo(f"lakehouse {config.lakehouse_path}")
    located = target.masked()
    click.echo(f"catalog   {located['catalog']}")
    click.echo(f"warehouse {located['warehouse']}")
    for key, value in located["properties"].items():
        click.echo(f"  {key} = {value}")
    click.echo(f"env file  {config.env_file if config.env_file.is_file() else '(none)'}")
    for key, value in _flat(settings):
        source = config.sources.get(key, "default")
        shown = "-" if value is None else value
        click.echo(f"{key:<32} {shown!s:<40} {source}")


def masked(config: ProjectConfig) -> dict[str, Any]:
    """The settings as plain data, secrets replaced by ``***`` and passwords in URLs too."""
    from phlo.publishing.postgres import redact

    data = config.settings.model_dump(mode="json")
    for key, _value in _flat(data):
        path = tuple(key.split("."))
        node = data
        for part in path[:-1]:
            node = node[part]
        if node[path[-1]] is not None and is_secret(path):
            node[path[-1]] = redact(node[path[-1]]) if path in URL_SECRETS else "***"
    return data


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in data.items():
        if isinstance(value, dict):
            items.extend(_flat(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items
