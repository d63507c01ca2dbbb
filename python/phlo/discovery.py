"""Finding a project's workflows: import every ``workflows/**/*.py`` of the project and collect
the `IngestionDefinition` and `QualityDefinition` objects they define: for Dagster's definitions,
`phlo validate`, and the audit of `IngestionDefinition.run` (so it needs no Dagster)."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from phlo.errors import ConfigError
from phlo.ingestion.decorator import IngestionDefinition
from phlo.quality.decorator import QualityDefinition

__all__ = ["Workflows", "discover", "workflow_modules"]

WORKFLOWS = "workflows"


def workflow_modules(root: Path) -> list[tuple[str, Path]]:
    """The dotted module name and file of every ``workflows/**/*.py`` under `root`, sorted."""
    folder = root / WORKFLOWS
    if not folder.is_dir():
        return []
    modules = []
    for file in sorted(folder.rglob("*.py")):
        parts = file.relative_to(root).with_suffix("").parts
        if "__pycache__" in parts or any(not p.isidentifier() for p in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append((".".join(parts), file))
    return modules


@dataclass(frozen=True)
class Workflows:
    """What a project's workflow modules define, in module order."""

    ingestions: list[IngestionDefinition]
    quality: list[QualityDefinition]


def discover(root: Path) -> Workflows:
    """Imports the project's workflow modules (with `root` on ``sys.path``, so that
    ``workflows.schemas.x`` imports work) and returns their ingestions and quality checks.

    A module that fails to import, two ingestions of one table, and two `@phlo_quality`
    functions of one name are `ConfigError`s naming the files."""
    root = root.resolve()
    _use_project_path(root)
    ingestions: dict[str, tuple[IngestionDefinition, str]] = {}
    quality: dict[str, tuple[QualityDefinition, str]] = {}
    for name, file in workflow_modules(root):
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise ConfigError(
                f"{file}: importing {name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        for attr, value in vars(module).items():
            where = f"{file}:{attr}"
            if isinstance(value, IngestionDefinition):
                _add(ingestions, value.asset_key, value, where, f"write table {value.table_name!r}")
            elif isinstance(value, QualityDefinition):
                _add(quality, value.name, value, where, f"are named {value.name!r}")
    return Workflows(
        ingestions=[d for d, _ in ingestions.values()], quality=[d for d, _ in quality.values()]
    )


def _add(found: dict[str, tuple[Any, str]], key: str, value: Any, where: str, what: str) -> None:
    earlier = found.get(key)
    if earlier is None:
        found[key] = (value, where)
    elif earlier[0] is not value:
        raise ConfigError(f"two workflows {what}: {earlier[1]} and {where}; rename one of them")


#: Project roots this process put on ``sys.path``.
_added_roots: list[str] = []


def _use_project_path(root: Path) -> None:
    """Puts `root` first on ``sys.path`` and forgets the ``workflows`` modules of any other
    project loaded earlier by this process (several projects in one process, as in tests):
    the imports then load this project's files."""
    for other in [r for r in _added_roots if r != str(root)]:
        _added_roots.remove(other)
        if other in sys.path:
            sys.path.remove(other)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
        _added_roots.append(str(root))
    names = [n for n in sys.modules if n == WORKFLOWS or n.startswith(WORKFLOWS + ".")]
    # Decide for every module before removing any: a namespace package's path is computed
    # from its parent's.
    stale = [n for n in names if not _is_under(sys.modules[n], root)]
    for name in stale:
        del sys.modules[name]


def _is_under(module: ModuleType, root: Path) -> bool:
    paths = [getattr(module, "__file__", None), *getattr(module, "__path__", [])]
    return all(p and Path(p).resolve().is_relative_to(root) for p in paths)
