"""phlo as a client of a Nessie-style REST catalog: `Lakehouse.connect(catalog="http://…/iceberg")`
against a real `phlo catalog serve` process, whose `/iceberg` answers Nessie's config markers.
There `ref="dev"` is the catalog's branch `dev` (prefix `dev|<warehouse>`), not a ref inside
each table: reads, appends, merges and transactions on dev move dev only, and PyIceberg's
RestCatalog on `…/iceberg/dev` reads what phlo wrote there."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from tests.test_catalog_server import served
from tests.test_rest_catalog import batch, connect, rows

import phlo
from phlo.errors import ConfigError, InputError


@pytest.fixture
def root(lh: phlo.Lakehouse) -> Path:
    """A lakehouse with `raw.m` holding ids 0..4 on main, and a branch `dev` of it."""
    lh.create_table("raw.m", {"id": pa.int64(), "v": pa.string()}).append(batch(range(5), "main"))
    lh.create_branch("dev")
    return lh.root


def test_the_server_speaks_nessies_config_under_iceberg(root: Path):
    with served(root) as uri:
        with urllib.request.urlopen(f"{uri}/iceberg/dev/v1/config?warehouse=wh") as answer:
            overrides = json.load(answer)["overrides"]
        assert overrides["prefix"] == "dev%7Cwh"
        assert overrides["nessie.is-nessie-catalog"] == "true"
        assert overrides["nessie.prefix-pattern"] == "{ref}|{warehouse}"
        assert overrides["nessie.default-branch.name"] == "dev"


def test_phlo_writes_to_a_catalog_branch_and_pyiceberg_reads_it_there(root: Path):
    model = {i: "main" for i in range(5)}
    with served(root) as uri:
        lh = connect(f"{uri}/iceberg", root)
        table = lh.table("raw.m", ref="dev")
        table.append(batch(range(10, 13), "dev"))
        table.merge(batch(range(3, 11), "merged"), "id")
        with lh.transaction(ref="dev") as tx:
            tx.table("raw.m").append(batch(range(20, 22), "tx"))
        dev = dict(model)
        dev.update({i: "dev" for i in range(10, 13)})
        dev.update({i: "merged" for i in range(3, 11)})
        dev.update({i: "tx" for i in range(20, 22)})

        assert rows(lh.table("raw.m", ref="dev").scan().to_arrow()) == dev
        assert rows(lh.table("raw.m").scan().to_arrow()) == model
        on_dev = RestCatalog("dev", uri=f"{uri}/iceberg/dev")
        assert rows(on_dev.load_table("raw.m").scan().to_arrow()) == dev
        on_main = RestCatalog("main", uri=f"{uri}/iceberg")
        assert rows(on_main.load_table("raw.m").scan().to_arrow()) == model

    # The served lakehouse's own branch dev holds it; its main is as it was.
    served_lh = phlo.Lakehouse.open(root)
    assert rows(served_lh.table("raw.m", ref="dev").scan().to_arrow()) == dev
    assert rows(served_lh.table("raw.m").scan().to_arrow()) == model
    assert len(served_lh.log("dev", limit=10)) >= 3


def test_unknown_refs_and_branch_management_are_typed_errors(root: Path):
    with served(root) as uri:
        lh = connect(f"{uri}/iceberg", root)
        with pytest.raises(InputError, match="ref nope does not exist") as unknown:
            lh.table("raw.m", ref="nope").append(batch(range(1), "x"))
        assert "branch create" in str(unknown.value)
        with pytest.raises(ConfigError, match="server's own API"):
            lh.create_branch("feature")
        with pytest.raises(ConfigError, match="server's own API"):
            lh.merge("dev")
        assert rows(lh.table("raw.m").scan().to_arrow()) == {i: "main" for i in range(5)}
    assert "feature" not in phlo.Lakehouse.open(root).branches()
