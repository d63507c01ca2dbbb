"""The live line a long operation shows in Jupyter (phlo.progress), in a real kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from notebooks import activity_of, execute
from phlo.progress import activity, shows_activity


def test_a_long_operation_shows_its_progress_a_quick_one_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import time\nfrom phlo.progress import activity\n"
            "with activity('slow thing'):\n    time.sleep(1.6)"
        ),
        nbformat.v4.new_code_cell("with activity('quick thing'):\n    pass"),
        nbformat.v4.new_code_cell(
            "try:\n    with activity('broken thing'):\n        time.sleep(1.2)\n"
            "        raise ValueError('no')\nexcept ValueError:\n    pass"
        ),
    ]
    file = tmp_path / "progress.ipynb"
    nbformat.write(notebook, file)
    ran = execute(file, tmp_path, monkeypatch, tmp_path)
    slow, quick, broken = (activity_of(cell.outputs) for cell in ran.cells)
    assert len(slow) == 1 and "slow thing: done in 1." in slow[0]
    assert quick == [""]  # under a second: the placeholder stays empty
    assert len(broken) == 1 and "broken thing: failed in 1." in broken[0]


def test_outside_a_kernel_it_only_runs_the_operation() -> None:
    @shows_activity("adding")
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    with pytest.raises(ZeroDivisionError), activity("dividing"):
        _ = 1 / 0
