//! Branch-aware maintenance and time travel by commit, on a real lakehouse folder.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::TryStreamExt;
use iceberg::spec::{SnapshotReference, SnapshotRetention, TableMetadataBuilder};
use phlo_core::Lakehouse;
use phlo_core::catalog::{CommitMeta, MAIN, RefKind};
use phlo_core::lakehouse::AsOf;
use phlo_core::tables::ScanOptions;
use phlo_core::tables::commit::commit_metadata;

use crate::model::upsert;

fn batch(ids: std::ops::Range<i64>) -> Vec<Result<RecordBatch, ArrowError>> {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    vec![Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(ids))],
    )
    .unwrap())]
}

async fn count(lh: &Lakehouse, ref_name: &str, snapshot_id: Option<i64>) -> usize {
    let options = ScanOptions {
        ref_name: Some(ref_name.into()),
        snapshot_id,
        ..Default::default()
    };
    let plan = lh.scan("raw.t", &options).await.unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
        .sum()
}

async fn setup() -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
    lh.create_table("raw.t", &schema, &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    (dir, lh)
}

fn future_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() + 60_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_keeps_what_every_ref_needs_and_deletes_the_rest() {
    let (dir, lh) = setup().await;
    for i in 0..3 {
        lh.append("raw.t", batch(i * 10..i * 10 + 10), MAIN, HashMap::new())
            .await
            .unwrap();
    }
    lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    lh.append("raw.t", batch(100..105), "dev", HashMap::new())
        .await
        .unwrap();
    lh.catalog().create_ref("v1", RefKind::Tag, MAIN).unwrap();
    // main moves on with an overwrite-free history of 5 snapshots.
    for i in 3..5 {
        lh.append("raw.t", batch(i * 10..i * 10 + 10), MAIN, HashMap::new())
            .await
            .unwrap();
    }

    let result = lh.expire_snapshots(future_ms(), 1).await.unwrap();
    // main drops 4 of its 5 snapshots; dev keeps its head and its history back to the fork
    // (dropping the 2 before it); the tag is never rewritten.
    assert_eq!(result.refs_rewritten, vec!["raw.t@dev", "raw.t@main"]);
    assert_eq!(result.snapshots_expired, 6);
    // Expired snapshots share data files with the head: only their manifest lists and the
    // manifests no ref lists any more are deleted, never a data file in use.
    assert!(result.files_deleted > 0);
    assert_eq!(count(&lh, MAIN, None).await, 50);
    assert_eq!(count(&lh, "dev", None).await, 35);
    assert_eq!(count(&lh, "v1", None).await, 30);
    let main = lh.load_table("raw.t", MAIN).await.unwrap();
    assert_eq!(main.metadata.snapshots().count(), 1);
    let dev = lh.load_table("raw.t", "dev").await.unwrap();
    assert_eq!(dev.metadata.snapshots().count(), 2);
    let tag = lh.load_table("raw.t", "v1").await.unwrap();
    assert_eq!(tag.metadata.snapshots().count(), 3);

    // dev still merges into main by rebasing its append: its history back to the fork stayed.
    let merged = lh
        .merge_branch("dev", MAIN, &CommitMeta::default())
        .await
        .unwrap();
    assert_eq!(merged.rebased, vec!["raw.t".to_string()]);
    assert_eq!(count(&lh, MAIN, None).await, 55);

    // A stray file (a crashed write's leftover) is an orphan; everything referenced stays.
    let data = dir.path().join("warehouse/raw.db/t/data");
    std::fs::write(data.join("leftover.parquet"), b"not referenced").unwrap();
    let before = files_under(&dir.path().join("warehouse"));
    let dry = lh.remove_orphan_files(future_ms(), true).await.unwrap();
    assert!(dry.files.iter().any(|f| f.ends_with("leftover.parquet")));
    assert_eq!(files_under(&dir.path().join("warehouse")), before);
    // Recent files are left alone.
    let recent = lh.remove_orphan_files(0, false).await.unwrap();
    assert!(recent.files.is_empty());
    let removed = lh.remove_orphan_files(future_ms(), false).await.unwrap();
    assert_eq!(removed.files, dry.files);
    assert!(!data.join("leftover.parquet").exists());
    for (r, rows) in [(MAIN, 55), ("dev", 35), ("v1", 30)] {
        assert_eq!(count(&lh, r, None).await, rows, "{r}");
    }
    // Nothing left to remove.
    assert!(
        lh.remove_orphan_files(future_ms(), false)
            .await
            .unwrap()
            .files
            .is_empty()
    );
    assert!(lh.expire_snapshots(0, 0).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_by_commit_reads_the_table_right_after_it() {
    let (_dir, lh) = setup().await;
    lh.append("raw.t", batch(0..10), MAIN, HashMap::new())
        .await
        .unwrap();
    let first = lh.catalog().log(Some(MAIN), 1).unwrap().remove(0);
    // Time travel by time resolves milliseconds: the next snapshot must not share the first
    // commit's (a fast machine appends within one).
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    lh.append("raw.t", batch(10..30), MAIN, HashMap::new())
        .await
        .unwrap();
    let (ref_name, snapshot) = lh
        .snapshot_as_of("raw.t", None, &AsOf::Commit(first.commit_id.clone()))
        .await
        .unwrap();
    assert_eq!(ref_name, MAIN);
    assert_eq!(count(&lh, MAIN, snapshot).await, 10);
    // By time: the commit's time reads the same state.
    let (_, by_time) = lh
        .snapshot_as_of("raw.t", Some(MAIN), &AsOf::Time(first.created_at_ms))
        .await
        .unwrap();
    assert_eq!(by_time, snapshot);
    // A commit of another ref, or an unknown commit, is a clear error.
    lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    let err = lh
        .snapshot_as_of("raw.t", Some("dev"), &AsOf::Commit(first.commit_id.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("was made on main"), "{err}");
    let err = lh
        .snapshot_as_of("raw.t", None, &AsOf::Commit("nope".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    // After expiry the old snapshot is gone, and time travel says so.
    lh.expire_snapshots(future_ms(), 1).await.unwrap();
    let err = lh
        .snapshot_as_of("raw.t", None, &AsOf::Commit(first.commit_id))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_created_on_a_branch_appear_on_main_when_it_merges() {
    let (_dir, lh) = setup().await;
    lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
    lh.create_table("raw.new", &schema, &[], HashMap::new(), "dev")
        .await
        .unwrap();
    assert_eq!(
        lh.load_table("raw.new", MAIN).await.unwrap_err().code(),
        "no_such_table"
    );
    lh.append("raw.new", batch(0..3), "dev", HashMap::new())
        .await
        .unwrap();
    let merged = lh
        .merge_branch("dev", MAIN, &CommitMeta::default())
        .await
        .unwrap();
    assert_eq!(merged.added, vec!["raw.new".to_string()]);
    assert!(lh.load_table("raw.new", MAIN).await.is_ok());
    // Purging a table another ref still has is refused; dropping on one ref keeps the other.
    let err = lh.drop_table("raw.new", true, "dev").await.unwrap_err();
    assert!(err.to_string().contains("still on main"), "{err}");
    lh.drop_table("raw.new", false, "dev").await.unwrap();
    assert!(lh.load_table("raw.new", MAIN).await.is_ok());
    assert_eq!(
        lh.load_table("raw.new", "dev").await.unwrap_err().code(),
        "no_such_table"
    );
}

/// Adds a table-level ref to raw.t's metadata on main, as another engine (PyIceberg) would.
async fn set_table_ref(lh: &Lakehouse, name: &str, snapshot_id: i64, retention: SnapshotRetention) {
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let reference = SnapshotReference {
        snapshot_id,
        retention,
    };
    let next = TableMetadataBuilder::new_from_metadata(
        (*table.metadata).clone(),
        Some(table.metadata_location.clone()),
    )
    .set_ref(name, reference)
    .unwrap()
    .build()
    .unwrap()
    .metadata;
    let committed = commit_metadata(lh.catalog(), lh.file_io(), &table, &next, "set ref")
        .await
        .unwrap();
    assert!(committed);
}

/// Snapshot ids of raw.t on main, oldest first.
async fn snapshot_ids(lh: &Lakehouse) -> Vec<i64> {
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let mut snapshots: Vec<_> = table.metadata.snapshots().collect();
    snapshots.sort_by_key(|s| s.sequence_number());
    snapshots.iter().map(|s| s.snapshot_id()).collect()
}

/// Appends `loads` batches of 10 rows to raw.t on main; returns the snapshot ids, oldest first.
async fn append_loads(lh: &Lakehouse, loads: std::ops::Range<i64>) -> Vec<i64> {
    for i in loads {
        lh.append("raw.t", batch(i * 10..i * 10 + 10), MAIN, HashMap::new())
            .await
            .unwrap();
    }
    snapshot_ids(lh).await
}

fn tag(max_ref_age_ms: Option<i64>) -> SnapshotRetention {
    SnapshotRetention::Tag { max_ref_age_ms }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_level_refs_keep_their_snapshots_and_files() {
    let (dir, lh) = setup().await;
    let ids = append_loads(&lh, 0..3).await;
    set_table_ref(&lh, "t1", ids[0], tag(None)).await;
    set_table_ref(
        &lh,
        "b1",
        ids[1],
        SnapshotRetention::branch(None, None, None),
    )
    .await;
    let ids = append_loads(&lh, 3..5).await;
    // A rewrite on main drops files the table-level refs still read.
    lh.merge("raw.t", batch(0..5), &upsert(None)).await.unwrap();
    let head = *snapshot_ids(&lh).await.last().unwrap();

    let result = lh.expire_snapshots(future_ms(), 1).await.unwrap();
    // The head, the tag's snapshot and the branch's head stay; the other 3 go.
    assert_eq!(result.snapshots_expired, 3);
    let mut kept = vec![ids[0], ids[1], head];
    kept.sort_unstable();
    let mut now = snapshot_ids(&lh).await;
    now.sort_unstable();
    assert_eq!(now, kept);
    std::fs::write(
        dir.path().join("warehouse/raw.db/t/data/leftover.parquet"),
        b"x",
    )
    .unwrap();
    let orphans = lh.remove_orphan_files(future_ms(), false).await.unwrap();
    assert_eq!(orphans.files.len(), 1, "{:?}", orphans.files);
    assert_eq!(count(&lh, MAIN, Some(ids[0])).await, 10);
    assert_eq!(count(&lh, MAIN, Some(ids[1])).await, 20);
    assert_eq!(count(&lh, MAIN, None).await, 50);
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    assert_eq!(
        table.metadata.snapshot_for_ref("t1").unwrap().snapshot_id(),
        ids[0]
    );
    assert_eq!(
        table.metadata.snapshot_for_ref("b1").unwrap().snapshot_id(),
        ids[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_settings_keep_more_than_the_arguments_and_age_out_refs() {
    let (_dir, lh) = setup().await;
    let ids = append_loads(&lh, 0..6).await;
    // A table-level branch at the 4th snapshot keeps 3 of its own history.
    set_table_ref(
        &lh,
        "b1",
        ids[3],
        SnapshotRetention::branch(Some(3), None, None),
    )
    .await;
    // A tag past its max-ref-age is removed with its snapshot; one within it stays.
    set_table_ref(&lh, "old", ids[0], tag(Some(1))).await;
    set_table_ref(&lh, "young", ids[0], tag(Some(86_400_000))).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let result = lh.expire_snapshots(future_ms(), 1).await.unwrap();
    assert_eq!(result.refs_expired, vec!["raw.t@main:old"]);
    // main keeps its head; b1 keeps ids[1..=3]; "young" keeps ids[0]: only ids[4] goes.
    assert_eq!(result.snapshots_expired, 1);
    let expected: Vec<i64> = [0, 1, 2, 3, 5].iter().map(|&i| ids[i]).collect();
    assert_eq!(snapshot_ids(&lh).await, expected);
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    assert!(table.metadata.snapshot_for_ref("old").is_none());
    assert!(table.metadata.snapshot_for_ref("young").is_some());
    assert_eq!(count(&lh, MAIN, Some(ids[2])).await, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_properties_raise_the_callers_floor_but_never_lower_it() {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
    let properties = HashMap::from([(
        "history.expire.min-snapshots-to-keep".to_string(),
        "3".to_string(),
    )]);
    lh.create_table("raw.t", &schema, &[], properties, MAIN)
        .await
        .unwrap();
    let ids = append_loads(&lh, 0..6).await;
    // keep_last=4 asks for more than the property: the caller's floor wins.
    assert_eq!(
        lh.expire_snapshots(future_ms(), 4)
            .await
            .unwrap()
            .snapshots_expired,
        2
    );
    assert_eq!(snapshot_ids(&lh).await, ids[2..]);
    // keep_last=1 asks for less: the property keeps 3.
    assert_eq!(
        lh.expire_snapshots(future_ms(), 1)
            .await
            .unwrap()
            .snapshots_expired,
        1
    );
    assert_eq!(snapshot_ids(&lh).await, ids[3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_snapshot_age_keeps_recent_snapshots_a_bad_setting_is_refused() {
    let (_dir, lh) = setup().await;
    let ids = append_loads(&lh, 0..3).await;
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let with = |key: &str, value: &str| {
        TableMetadataBuilder::new_from_metadata(
            (*table.metadata).clone(),
            Some(table.metadata_location.clone()),
        )
        .set_properties(HashMap::from([(key.to_string(), value.to_string())]))
        .unwrap()
        .build()
        .unwrap()
        .metadata
    };
    let day = with("history.expire.max-snapshot-age-ms", "86400000");
    assert!(
        commit_metadata(lh.catalog(), lh.file_io(), &table, &day, "props")
            .await
            .unwrap()
    );
    let result = lh.expire_snapshots(future_ms(), 1).await.unwrap();
    assert_eq!(result.snapshots_expired, 0);
    assert_eq!(snapshot_ids(&lh).await, ids);

    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let bad = TableMetadataBuilder::new_from_metadata(
        (*table.metadata).clone(),
        Some(table.metadata_location.clone()),
    )
    .set_properties(HashMap::from([(
        "history.expire.min-snapshots-to-keep".to_string(),
        "none".to_string(),
    )]))
    .unwrap()
    .build()
    .unwrap()
    .metadata;
    assert!(
        commit_metadata(lh.catalog(), lh.file_io(), &table, &bad, "props")
            .await
            .unwrap()
    );
    let before = lh
        .load_table("raw.t", MAIN)
        .await
        .unwrap()
        .metadata_location;
    let err = lh.expire_snapshots(0, 1).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    let message = err.to_string();
    assert!(
        message.contains("history.expire.min-snapshots-to-keep"),
        "{message}"
    );
    assert!(message.contains("raw.t"), "{message}");
    assert_eq!(
        lh.load_table("raw.t", MAIN)
            .await
            .unwrap()
            .metadata_location,
        before
    );
    assert_eq!(snapshot_ids(&lh).await, ids);
}
