"""Publishing lakehouse tables to a real PostgreSQL (started by the `postgres_server` fixture)."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import traceback

import psycopg
import pyarrow as pa
import pytest

import phlo
from phlo.errors import ConfigError, InputError, PostgresConnectionError, PublishError
from phlo.publishing import publish_marts_to_postgres


def rows_of(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as con:
        return sorted(con.execute(query).fetchall())


def activity(start: int, n: int, version: int = 0) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "user_name": [f"u{i % 7}" for i in range(start, start + n)],
            "score": pa.array([i * 0.25 + version for i in range(start, start + n)], pa.float64()),
        }
    )


@pytest.fixture
def mart(lh: phlo.Lakehouse) -> phlo.Table:
    lh.create_namespace("marts")
    table = lh.create_table("marts.mrt_activity", activity(0, 1).schema)
    table.append(activity(0, 100))
    return table


def test_types_round_trip_exactly(lh, postgres_url):
    utc = dt.UTC
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "small": pa.array([-(2**31), None, 2**31 - 1], pa.int32()),
            "flag": [True, None, False],
            "ratio": pa.array([0.1, float("inf"), -1e-300], pa.float64()),
            "real": pa.array([1.5, None, -0.25], pa.float32()),
            "price": pa.array(
                [decimal.Decimal("12345678.123"), None, decimal.Decimal("-0.001")],
                pa.decimal128(11, 3),
            ),
            "name": ["a'b\"c", None, ""],
            "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1970, 1, 1)]),
            "at": pa.array(
                [
                    dt.datetime(2024, 1, 1, 12, 30, 0, 123456, tzinfo=utc),
                    None,
                    dt.datetime(1999, 12, 31, tzinfo=utc),
                ],
                pa.timestamp("us", "UTC"),
            ),
            "local": pa.array(
                [dt.datetime(2024, 1, 1, 1, 2, 3, 4), None, None], pa.timestamp("us")
            ),
            "attrs": pa.array(
                [{"k": "v", "n": 1}, None, {"k": None, "n": 2}],
                pa.struct([("k", pa.string()), ("n", pa.int64())]),
            ),
            "tags": pa.array([["x", "y"], [], None], pa.list_(pa.string())),
        }
    )
    lh.create_namespace("marts")
    lh.create_table("marts.typed", data.schema).append(data)
    publish_marts_to_postgres(None, {"typed": "marts.typed"}, lakehouse=lh, connection=postgres_url)
    types = rows_of(
        postgres_url,
        "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
        "JOIN pg_attribute ON attrelid = 'marts.typed'::regclass AND attname = column_name "
        "WHERE table_schema = 'marts' AND table_name = 'typed'",
    )
    assert dict(types) == {
        "id": "bigint",
        "small": "integer",
        "flag": "boolean",
        "ratio": "double precision",
        "real": "real",
        "price": "numeric(11,3)",
        "name": "text",
        "day": "date",
        "at": "timestamp with time zone",
        "local": "timestamp without time zone",
        "attrs": "jsonb",
        "tags": "jsonb",
    }
    names = data.column_names
    got = rows_of(postgres_url, f"SELECT {', '.join(names)} FROM marts.typed")
    expected = sorted(tuple(row[n] for n in names) for row in data.to_pylist())
    assert got == expected


def test_readers_see_the_old_or_the_new_table_never_an_empty_one(lh, mart, postgres_url):
    publish_marts_to_postgres(
        None, {"activity": "marts.mrt_activity"}, lakehouse=lh, connection=postgres_url
    )
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute("CREATE VIEW marts.top AS SELECT * FROM marts.activity WHERE score > 10")
    old = (100, sum(r["score"] for r in activity(0, 100).to_pylist()))
    mart.append(activity(100, 200_000))
    new = (200_100, old[1] + sum(r["score"] for r in activity(100, 200_000).to_pylist()))
    seen: list[object] = []
    done = threading.Event()

    def poll() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as con:
            while not done.is_set():
                try:
                    seen.append(
                        con.execute("SELECT count(*), sum(score) FROM marts.activity").fetchone()
                    )
                except psycopg.Error as exc:
                    seen.append(exc)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        result = publish_marts_to_postgres(
            None, {"activity": "marts.mrt_activity"}, lakehouse=lh, connection=postgres_url
        )["activity"]
    finally:
        done.set()
        reader.join()
    assert result.rows == new[0] and result.mode == "full"
    assert seen and all(s in (old, new) for s in seen), {repr(s) for s in seen} - {old, new}
    assert seen[-1] == new
    # The view on the table was created again over the new one.
    assert rows_of(postgres_url, "SELECT count(*) FROM marts.top") == [
        (sum(1 for r in range(200_100) if r * 0.25 > 10),)
    ]


def test_incremental_publish_sends_only_changed_rows(lh, mart, postgres_url):
    def publish() -> phlo.publishing.PublishResult:
        return publish_marts_to_postgres(
            None,
            {"activity": "marts.mrt_activity"},
            lakehouse=lh,
            connection=postgres_url,
            primary_keys={"activity": "id"},
            incremental=True,
        )["activity"]

    first = publish()
    assert (first.mode, first.reason, first.rows) == ("full", "first publish", 100)
    model = {r["id"]: r for r in activity(0, 100).to_pylist()}
    with psycopg.connect(postgres_url) as con:
        before = dict(con.execute("SELECT id, xmin::text FROM marts.activity").fetchall())
    # Upsert 3 rows (2 changed, 1 identical), add 2, delete 1.
    batch = pa.concat_tables([activity(10, 2, version=100), activity(20, 1), activity(100, 2)])
    mart.merge(batch, "id")
    mart.delete(("id", "=", 50))
    model.update({r["id"]: r for r in batch.to_pylist()})
    del model[50]
    second = publish()
    assert (second.mode, second.rows, second.rows_deleted) == ("incremental", 4, 1)
    got = rows_of(postgres_url, "SELECT id, user_name, score FROM marts.activity")
    assert got == sorted(tuple(r.values()) for r in model.values())
    with psycopg.connect(postgres_url) as con:
        after = dict(con.execute("SELECT id, xmin::text FROM marts.activity").fetchall())
    rewritten = {i for i in after if before.get(i) != after[i]}
    assert rewritten == {10, 11, 100, 101}
    assert rows_of(
        postgres_url, "SELECT table_name, source_table, snapshot_id FROM marts._phlo_publications"
    ) == [("activity", "marts.mrt_activity", mart.current_snapshot_id)]
    third = publish()
    assert (third.mode, third.rows, third.rows_deleted) == ("incremental", 0, 0)


def test_primary_key_and_indexes_are_created(lh, mart, postgres_url):
    publish_marts_to_postgres(
        None,
        {"activity": "marts.mrt_activity"},
        lakehouse=lh,
        connection=postgres_url,
        primary_keys={"activity": "id"},
        indexes={"activity": ["user_name", ("user_name", "score")]},
    )
    for _ in range(2):  # a second publish swaps a table with the same names in
        publish_marts_to_postgres(
            None,
            {"activity": "marts.mrt_activity"},
            lakehouse=lh,
            connection=postgres_url,
            primary_keys={"activity": "id"},
            indexes={"activity": ["user_name", ("user_name", "score")]},
        )
    assert rows_of(
        postgres_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'activity'"
    ) == [
        ("activity_pkey",),
        ("activity_user_name_idx",),
        ("activity_user_name_score_idx",),
    ]


def test_a_failed_publish_leaves_the_table_unchanged(lh, mart, postgres_url):
    publish_marts_to_postgres(
        None, {"activity": "marts.mrt_activity"}, lakehouse=lh, connection=postgres_url
    )
    mart.append(activity(0, 1))  # a duplicate id: the primary key refuses it
    with pytest.raises(
        PublishError, match=r"marts\.mrt_activity to marts\.activity failed"
    ) as info:
        publish_marts_to_postgres(
            None,
            {"activity": "marts.mrt_activity"},
            lakehouse=lh,
            connection=postgres_url,
            primary_keys={"activity": "id"},
        )
    assert "Key (id)=(0) is duplicated" in str(info.value)
    assert rows_of(postgres_url, "SELECT count(*) FROM marts.activity") == [(100,)]


def test_a_bad_connection_is_a_clear_error_without_the_password(lh, mart, postgres_url):
    url = "postgresql://phlo:s3cr3t-pw@127.0.0.1:1/analytics"
    with pytest.raises(PostgresConnectionError, match=r"127\.0\.0\.1") as info:
        publish_marts_to_postgres(
            None, {"activity": "marts.mrt_activity"}, lakehouse=lh, connection=url
        )
    text = "".join(traceback.format_exception(info.value))
    assert "s3cr3t-pw" not in text and "phlo:***@127.0.0.1:1/analytics" in text
    missing_db = postgres_url.rsplit("/", 1)[0].replace("phlo@", "phlo:s3cr3t-pw@") + "/nope"
    with pytest.raises(PostgresConnectionError, match="nope") as info:
        publish_marts_to_postgres(
            None, {"activity": "marts.mrt_activity"}, lakehouse=lh, connection=missing_db
        )
    assert "s3cr3t-pw" not in "".join(traceback.format_exception(info.value))


def test_the_connection_comes_from_the_environment_or_phlo_yaml(
    lh, mart, postgres_url, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PHLO_POSTGRES_URL", raising=False)
    publish = {"activity": "marts.mrt_activity"}
    with pytest.raises(ConfigError, match="PHLO_POSTGRES_URL"):
        publish_marts_to_postgres(None, publish, lakehouse=lh)
    (tmp_path / "phlo.yaml").write_text(f"postgres:\n  url: {postgres_url}\n")
    assert publish_marts_to_postgres(None, publish, lakehouse=lh)["activity"].rows == 100
    # The environment wins over the file.
    (tmp_path / "phlo.yaml").write_text("postgres:\n  url: postgresql://nobody@127.0.0.1:1/x\n")
    monkeypatch.setenv("PHLO_POSTGRES_URL", postgres_url)
    assert publish_marts_to_postgres(None, publish, lakehouse=lh)["activity"].rows == 100
    (tmp_path / "phlo.yaml").write_text("postgres:\n  uri: x\n")
    monkeypatch.delenv("PHLO_POSTGRES_URL")
    with pytest.raises(ConfigError, match=r"postgres\.uri \(did you mean url\?\)"):
        publish_marts_to_postgres(None, publish, lakehouse=lh)


def test_incremental_needs_a_key(lh, mart, postgres_url):
    with pytest.raises(InputError, match="primary_key"):
        publish_marts_to_postgres(
            None,
            {"activity": "marts.mrt_activity"},
            lakehouse=lh,
            connection=postgres_url,
            incremental=True,
        )


def test_in_a_dagster_asset_the_stats_become_materialization_metadata(lh, mart, postgres_url):
    import dagster as dg

    @dg.asset
    def publish_activity(context) -> None:
        publish_marts_to_postgres(
            context,
            {"activity": "marts.mrt_activity"},
            data_source="events",
            lakehouse=lh,
            connection=postgres_url,
        )

    with dg.instance_for_test() as instance:
        result = dg.materialize([publish_activity], instance=instance)
    (materialization,) = result.asset_materializations_for_node("publish_activity")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["dagster/row_count"] == 100
    assert metadata["activity.table"] == "marts.activity"
    assert metadata["activity.snapshot_id"] == mart.current_snapshot_id
    assert metadata["activity.bytes"] > 0
    assert rows_of(postgres_url, "SELECT data_source FROM marts._phlo_publications") == [
        ("events",)
    ]


def test_missing_server_binaries_are_named_with_the_fix():
    from postgres_server import ServerError, _binary

    with pytest.raises(ServerError, match=r"initdb-nowhere not found.*apt-get install postgresql"):
        _binary("initdb-nowhere")


def test_an_empty_table_publishes_its_columns(lh, postgres_url):
    lh.create_namespace("marts")
    lh.create_table("marts.empty", {"id": pa.int64(), "note": pa.string()})
    result = publish_marts_to_postgres(
        None, {"empty": "marts.empty"}, lakehouse=lh, connection=postgres_url
    )["empty"]
    assert (result.rows, result.snapshot_id) == (0, None)
    assert rows_of(postgres_url, "SELECT count(*) FROM marts.empty") == [(0,)]
