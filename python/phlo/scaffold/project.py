"""New projects from the templates shipped in the package (`phlo init`).

A template is a plain folder, ``phlo/templates/<name>/``, copied as it is: the only
substitution is ``__PROJECT__`` → the project's name in text files. What running a template
in place leaves behind (its lakehouse, Dagster home, caches, dbt output, local secrets) is
never copied.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from phlo.errors import InputError, WouldOverwriteError

__all__ = ["TEMPLATES", "init_project", "template_names"]

TEMPLATES = Path(__file__).parents[1] / "templates"
TOKEN = "__PROJECT__"
#: Folders a project makes when it runs: never part of a new project.
_RUNTIME_DIRS = {"__pycache__", ".pytest_cache", ".dagster", ".venv", "target", "logs"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def template_names() -> list[str]:
    """The templates `init_project` knows (folders of ``phlo/templates``)."""
    return sorted(p.name for p in TEMPLATES.iterdir() if p.is_dir() and p.name[0] not in "._")


def init_project(target: str | os.PathLike[str], template: str = "minimal") -> list[Path]:
    """Writes a new project into the folder `target` (created; it may exist if empty) from
    `template`; returns the files written, relative to `target`."""
    folder = Path(target)
    name = folder.resolve().name
    if not _NAME.match(name):
        raise InputError(
            f"{name!r} is not a project name: start with a letter, then letters, digits, "
            "'-' or '_' (e.g. phlo init my_pipeline)"
        )
    if template not in template_names():
        raise InputError(
            f"unknown template {template!r}; choose one of {', '.join(template_names())}"
        )
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise WouldOverwriteError(
            f"{folder} already exists and is not empty; phlo init writes only into a new or "
            f"empty folder: pick another name, or move {folder} away first"
        )
    source = TEMPLATES / template
    written = []
    for file in _template_files(source):
        relative = file.relative_to(source)
        destination = folder / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        data = file.read_bytes()
        try:
            data = data.decode().replace(TOKEN, name).encode()
        except UnicodeDecodeError:
            pass  # binary: copied as it is
        destination.write_bytes(data)
        destination.chmod(file.stat().st_mode & 0o777)
        written.append(relative)
    return written


def _template_files(source: Path) -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(source, followlinks=True):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in _RUNTIME_DIRS)
        inside_phlo = here.relative_to(source).parts[:1] == (".phlo",)
        for name in sorted(names):
            # .phlo/ holds the lakehouse and .env.local (secrets): only *.example is template.
            if name.endswith(".pyc") or (inside_phlo and not name.endswith(".example")):
                continue
            files.append(here / name)
    return files
