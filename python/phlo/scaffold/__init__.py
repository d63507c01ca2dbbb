"""Writing project files: a new project from a template (`init_project`), a new table's
workflow in a project (`add_workflow`)."""

from phlo.scaffold.project import TEMPLATES, init_project, template_names
from phlo.scaffold.workflow import COLUMN_TYPES, Workflow, add_workflow

__all__ = [
    "COLUMN_TYPES",
    "TEMPLATES",
    "Workflow",
    "add_workflow",
    "init_project",
    "template_names",
]
