"""Helpers of the dbt tests: the shop project (tests/projects/shop: an ingestion of orders and
a dbt project bronze → silver → gold → marts with a seed, an incremental model and tests),
parsed once per session and copied for each test."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import phlo
from phlo.transforms import find_dbt_project

TEMPLATE = Path(__file__).parent / "projects" / "shop"
DBT = Path("workflows") / "transforms" / "dbt"
#: A Python model that interrupts the process (Ctrl-C in a notebook) while dbt runs it.
INTERRUPTING_MODEL = (
    "import os, signal, time\n\n"
    "def model(dbt, session):\n"
    "    dbt.config(materialized='table')\n"
    "    os.kill(os.getpid(), signal.SIGINT)\n"
    "    time.sleep(2)  # the interrupt reaches dbt's main thread while the model runs\n"
    "    return session.sql('select 1 as one').arrow()\n"
)


@pytest.fixture(scope="session")
def parsed_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop project with its dbt manifest parsed (and cached in target/phlo)."""
    folder = tmp_path_factory.mktemp("shop") / "shop"
    shutil.copytree(
        TEMPLATE, folder, ignore=shutil.ignore_patterns("__pycache__", ".phlo", "target")
    )
    find_dbt_project(folder)
    return folder


@pytest.fixture
def shop(parsed_shop: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the parsed shop project (file times kept: the parse stays cached)."""
    folder = tmp_path / "shop"
    shutil.copytree(parsed_shop, folder)
    yield folder
    sys.modules.pop("workflows.ingestion.shop.orders", None)


def lakehouse_of(project: Path) -> phlo.Lakehouse:
    return phlo.Lakehouse.open(project / ".phlo")


def orders_module(project: Path):  # type: ignore[no-untyped-def]
    """The project's ingestion module (imported from the project's copy)."""
    from phlo.discovery import discover

    discover(project)
    from workflows.ingestion.shop import orders

    return orders
