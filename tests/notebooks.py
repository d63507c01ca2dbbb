"""Running a notebook in the tests: a real Jupyter kernel on this interpreter (a kernel spec in
the test's own folder), the outputs of each cell found by the cell's tag."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest


def execute(notebook_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cwd: Path) -> Any:
    """The notebook, executed in `cwd`; raises when a cell fails."""
    import nbformat
    from nbclient import NotebookClient

    spec = tmp_path / "jupyter" / "kernels" / "phlo-tests"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "phlo tests", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    notebook = nbformat.read(notebook_file, as_version=4)
    # Every wait generous (a loaded machine), and none cut short silently: by default a cell's
    # outputs that arrive more than 4 s after its reply are dropped without an error.
    client = NotebookClient(
        notebook,
        timeout=600,
        startup_timeout=600,
        iopub_timeout=600,
        raise_on_iopub_timeout=True,
        kernel_name="phlo-tests",
        resources={"metadata": {"path": cwd}},
    )
    client.execute()
    return notebook


def outputs_by_tag(notebook: Any) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for cell in notebook.cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            found[tag] = cell.get("outputs", [])
    return found


def _all_html(outputs: list[dict[str, Any]]) -> list[str]:
    return [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]


def html_of(outputs: list[dict[str, Any]]) -> list[str]:
    """The HTML the cell displayed, without phlo's activity lines (phlo.progress)."""
    return [h for h in _all_html(outputs) if h and "phlo-activity" not in h]


def activity_of(outputs: list[dict[str, Any]]) -> list[str]:
    """phlo's activity lines of the cell ('' for an operation that took under a second)."""
    return [h for h in _all_html(outputs) if not h or "phlo-activity" in h]


def text_of(outputs: list[dict[str, Any]]) -> str:
    return "".join(o["data"]["text/plain"] for o in outputs if "text/plain" in o.get("data", {}))
