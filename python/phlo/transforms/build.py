"""One ``dbt build`` of a run: dbt builds the selected models in a DuckDB file of the run
(sources and earlier models read from the lakehouse at the run's ref by phlo's plugin), runs
their tests, then phlo writes every model, seed and snapshot it built to the lakehouse on the
same ref. On a WAP branch, the run's models are therefore published with the run's ingestions,
in one merge, only when no blocking check failed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phlo.errors import ConfigError, NoSuchTableError, PhloError, SqlError
from phlo.progress import shows_activity
from phlo.quality.contract import SAMPLE_LIMIT, CheckResult
from phlo.sql import quote
from phlo.transforms.checks import check_result, test_specs
from phlo.transforms.profile import DATABASE, write_profile
from phlo.transforms.project import DbtProject, Node, current_project
from phlo.transforms.runner import run_dbt
from phlo.transforms.write import NodeWrite, write_node

if TYPE_CHECKING:
    import duckdb

    from phlo.lakehouse import Lakehouse

__all__ = ["DbtBuild", "NodeOutcome", "build"]

#: The dbt variable holding the run's partition (``{{ var("partition_date_str") }}``).
PARTITION_VAR = "partition_date_str"


@dataclass(frozen=True)
class NodeOutcome:
    """What happened to one model, seed or snapshot of the build."""

    unique_id: str
    name: str
    #: dbt's status: ``success``, ``error`` or ``skipped``.
    status: str
    #: The lakehouse write (None for views, ephemeral models and nodes that did not build).
    write: NodeWrite | None = None
    message: str = ""


@dataclass(frozen=True)
class DbtBuild:
    """The outcome of `build`."""

    ref: str
    #: By unique id, every model, seed and snapshot dbt ran.
    nodes: dict[str, NodeOutcome]
    #: By test unique id, the result of every test that ran on one of the project's nodes.
    checks: dict[str, CheckResult]
    #: A typed error per node that failed (a broken model, a missing source table).
    errors: list[PhloError] = field(default_factory=list)
    #: The build's folder (DuckDB file, dbt artifacts and logs), kept when the build failed.
    workdir: Path | None = None

    def raise_for_errors(self) -> None:
        """Raises the first node error (the others are noted on it)."""
        if self.errors:
            first = self.errors[0]
            for other in self.errors[1:]:
                first.add_note(str(other))
            raise first


@shows_activity("dbt build")
def build(
    project: DbtProject,
    lakehouse: Lakehouse,
    ref: str,
    *,
    run_id: str,
    select: Collection[str] | None = None,
    partition_date: str | None = None,
    workdir: Path | None = None,
    located_by: Path | None = None,
) -> DbtBuild:
    """Runs one ``dbt build`` of the nodes `select`ed (unique ids; all when None) and their
    tests on `ref`, and writes the models it built to `ref`. ``partition_date`` is the dbt
    variable ``partition_date_str``. `located_by`: the project folder whose settings name
    `lakehouse` (a catalog and warehouse other than a lakehouse folder), for phlo's dbt plugin
    (which opens the lakehouse its profile names) to open the same one. The build follows the
    project's files as they are now, though `project` was parsed before (a model a notebook
    added since is built and in the result)."""
    project, parsed = current_project(project.dir)
    _check_selected(project, select)
    workdir = workdir or lakehouse.scratch_dir / "staging" / run_id / "dbt"
    if workdir.exists():
        shutil.rmtree(workdir)
    target = workdir / "target"
    selected = _with_upstream_views(project, select)
    copies = {uid for uid in selected if project.node(uid).write_mode == "upsert"}
    profiles = write_profile(
        workdir / "profile",
        duckdb_path=workdir / f"{DATABASE}.duckdb",
        # A project's settings name a connected lakehouse (no folder): the plugin opens that.
        lakehouse=lakehouse.scratch_dir if located_by is not None else lakehouse.root,
        project=located_by,
        ref=ref,
        relations=_relations(project, set(selected), copies),
        dbt_dir=project.dir,
    )
    extra = ["--vars", json.dumps({PARTITION_VAR: partition_date})]
    if select is not None:
        extra += ["--select", *(".".join(project.node(uid).props["fqn"]) for uid in selected)]
    run_dbt(["build", *extra], project.dir, profiles, target, manifest=parsed)
    results = json.loads((target / "run_results.json").read_text())["results"]
    manifest = json.loads((target / "manifest.json").read_text())
    outcome = _collect(
        project,
        manifest,
        results,
        lakehouse,
        ref,
        workdir / f"{DATABASE}.duckdb",
        copies=copies,
        properties={
            "phlo.run-id": run_id,
            **({"phlo.partition-date": partition_date} if partition_date else {}),
        },
        partition_date=partition_date,
    )
    if outcome.errors:
        return DbtBuild(ref, outcome.nodes, outcome.checks, outcome.errors, workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    return outcome


def _collect(
    project: DbtProject,
    manifest: Mapping[str, Any],
    results: list[Mapping[str, Any]],
    lakehouse: Lakehouse,
    ref: str,
    database: Path,
    *,
    copies: set[str],
    properties: dict[str, str],
    partition_date: str | None,
) -> DbtBuild:
    import duckdb

    owned = {node.unique_id: node for node in project.nodes()}
    specs = test_specs(project)
    nodes: dict[str, NodeOutcome] = {}
    checks: dict[str, CheckResult] = {}
    errors: list[PhloError] = []
    names = _lakehouse_names(project)
    con = duckdb.connect(str(database))
    try:
        for result in results:
            uid = result["unique_id"]
            if uid in owned:
                node = Node(manifest["nodes"].get(uid, owned[uid].props))
                status = str(result["status"])
                write = None
                if status == "success" and node.write_mode != "none":
                    try:
                        write = write_node(
                            con,
                            lakehouse,
                            ref,
                            node,
                            copied=uid in copies,
                            properties={**properties, "phlo.dbt-node": uid},
                        )
                    except PhloError as exc:  # e.g. a column that changed type
                        exc.add_note(
                            f"while writing {node.resource_type} {node.name} ({node.path})"
                        )
                        errors.append(exc)
                        status = "error"
                elif status == "error":
                    errors.append(_node_error(node, str(result.get("message") or ""), ref))
                nodes[uid] = NodeOutcome(
                    uid, node.name, status, write, str(result.get("message") or "")
                )
            elif uid in specs and result["status"] != "skipped":
                spec = specs[uid]
                test = manifest["nodes"][uid]
                target = Node(manifest["nodes"][spec.target])
                compiled = str(result.get("compiled_code") or test.get("compiled_code") or "")
                checks[uid] = check_result(
                    spec,
                    test,
                    result,
                    partition_key=partition_date,
                    total_count=_count(con, target),
                    repro_sql=_lakehouse_sql(compiled, names),
                    sample=_sample(con, compiled) if result["status"] != "pass" else [],
                )
    finally:
        con.close()
    return DbtBuild(ref, nodes, checks, errors)


def _check_selected(project: DbtProject, select: Collection[str] | None) -> None:
    missing = sorted(set(select or ()) - set(project.manifest["nodes"]))
    if missing:
        raise ConfigError(
            f"dbt project {project.name} ({project.dir}) has no node {', '.join(missing)}: "
            f"select unique ids of its models, seeds and snapshots (was one removed or renamed "
            f"since the project was loaded?)"
        )


def _with_upstream_views(project: DbtProject, select: Collection[str] | None) -> list[str]:
    """The selected nodes plus the views and ephemeral models they read through (DuckDB views
    live only in the run's database, so a build rebuilds those it needs)."""
    if select is None:
        return [node.unique_id for node in project.nodes()]
    parents = project.manifest["parent_map"]
    found = list(select)
    todo = list(select)
    while todo:
        for parent in parents.get(todo.pop(), []):
            props = project.manifest["nodes"].get(parent)
            if props is None or parent in found:
                continue
            if Node(props).write_mode == "none" and props["resource_type"] == "model":
                found.append(parent)
                todo.append(parent)
    return found


def _relations(project: DbtProject, selected: set[str], copies: set[str]) -> list[dict[str, Any]]:
    """What the plugin makes visible: every source, and every node that is a lakehouse table,
    but those the build replaces (a seed refuses to load into a view): a copy when the build
    updates it incrementally, else a view."""
    relations: list[dict[str, Any]] = [
        {"relation": list(relation), "table": ".".join(relation), "copy": False}
        for _, relation in project.sources()
    ]
    for node in project.nodes():
        rebuilt = node.unique_id in selected and node.write_mode == "replace"
        if node.write_mode != "none" and not rebuilt:
            relations.append(
                {
                    "relation": list(node.relation),
                    "table": node.table,
                    "copy": node.unique_id in copies,
                }
            )
    return relations


def _lakehouse_names(project: DbtProject) -> dict[str, str]:
    """DuckDB relation names as dbt renders them → the lakehouse table (quoted) they show."""
    names = {}
    for _, (schema, name) in project.sources():
        names[_rendered(schema, name)] = f"{quote(schema)}.{quote(name)}"
    for node in project.nodes():
        if node.write_mode != "none":
            namespace, table = node.table.rsplit(".", 1)
            names[_rendered(*node.relation)] = f"{quote(namespace)}.{quote(table)}"
    return names


def _rendered(schema: str, name: str) -> str:
    return f"{quote(DATABASE)}.{quote(schema)}.{quote(name)}"


def _lakehouse_sql(compiled: str, names: Mapping[str, str]) -> str:
    """A test's compiled SQL over the lakehouse tables (for ``lh.sql(sql, ref=...)``)."""
    for rendered, table in names.items():
        compiled = compiled.replace(rendered, table)
    return compiled


def _count(con: duckdb.DuckDBPyConnection, node: Node) -> int:
    schema, name = node.relation
    try:
        ((count,),) = con.execute(f"SELECT count(*) FROM {quote(schema)}.{quote(name)}").fetchall()
    except Exception:  # the relation did not build
        return 0
    return int(count)


def _sample(con: duckdb.DuckDBPyConnection, compiled: str) -> list[dict[str, Any]]:
    """Up to `SAMPLE_LIMIT` failing rows of a test (its compiled SQL lists them)."""
    try:
        rows = con.sql(f"SELECT * FROM ({compiled}) LIMIT {SAMPLE_LIMIT}").to_arrow_table()
    except Exception:  # a test whose SQL does not select rows (or did not compile)
        return []
    return [{k: _plain(v) for k, v in row.items()} for row in rows.to_pylist()]


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def _node_error(node: Node, message: str, ref: str) -> PhloError:
    """A failed node as a typed error naming it: a table it reads that does not exist is a
    `NoSuchTableError`, any other failure of its SQL a `SqlError`."""
    where = f"dbt {node.resource_type} {node.name} ({node.path})"
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    if "Catalog Error" in message and "does not exist" in message:
        return NoSuchTableError(
            f"{where} reads a table that does not exist at {ref}: {first}. Load the source "
            f"table first (run its ingestion), or fix the source/ref in the model",
            table=node.table,
        )
    return SqlError(f"{where} failed: {message.strip()}. Fix the model's SQL", table=node.table)
