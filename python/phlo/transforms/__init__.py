"""dbt transforms on the lakehouse (see docs/dbt.md): a project's dbt project
(``workflows/transforms/dbt``) runs on DuckDB in process, reading the lakehouse tables of the
run's ref, and phlo writes the models it builds back as Iceberg tables on that ref."""

from phlo.transforms.build import DbtBuild, NodeOutcome, build
from phlo.transforms.profile import trino_branch_catalog, trino_profile
from phlo.transforms.project import DBT_DIR, DbtProject, Node, find_dbt_project
from phlo.transforms.write import NodeWrite

__all__ = [
    "DBT_DIR",
    "DbtBuild",
    "DbtProject",
    "Node",
    "NodeOutcome",
    "NodeWrite",
    "build",
    "find_dbt_project",
    "trino_branch_catalog",
    "trino_profile",
]
