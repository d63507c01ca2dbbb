"""Project settings (phlo.yaml): discovery, defaults, and errors that name file and key."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from phlo.config import find_project_root, load_project
from phlo.errors import ConfigError


def write(folder, text):
    (folder / "phlo.yaml").write_text(text)
    return folder


def test_defaults_without_a_project_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PHLO_LAKEHOUSE", raising=False)
    config = load_project(tmp_path)
    assert config.file is None and config.root == tmp_path.resolve()
    assert config.lakehouse_path == tmp_path.resolve() / ".phlo"
    assert (config.namespace, config.timezone) == ("raw", "UTC")
    assert config.wap.enabled and config.wap.target == "main"
    assert config.wap.branch_retention_hours == 24.0


def test_the_root_is_the_nearest_folder_with_phlo_yaml(tmp_path, monkeypatch):
    monkeypatch.delenv("PHLO_LAKEHOUSE", raising=False)
    write(
        tmp_path,
        """
lakehouse: data/lake
namespace: bronze
partitions: {start: 2025-03-01, timezone: Europe/Berlin}
wap: {enabled: false, target: dev, branch_retention_hours: 2}
schedules: {default_status: stopped}
""",
    )
    deep = tmp_path / "workflows" / "ingestion"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == tmp_path.resolve()
    config = load_project(deep)
    assert config.file == tmp_path.resolve() / "phlo.yaml"
    assert config.lakehouse_path == tmp_path.resolve() / "data" / "lake"
    assert config.namespace == "bronze"
    assert config.partitions_start == dt.date(2025, 3, 1)
    assert config.timezone == "Europe/Berlin"
    assert (config.wap.enabled, config.wap.target, config.wap.branch_retention_hours) == (
        False,
        "dev",
        2.0,
    )
    assert config.schedule_status == "stopped"


def test_environment_overrides_the_lakehouse(tmp_path, monkeypatch):
    write(tmp_path, "lakehouse: here\n")
    monkeypatch.setenv("PHLO_LAKEHOUSE", str(tmp_path / "elsewhere"))
    assert load_project(tmp_path).lakehouse_path == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("lakehose: x\n", ["lakehose", "did you mean lakehouse"]),
        ("wap: {enable: true}\n", ["wap.enable", "did you mean enabled"]),
        ("wap: {enabled: 'yes'}\n", ["wap.enabled", "true or false"]),
        ("wap: {branch_retention_hours: -1}\n", ["wap.branch_retention_hours", ">= 0"]),
        ("partitions: {start: yesterday}\n", ["partitions.start", "2024-01-01"]),
        ("partitions: {timezone: Mars/Olympus}\n", ["partitions.timezone", "IANA"]),
        ("partitions: [1, 2]\n", ["partitions", "mapping"]),
        ("schedules: {default_status: paused}\n", ["schedules.default_status", "'running'"]),
        ("namespace: ''\n", ["namespace", "non-empty"]),
        ("- a\n- b\n", ["mapping of settings"]),
        ("lakehouse: [\n", ["not valid YAML"]),
    ],
)
def test_bad_settings_name_file_key_and_expected_form(tmp_path, monkeypatch, text, names):
    monkeypatch.delenv("PHLO_LAKEHOUSE", raising=False)
    write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    message = str(info.value)
    assert "phlo.yaml" in message
    for name in names:
        assert name in message


# --- Profiles, .phlo/.env.local, the environment and flags ----------------------------------

SCALED = """
lakehouse: from-yaml
namespace: raw
profiles:
  scaled:
    namespace: bronze
    storage: {endpoint: "http://127.0.0.1:9000", bucket: lake, secret_access_key: yaml-secret}
    catalog: {uri: "http://127.0.0.1:8181"}
    engine: trino
    trino: {host: 127.0.0.1, port: 8080, password: trino-pw}
"""


@pytest.fixture
def clean_env(monkeypatch):
    """No PHLO_* variable of the machine running the tests leaks into them."""
    import os

    for name in [n for n in os.environ if n.upper().startswith("PHLO_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def env_local(folder, text):
    (folder / ".phlo").mkdir(exist_ok=True)
    (folder / ".phlo" / ".env.local").write_text(text)


def test_precedence_flag_over_env_over_env_local_over_yaml_over_default(tmp_path, clean_env):
    write(tmp_path, "lakehouse: from-yaml\nnamespace: from-yaml\n")
    config = load_project(tmp_path)
    assert config.lakehouse_path == tmp_path.resolve() / "from-yaml"
    assert config.sources["lakehouse"] == f"{tmp_path.resolve() / 'phlo.yaml'}: lakehouse"
    assert "wap.enabled" not in config.sources  # a default

    env_local(tmp_path, "PHLO_LAKEHOUSE=from-env-local\nPHLO_WAP__ENABLED=false\nOTHER_TOOL=1\n")
    config = load_project(tmp_path)
    assert config.lakehouse_path == tmp_path.resolve() / "from-env-local"
    assert config.wap.enabled is False
    assert config.sources["wap.enabled"].endswith(".env.local: PHLO_WAP__ENABLED")
    assert config.namespace == "from-yaml"

    clean_env.setenv("PHLO_LAKEHOUSE", "from-env")
    clean_env.setenv("PHLO_WAP__ENABLED", "true")
    config = load_project(tmp_path)
    assert config.lakehouse_path == tmp_path.resolve() / "from-env"
    assert config.wap.enabled is True
    assert config.sources["lakehouse"] == "environment variable PHLO_LAKEHOUSE"

    clean_env.setenv("PHLO_NAMESPACE", "")  # empty: unset
    assert load_project(tmp_path).namespace == "from-yaml"

    config = load_project(tmp_path, lakehouse=tmp_path / "from-flag")
    assert config.lakehouse_path == tmp_path / "from-flag"
    assert config.sources["lakehouse"] == "flag --root"


def test_profiles_select_their_section_and_follow_the_same_precedence(tmp_path, clean_env):
    write(tmp_path, SCALED)
    embedded = load_project(tmp_path)
    assert (embedded.profile, embedded.namespace) == ("embedded", "raw")
    assert embedded.settings.storage.bucket is None  # the scaled section is not applied

    env_local(tmp_path, "PHLO_PROFILE=scaled\n")
    scaled = load_project(tmp_path)
    assert (scaled.profile, scaled.namespace) == ("scaled", "bronze")
    assert scaled.settings.storage.bucket == "lake"
    assert scaled.settings.trino.port == 8080
    assert scaled.sources["namespace"].endswith("phlo.yaml: profiles.scaled.namespace")

    clean_env.setenv("PHLO_PROFILE", "embedded")
    assert load_project(tmp_path).profile == "embedded"
    assert load_project(tmp_path, profile="scaled").profile == "scaled"


def test_the_embedded_default_target_is_the_lakehouse_folder(tmp_path, clean_env):
    write(tmp_path, "lakehouse: data/lake\n")
    target = load_project(tmp_path).lakehouse_target()
    folder = tmp_path.resolve() / "data" / "lake"
    assert target.folder == folder
    assert target.catalog == f"sqlite:///{folder / 'catalog.db'}"
    assert target.warehouse == (folder / "warehouse").as_uri()
    assert dict(target.properties) == {}


SCALED_TARGET = """
profile: scaled
profiles:
  scaled:
    storage: {endpoint: "http://127.0.0.1:9000", bucket: lake, prefix: /wh/, access_key_id: phlo}
    catalog: {uri: "postgresql://phlo@127.0.0.1:5432/catalog"}
"""


def test_the_scaled_profile_resolves_catalog_warehouse_and_properties(tmp_path, clean_env):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_SESSION_TOKEN"):
        clean_env.delenv(name, raising=False)
    write(tmp_path, SCALED_TARGET)
    env_local(tmp_path, "PHLO_CATALOG__PASSWORD=pg/s3cret\nPHLO_STORAGE__SECRET_ACCESS_KEY=k3y\n")
    config = load_project(tmp_path)
    target = config.lakehouse_target()
    assert target.folder is None
    assert target.catalog == "postgresql://phlo:pg%2Fs3cret@127.0.0.1:5432/catalog"
    assert target.warehouse == "s3://lake/wh"
    assert dict(target.properties) == {
        "s3.region": "us-east-1",
        "s3.endpoint": "http://127.0.0.1:9000",
        "s3.path-style-access": "true",  # an endpoint of its own: path-style by default
        "s3.access-key-id": "phlo",
        "s3.secret-access-key": "k3y",
    }
    shown = repr(target)
    assert "s3cret" not in shown and "k3y" not in shown
    assert "postgresql://phlo:***@127.0.0.1:5432/catalog" in shown
    assert "'s3.secret-access-key': '***'" in shown and "'s3.access-key-id': 'phlo'" in shown
    message = target.scrub("connection to postgresql://phlo:pg%2Fs3cret@h failed: pg/s3cret k3y")
    assert "s3cret" not in message and "k3y" not in message


def test_aws_variables_fill_the_storage_keys_no_other_source_sets(tmp_path, clean_env):
    write(tmp_path, SCALED_TARGET)
    env_local(tmp_path, "AWS_SESSION_TOKEN=from-env-local\nAWS_REGION=eu-west-1\n")
    clean_env.setenv("AWS_ACCESS_KEY_ID", "aws-id")  # phlo.yaml's access_key_id wins
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    clean_env.setenv("AWS_REGION", "eu-central-1")  # the environment over .env.local
    clean_env.delenv("AWS_SESSION_TOKEN", raising=False)
    config = load_project(tmp_path)
    properties = config.lakehouse_target().properties
    assert properties["s3.access-key-id"] == "phlo"
    assert properties["s3.secret-access-key"] == "aws-secret"
    assert properties["s3.region"] == "eu-central-1"
    assert properties["s3.session-token"] == "from-env-local"
    assert (
        config.sources["storage.secret_access_key"] == "environment variable AWS_SECRET_ACCESS_KEY"
    )
    assert config.sources["storage.session_token"].endswith(".env.local: AWS_SESSION_TOKEN")
    clean_env.setenv("PHLO_STORAGE__SECRET_ACCESS_KEY", "phlo-secret")  # PHLO_* over AWS_*
    clean_env.setenv("PHLO_STORAGE__PATH_STYLE", "false")
    properties = load_project(tmp_path).lakehouse_target().properties
    assert properties["s3.secret-access-key"] == "phlo-secret"
    assert properties["s3.path-style-access"] == "false"


def test_the_embedded_profile_may_name_its_catalog_and_warehouse(tmp_path, clean_env):
    write(tmp_path, "catalog: {uri: 'sqlite:///shared/catalog.db'}\n")
    target = load_project(tmp_path).lakehouse_target()
    assert target.folder is None  # opened with Lakehouse.connect
    assert target.catalog == f"sqlite:///{tmp_path.resolve() / 'shared' / 'catalog.db'}"
    assert target.warehouse == (tmp_path.resolve() / ".phlo" / "warehouse").as_uri()
    clean_env.setenv("PHLO_STORAGE__WAREHOUSE", (tmp_path / "wh").as_uri())
    target = load_project(tmp_path).lakehouse_target()
    assert target.warehouse == (tmp_path / "wh").as_uri() and dict(target.properties) == {}


def test_dagster_resolves_a_named_catalog_in_each_process(tmp_path, clean_env):
    """The resource carries the project folder, not the URIs and their secrets."""
    from phlo.dagster.resource import PhloResource

    embedded = PhloResource.from_project(load_project(tmp_path))
    assert (embedded.lakehouse, embedded.project) == (str(tmp_path.resolve() / ".phlo"), "")
    write(tmp_path, "catalog: {uri: 'postgresql://phlo@127.0.0.1:5432/catalog'}\n")
    env_local(tmp_path, "PHLO_CATALOG__PASSWORD=pg-s3cret\n")
    connected = PhloResource.from_project(load_project(tmp_path))
    assert connected.project == str(tmp_path.resolve())
    assert "pg-s3cret" not in repr(connected) and "postgresql" not in repr(connected)


def test_open_lakehouse_connects_to_the_named_catalog_and_warehouse(tmp_path, clean_env):
    """Needs `phlo.Lakehouse.connect` (issue 14): the profile's URIs, not the folder."""
    import pyarrow as pa

    from phlo.lakehouse_target import open_lakehouse

    (tmp_path / "shared").mkdir()
    warehouse = (tmp_path / "shared" / "warehouse").as_uri()
    write(
        tmp_path,
        f"catalog: {{uri: 'sqlite:///shared/catalog.db'}}\nstorage: {{warehouse: '{warehouse}'}}\n",
    )
    lh = open_lakehouse(load_project(tmp_path).lakehouse_target())
    lh.create_namespace("raw")
    table = lh.create_table("raw.events", {"id": pa.int64(), "name": pa.string()})
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    table.append(pa.Table.from_pylist(rows, schema=table.to_arrow().schema))
    again = load_project(tmp_path).open_lakehouse().table("raw.events")
    assert sorted(again.to_arrow().to_pylist(), key=lambda r: r["id"]) == rows
    assert (tmp_path / "shared" / "catalog.db").is_file()
    assert not (tmp_path / ".phlo").exists()  # the embedded folder was not used


def test_the_scaled_profile_names_what_it_misses(tmp_path, clean_env):
    write(tmp_path, "profile: scaled\nprofiles:\n  scaled:\n    storage: {bucket: lake}\n")
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    message = str(info.value)
    assert "catalog.uri" in message and "trino.host" not in message
    assert "storage.bucket" not in message
    write(tmp_path, "engine: trino\n")  # Trino as the engine needs its host, in any profile
    with pytest.raises(ConfigError, match=r"profile 'embedded' \(default\) needs trino.host"):
        load_project(tmp_path)


def test_secrets_are_never_shown(tmp_path, clean_env):
    write(tmp_path, "postgres: {url: 'postgresql://bi:pg-s3cret@127.0.0.1:5432/db'}\n")
    config = load_project(tmp_path)
    assert config.postgres_url == "postgresql://bi:pg-s3cret@127.0.0.1:5432/db"
    assert "pg-s3cret" not in repr(config)
    write(tmp_path, "profiles:\n  scaled:\n    trino: {password: [hunter2]}\n")
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    assert "profiles.scaled.trino.password" in str(info.value)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
    write(tmp_path, "catalog: {uri: 'mysql://phlo:hunter2@db/x'}\n")
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    assert "hunter2" not in str(info.value) and "'mysql://phlo:***@db/x'" in str(info.value)
    write(tmp_path, SCALED)
    scaled = load_project(tmp_path, profile="scaled")
    assert "yaml-secret" not in repr(scaled.settings)
    assert scaled.settings.storage.secret_access_key.get_secret_value() == "yaml-secret"


def test_postgres_url_from_the_environment(tmp_path, clean_env):
    clean_env.setenv("PHLO_POSTGRES_URL", "postgresql://bi@127.0.0.1:5432/from-env")
    config = load_project(tmp_path)
    assert config.postgres_url == "postgresql://bi@127.0.0.1:5432/from-env"
    assert config.sources["postgres.url"] == "environment variable PHLO_POSTGRES_URL"
    env_local(tmp_path, "PHLO_POSTGRES_URL=postgresql://bi@127.0.0.1:5432/from-env-local\n")
    clean_env.delenv("PHLO_POSTGRES_URL")
    config = load_project(tmp_path)
    assert config.postgres_url == "postgresql://bi@127.0.0.1:5432/from-env-local"
    assert config.sources["postgres.url"].endswith(".env.local: PHLO_POSTGRES_URL")


def test_empty_sections_read_as_absent(tmp_path, clean_env):
    write(tmp_path, "wap:\npartitions:\nprofiles:\n  scaled:\n")
    config = load_project(tmp_path)
    assert config.wap.enabled and config.partitions_start == dt.date(2024, 1, 1)


@pytest.mark.parametrize(
    ("yaml", "env", "dotenv", "names"),
    [
        (
            "",
            {"PHLO_WAP__ENABLED": "maybe"},
            "",
            ["environment variable PHLO_WAP__ENABLED", "true or false", "'maybe'"],
        ),
        (
            "",
            {"PHLO_WAP__ENABLE": "false"},
            "",
            ["PHLO_WAP__ENABLE", "unknown key wap.enable", "did you mean enabled"],
        ),
        (
            "",
            {"PHLO_PROFILE": "cloud"},
            "",
            ["environment variable PHLO_PROFILE", "'embedded' or 'scaled'"],
        ),
        ("", {}, "PHLO_NAMESPAC=x\n", [".env.local", "PHLO_NAMESPAC", "did you mean namespace"]),
        (
            "",
            {},
            "PHLO_WAP__BRANCH_RETENTION_HOURS=-1\n",
            [".env.local: PHLO_WAP__BRANCH_RETENTION_HOURS", ">= 0"],
        ),
        ("profiles: {staging: {}}\n", {}, "", ["phlo.yaml", "unknown profile profiles.staging"]),
        (
            "profiles: {scaled: {trino: {port: 99999}}}\n",
            {},
            "",
            ["phlo.yaml: profiles.scaled.trino.port", "port number"],
        ),
        (
            "profiles: {scaled: {catalog: {uri: 'localhost:8181'}}}\n",
            {},
            "",
            ["profiles.scaled.catalog.uri", "http://"],
        ),
        (
            "profiles: {scaled: {profile: embedded}}\n",
            {},
            "",
            ["profiles.scaled.profile is not allowed"],
        ),
        ("profiles: [scaled]\n", {}, "", ["phlo.yaml", "profiles must be a mapping"]),
        (
            "catalog: {uri: 'mysql://db/x'}\n",
            {},
            "",
            ["phlo.yaml: catalog.uri", "sqlite:///", "postgresql://", "http://", "'mysql://db/x'"],
        ),
        (
            "",
            {"PHLO_STORAGE__WAREHOUSE": "/data/wh"},
            "",
            ["environment variable PHLO_STORAGE__WAREHOUSE", "file:///", "s3://"],
        ),
        (
            "storage: {bucket: lake, warehouse: 's3://other/wh'}\n",
            {},
            "",
            ["storage.warehouse", "storage.bucket", "phlo.yaml: storage.warehouse", "keep one"],
        ),
        (
            "catalog: {uri: 'http://127.0.0.1:8181'}\n",
            {"PHLO_CATALOG__PASSWORD": "pw"},
            "",
            [
                "catalog.password (environment variable PHLO_CATALOG__PASSWORD)",
                "postgresql://USER@",
            ],
        ),
        (
            "engine: spark\n",
            {},
            "",
            ["phlo.yaml: engine", "'duckdb' or 'trino'"],
        ),
        (
            "",
            {"AWS_ENDPOINT_URL": "minio:9000"},
            "",
            ["environment variable AWS_ENDPOINT_URL", "http://"],
        ),
        (
            "storage: {bucket: lake, endpont: x}\n",
            {},
            "",
            ["phlo.yaml: storage.endpont", "did you mean endpoint"],
        ),
    ],
)
def test_bad_values_from_any_source_name_where_they_came_from(
    tmp_path, clean_env, yaml, env, dotenv, names
):
    write(tmp_path, yaml)
    for name, value in env.items():
        clean_env.setenv(name, value)
    if dotenv:
        env_local(tmp_path, dotenv)
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    for name in names:
        assert name in str(info.value)


# --- The examples of docs/configuration.md ----------------------------------------------------

DOC = Path(__file__).parent.parent / "docs" / "configuration.md"


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_the_documented_settings_load(tmp_path, clean_env):
    write(tmp_path, doc_blocks("yaml")[0])
    embedded = load_project(tmp_path)
    assert (embedded.profile, embedded.namespace) == ("embedded", "raw")
    assert embedded.postgres_url == "postgresql://bi@localhost:5432/analytics"
    scaled = load_project(tmp_path, profile="scaled")
    assert scaled.namespace == "bronze" and scaled.settings.storage.bucket == "lakehouse"
    assert scaled.settings.catalog.uri == "postgresql://phlo@localhost:5432/phlo_catalog"
    assert scaled.lakehouse_target().warehouse == "s3://lakehouse/warehouse"

    clean_env.setenv("PHLO_WAP__ENABLED", "false")
    clean_env.chdir(tmp_path)
    for block in doc_blocks("python"):  # the examples run as written
        exec(block, {})
    clean_env.delenv("PHLO_WAP__ENABLED")

    env_local(
        tmp_path,
        doc_blocks("sh")[0].replace(
            "PHLO_STORAGE__SECRET_ACCESS_KEY=...", "PHLO_STORAGE__SECRET_ACCESS_KEY=k"
        ),
    )
    from_env_local = load_project(tmp_path)
    assert from_env_local.profile == "scaled"
    assert from_env_local.postgres_url == "postgresql://bi:secret@localhost:5432/analytics"
    assert from_env_local.settings.storage.secret_access_key.get_secret_value() == "k"


def test_dbts_plugin_opens_the_lakehouse_the_project_names(tmp_path, clean_env):
    """dbt runs in phlo's process: told the project, it resolves the same lakehouse."""
    import duckdb
    import pyarrow as pa

    from phlo.lakehouse import Lakehouse
    from phlo.transforms.duckdb_plugin import Plugin

    write(tmp_path, "lakehouse: data/lake\n")
    lh = Lakehouse.open(tmp_path / "data" / "lake")
    lh.create_namespace("raw")
    table = lh.create_table("raw.events", {"id": pa.int64()})
    table.append(pa.table({"id": pa.array([1, 2, 3], pa.int64())}))
    relations = [{"relation": ["raw", "events"], "table": "raw.events", "copy": True}]
    config = {"lakehouse": str(tmp_path / "elsewhere"), "relations": relations}
    conn = duckdb.connect()
    Plugin("phlo", {**config, "project": str(tmp_path)}).configure_connection(conn)
    assert conn.execute("SELECT sum(id) FROM raw.events").fetchone() == (6,)
    other = duckdb.connect()
    Plugin("phlo", config).configure_connection(other)  # no project: the folder it names
    assert (tmp_path / "elsewhere" / "catalog.db").is_file()
    assert not other.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0]
