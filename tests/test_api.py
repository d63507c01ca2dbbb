"""The public surface: everything native is wrapped, everything public is exported and typed."""

from __future__ import annotations

from pathlib import Path

import phlo
from phlo import _native

PACKAGE = Path(phlo.__file__).parent


def test_every_native_symbol_has_a_python_wrapper():
    wrappers = "".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    for name in _native.__all__:
        if name != "__version__":
            assert f"_native.{name}" in wrappers, f"{name} is not wrapped"


def test_public_names_are_exported_and_documented():
    for name in phlo.__all__:
        obj = getattr(phlo, name)
        assert obj is not None
        if callable(obj):
            assert obj.__doc__, f"phlo.{name} has no docstring"
    assert (PACKAGE / "py.typed").exists()
    assert phlo.__version__ == _native.__version__
