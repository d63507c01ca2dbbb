"""Project settings (phlo.yaml): discovery, defaults, and errors that name file and key."""

from __future__ import annotations

import datetime as dt

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
