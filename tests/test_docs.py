"""Every ```python block of docs/*.md and README.md runs: each file's blocks in order, in one fresh module
namespace, in a temporary working directory (on ``sys.path``). A python or yaml block whose
first line is a comment naming a file (``# workflows/schemas/events.py``) is written to that
file instead, so a project laid out in the docs is importable by the blocks after it. A block
that cannot run on its own (it needs a server, or it is a fragment) is preceded by
``<!-- not-run: reason -->``; every such marker must give its reason and stand right before a
python block. The conventions are described at the top of docs/README.md."""

from __future__ import annotations

import re
import sys
import tempfile
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
FENCE = re.compile(r"^([ \t]*)```(\S*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*not-run:(.*?)-->", re.DOTALL)
FILE_COMMENT = re.compile(r"#\s*([\w./-]+\.(?:py|ya?ml))\b")


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    code: str
    #: The reason of the ``not-run`` marker right before the block (None: it runs).
    skipped: str | None

    @property
    def file(self) -> str | None:
        """The project file this block is (its first line names it), or None."""
        first = self.code.split("\n", 1)[0]
        match = FILE_COMMENT.match(first)
        return match.group(1) if match and self.language in ("python", "yaml", "yml") else None


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        marker = MARKER.match(before, max(before.rfind("<!--"), 0))
        skipped = None
        if marker and marker.end() == len(before):
            skipped = marker.group(1).strip()
        line = text.count("\n", 0, match.start()) + 2
        code = textwrap.dedent(match.group(3))  # a block indented in a list item
        found.append(Block(line, match.group(2).lower(), code, skipped))
    return found


def doc_files() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(DOCS.parent)))
def test_every_python_block_runs(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The examples' `tempfile.mkdtemp()` lakehouses are pytest's to remove, not left in TMPDIR.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    name = f"phlo_docs_{path.parent.name}_{path.stem.replace('-', '_')}"
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    monkeypatch.setitem(sys.modules, name, module)  # classes defined in a block find it
    imported = set(sys.modules)
    try:
        for block in blocks(path):
            if block.skipped is not None:
                continue
            if block.file is not None:
                target = tmp_path / block.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code)
            elif block.language == "python":
                code = compile(block.code, f"{path.name}:{block.line}", "exec", dont_inherit=True)
                exec(code, module.__dict__)
    finally:  # the doc's own modules (its project's workflows) must not leak to the next doc
        for stale in set(sys.modules) - imported:
            if str(getattr(sys.modules[stale], "__file__", "") or "").startswith(str(tmp_path)):
                del sys.modules[stale]


def test_every_not_run_marker_gives_a_reason_and_precedes_a_python_block() -> None:
    problems = []
    for path in doc_files():
        if path.name == "README.md":
            continue  # it describes the marker
        marked = [b for b in blocks(path) if b.skipped is not None]
        for b in marked:
            if not b.skipped:
                problems.append(f"{path.name}:{b.line}: the not-run marker gives no reason")
            if b.language != "python":
                problems.append(f"{path.name}:{b.line}: a not-run marker before a non-python block")
        if len(MARKER.findall(path.read_text())) != len(marked):
            problems.append(f"{path.name}: a not-run marker does not stand right before a block")
    assert not problems, "\n".join(problems)


def test_the_marker_convention_is_described_at_the_top_of_the_docs_readme() -> None:
    top = (DOCS / "README.md").read_text().split("\n- [")[0]  # before the list of pages
    assert "<!-- not-run: " in top and "tests/test_docs.py" in top
