"""The live line a long operation shows in Jupyter (phlo.progress), in a real kernel."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from notebooks import activity_of, execute
from phlo.progress import activity, shows_activity

#: The notebook's first cell: `shown(label)` waits until phlo has published the live line of
#: `label` (its kernel's display publisher, watched), so a "long" operation lasts until its line
#: showed, however late the ticker thread gets to run on a loaded machine.
WATCH_LINES = """
import threading
from IPython import get_ipython
from phlo.progress import activity

lines, new_line = [], threading.Condition()
publisher = get_ipython().display_pub
publish = publisher.publish

def watched(data, *args, **kwargs):
    with new_line:
        lines.append(str(data.get("text/html", "")))
        new_line.notify_all()
    return publish(data, *args, **kwargs)

publisher.publish = watched

def shown(label):
    with new_line:
        assert new_line.wait_for(lambda: any(label + " …" in line for line in lines), 600)
"""


def test_a_long_operation_shows_its_progress_a_quick_one_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(WATCH_LINES),
        nbformat.v4.new_code_cell("with activity('slow thing'):\n    shown('slow thing')"),
        nbformat.v4.new_code_cell("with activity('quick thing'):\n    pass"),
        nbformat.v4.new_code_cell(
            "try:\n    with activity('broken thing'):\n        shown('broken thing')\n"
            "        raise ValueError('no')\nexcept ValueError:\n    pass"
        ),
    ]
    file = tmp_path / "progress.ipynb"
    nbformat.write(notebook, file)
    ran = execute(file, tmp_path, monkeypatch, tmp_path)
    slow, quick, broken = (activity_of(cell.outputs) for cell in ran.cells[1:])
    # Shown after a second: the final line says how long it took, a second or more.
    assert len(slow) == 1 and _took("slow thing: done in", slow[0]) >= 1.0
    assert quick == [""]  # under a second: the placeholder stays empty
    assert len(broken) == 1 and _took("broken thing: failed in", broken[0]) >= 1.0


def _took(what: str, line: str) -> float:
    """The seconds `line` says `what` took."""
    found = re.search(rf"{what} (\d+\.\d) s<", line)
    assert found, line
    return float(found.group(1))


def test_outside_a_kernel_it_only_runs_the_operation() -> None:
    @shows_activity("adding")
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    with pytest.raises(ZeroDivisionError), activity("dividing"):
        _ = 1 / 0
