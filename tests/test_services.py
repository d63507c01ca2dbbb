"""`phlo services`: the docker compose stack and Trino's catalog file, generated from a
project's settings. Checked as text and YAML only: neither Docker nor Trino runs here."""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from phlo._native import __version__
from phlo.cli import main
from phlo.config import load_project
from phlo.errors import ConfigError
from phlo.services import dbt_trino_profile, trino_catalog_properties

SCALED = """
namespace: bronze
profiles:
  scaled:
    storage: {bucket: analytics, prefix: lake, region: eu-west-1, endpoint: "http://127.0.0.1:9000"}
    catalog: {uri: "postgresql://phlo@127.0.0.1:5432/catalog"}
    trino: {host: 127.0.0.1, port: 8090, catalog: lakehouse}
"""
#: What the stack runs, each with a healthcheck except the one-shot bucket creation.
SERVICES = {
    "postgres",
    "minio",
    "minio-init",
    "catalog",
    "trino",
    "dagster-webserver",
    "dagster-daemon",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.upper().startswith(("PHLO_", "AWS_"))]:
        monkeypatch.delenv(name)
    folder = tmp_path / "sales"
    folder.mkdir()
    (folder / "phlo.yaml").write_text(SCALED)
    (folder / ".phlo").mkdir()
    (folder / ".phlo" / ".env.local").write_text(
        "PHLO_STORAGE__SECRET_ACCESS_KEY=s3-s3cret\nPHLO_CATALOG__PASSWORD=pg-s3cret\n"
    )
    return folder


def phlo(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args])


def properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_services_init_writes_the_stack_from_the_settings(project: Path) -> None:
    result = phlo(project, "--profile", "scaled", "services", "init", "--json")
    assert result.exit_code == 0, result.output
    folder = project / "services"
    written = json.loads(result.stdout)["files"]
    assert set(written) == {
        "docker-compose.yml",
        ".env.example",
        "Dockerfile",
        "Dockerfile.dockerignore",
        "dagster.yaml",
        "postgres-init.sql",
        "trino/catalog/lakehouse.properties",
        "dbt/profiles.yml",
    }
    for name in written:  # no secret of the project reaches a generated file
        text = (folder / name).read_text()
        assert "s3cret" not in text and not re.search(r"(?<![A-Za-z0-9_])__[A-Z_]+__", text)

    compose = yaml.safe_load((folder / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == SERVICES
    assert compose["name"] == "sales"
    assert set(compose["volumes"]) == {"postgres-data", "minio-data"}

    # Images pinned by tag; the phlo image built from the project with the Dockerfile.
    phlo_image = f"sales-phlo:{__version__}"
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
        if "build" in service:
            assert image == phlo_image
            context = (folder / service["build"]["context"]).resolve()
            assert context == project.resolve()
            assert (context / service["build"]["dockerfile"]).resolve() == folder / "Dockerfile"
    assert {n for n, s in services.items() if "build" in s} == {
        "catalog",
        "dagster-webserver",
        "dagster-daemon",
    }

    # Ports on 127.0.0.1 only; Trino's host port from trino.port.
    ports = {n: s.get("ports", []) for n, s in services.items()}
    assert all(p.startswith("127.0.0.1:") for ps in ports.values() for p in ps)
    assert ports["trino"] == ["127.0.0.1:8090:8080"]
    assert ports["catalog"] == ["127.0.0.1:8181:8181"]
    assert ports["dagster-webserver"] == ["127.0.0.1:3000:3000"]

    # Every dependency waits for a healthcheck (or for the bucket creation to finish).
    for name, service in services.items():
        if name != "minio-init":
            assert service["healthcheck"]["test"], name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            if dependency == "minio-init":
                assert condition == {"condition": "service_completed_successfully"}
            else:
                assert condition == {"condition": "service_healthy"}, (name, dependency)
                assert "healthcheck" in services[dependency]
    assert set(services["dagster-daemon"]["depends_on"]) == {
        "postgres",
        "minio-init",
        "catalog",
        "trino",
    }

    # Secrets only as references to .env, whose example holds placeholders for each.
    example = dict(
        line.split("=", 1)
        for line in (folder / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    referenced = set(re.findall(r"\$\{([A-Z_]+)", (folder / "docker-compose.yml").read_text()))
    assert (
        referenced
        == set(example)
        == {"POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "PHLO_POSTGRES_URL"}
    )
    assert all(v.startswith("change-me") for k, v in example.items() if "PASSWORD" in k)

    # The phlo processes see the scaled profile on the stack's own servers.
    environment = services["dagster-daemon"]["environment"]
    assert environment["PHLO_PROFILE"] == "scaled"
    assert environment["PHLO_STORAGE__WAREHOUSE"] == "s3://analytics/lake"
    assert environment["PHLO_STORAGE__REGION"] == "eu-west-1"
    assert environment["PHLO_STORAGE__ENDPOINT"] == "http://minio:9000"
    assert environment["PHLO_CATALOG__URI"] == "postgresql://phlo@postgres:5432/phlo_catalog"
    assert environment["PHLO_CATALOG__PASSWORD"].startswith("${POSTGRES_PASSWORD")
    # The daemon publishes marts at promotion: it sees the BI database the runs see.
    assert environment["PHLO_POSTGRES_URL"] == "${PHLO_POSTGRES_URL:-}"
    assert services["catalog"]["environment"] == environment
    assert "local/analytics" in services["minio-init"]["entrypoint"][-1]

    # Files the services mount exist beside the compose file.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (folder / source).exists(), volume
    mounted = services["trino"]["volumes"][0]
    assert mounted.endswith(":/etc/trino/catalog/lakehouse.properties:ro")

    catalog = properties((folder / "trino" / "catalog" / "lakehouse.properties").read_text())
    assert catalog["iceberg.catalog.type"] == "rest"
    assert catalog["iceberg.rest-catalog.uri"] == "http://catalog:8181/iceberg"
    assert catalog["iceberg.rest-catalog.warehouse"] == "s3://analytics/lake"
    assert catalog["s3.endpoint"] == "http://minio:9000"
    assert catalog["s3.path-style-access"] == "true"
    assert catalog["s3.aws-secret-key"] == "${ENV:AWS_SECRET_ACCESS_KEY}"
    assert set(services["trino"]["environment"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

    dbt = yaml.safe_load((folder / "dbt" / "profiles.yml").read_text())["phlo"]["outputs"]["scaled"]
    assert (dbt["type"], dbt["host"], dbt["port"], dbt["database"], dbt["schema"]) == (
        "trino",
        "trino",
        8080,
        "lakehouse",
        "bronze",
    )
    dagster = yaml.safe_load((folder / "dagster.yaml").read_text())
    assert dagster["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"
    }
    assert "CREATE DATABASE dagster" in (folder / "postgres-init.sql").read_text()
    dockerfile = (folder / "Dockerfile").read_text()
    assert f'"phlo[all]=={__version__}"' in dockerfile
    major, minor, patch = metadata.version("dagster").split(".")[:3]
    assert f'"dagster-postgres==0.{int(minor) + 16}.{patch}"' in dockerfile and major == "1"
    assert ".phlo" in (folder / "Dockerfile.dockerignore").read_text().splitlines()


def test_services_init_refuses_to_overwrite_without_force(project: Path, tmp_path: Path) -> None:
    assert phlo(project, "services", "init").exit_code == 0
    compose = project / "services" / "docker-compose.yml"
    compose.write_text("# edited by hand\n")
    result = phlo(project, "services", "init")
    assert result.exit_code == 4
    assert "[would_overwrite]" in result.output and "docker-compose.yml" in result.output
    assert "--force" in result.output and "hint:" in result.output
    assert compose.read_text() == "# edited by hand\n"  # nothing written
    assert phlo(project, "services", "init", "--force").exit_code == 0
    assert "services:" in compose.read_text()

    # Elsewhere, on another address: the build context still is the project.
    elsewhere = tmp_path / "ops" / "stack"
    result = phlo(project, "services", "init", "--dir", str(elsewhere), "--bind", "0.0.0.0")
    assert result.exit_code == 0, result.output
    stack = yaml.safe_load((elsewhere / "docker-compose.yml").read_text())["services"]
    assert stack["trino"]["ports"] == ["0.0.0.0:8080:8080"]  # the embedded profile's default
    build = stack["catalog"]["build"]
    assert (elsewhere / build["context"]).resolve() == project.resolve()
    assert (project / build["dockerfile"]).resolve() == elsewhere / "Dockerfile"
    # The embedded profile names no bucket: the stack's own.
    assert stack["catalog"]["environment"]["PHLO_STORAGE__WAREHOUSE"] == "s3://lake/warehouse"


def test_trino_reads_phlos_postgresql_catalog_as_a_jdbc_catalog(project: Path) -> None:
    text = trino_catalog_properties(load_project(project, profile="scaled"))
    assert "s3cret" not in text
    catalog = properties(text)
    assert catalog == {
        "connector.name": "iceberg",
        "iceberg.catalog.type": "jdbc",
        "iceberg.jdbc-catalog.catalog-name": "phlo",
        "iceberg.jdbc-catalog.driver-class": "org.postgresql.Driver",
        "iceberg.jdbc-catalog.connection-url": "jdbc:postgresql://127.0.0.1:5432/catalog",
        "iceberg.jdbc-catalog.default-warehouse-dir": "s3://analytics/lake",
        "iceberg.jdbc-catalog.connection-user": "phlo",
        "iceberg.jdbc-catalog.connection-password": "${ENV:PHLO_CATALOG__PASSWORD}",
        "fs.native-s3.enabled": "true",
        "s3.region": "eu-west-1",
        "s3.endpoint": "http://127.0.0.1:9000",
        "s3.path-style-access": "true",
        "s3.aws-access-key": "${ENV:AWS_ACCESS_KEY_ID}",
        "s3.aws-secret-key": "${ENV:AWS_SECRET_ACCESS_KEY}",
    }
    # `phlo catalog serve` in front of it: the REST catalog, branches included.
    result = phlo(
        project,
        "--profile",
        "scaled",
        "services",
        "trino-catalog",
        "--rest-uri",
        "http://127.0.0.1:8181/iceberg",
    )
    assert result.exit_code == 0, result.output
    rest = properties(result.stdout)
    assert rest["iceberg.catalog.type"] == "rest"
    assert rest["iceberg.rest-catalog.uri"] == "http://127.0.0.1:8181/iceberg"
    assert not any(key.startswith("iceberg.jdbc") for key in rest)


def test_trino_on_a_rest_catalog_with_a_token(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHLO_CATALOG__URI", "https://catalog.example.test/api/catalog")
    monkeypatch.setenv("PHLO_CATALOG__TOKEN", "t0ken-s3cret")
    monkeypatch.setenv("PHLO_STORAGE__PATH_STYLE", "false")
    (project / ".phlo" / ".env.local").write_text("PHLO_STORAGE__SECRET_ACCESS_KEY=s3-s3cret\n")
    text = trino_catalog_properties(load_project(project, profile="scaled"))
    assert "s3cret" not in text
    catalog = properties(text)
    assert catalog["iceberg.rest-catalog.uri"] == "https://catalog.example.test/api/catalog"
    assert catalog["iceberg.rest-catalog.security"] == "OAUTH2"
    assert catalog["iceberg.rest-catalog.oauth2.token"] == "${ENV:PHLO_CATALOG__TOKEN}"
    assert catalog["s3.path-style-access"] == "false"


def test_trino_cannot_share_an_sqlite_catalog_or_a_local_warehouse(project: Path) -> None:
    embedded = load_project(project)  # the lakehouse folder: catalog.db, file:// warehouse
    with pytest.raises(ConfigError, match="object storage, not file://"):
        trino_catalog_properties(embedded)
    (project / "phlo.yaml").write_text("storage: {bucket: analytics}\n")
    with pytest.raises(ConfigError, match="phlo catalog serve") as info:
        trino_catalog_properties(load_project(project))
    assert "--rest-uri" in str(info.value)
    result = phlo(project, "services", "trino-catalog")
    assert result.exit_code == 3 and "[config]" in result.output
    served = trino_catalog_properties(
        load_project(project), rest_uri="http://127.0.0.1:8181/iceberg"
    )
    assert properties(served)["iceberg.rest-catalog.warehouse"] == "s3://analytics"
    assert "s3.aws-secret-key" in properties(served)  # keys from .env.local's secret


def test_the_dbt_trino_profile_names_the_password_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHLO_TRINO__PASSWORD", "trino-s3cret")
    profile = dbt_trino_profile(load_project(project, profile="scaled"))
    output = profile["phlo"]["outputs"]["scaled"]
    assert "s3cret" not in yaml.safe_dump(profile)
    assert output["password"] == "{{ env_var('PHLO_TRINO__PASSWORD') }}"
    assert (output["method"], output["http_scheme"]) == ("ldap", "https")
    assert (output["host"], output["port"], output["database"], output["schema"]) == (
        "127.0.0.1",
        8090,
        "lakehouse",
        "bronze",
    )
