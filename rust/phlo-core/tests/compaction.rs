//! Small files and many manifests: manifest merging on commit, `rewrite_manifests`, and data
//! file compaction (a `replace` snapshot that keeps every row and conflicts correctly).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::TryStreamExt;
use iceberg::spec::{ManifestFile, ManifestList, ManifestStatus, Operation};
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::iceberg::ScanOptions;

const TABLE: &str = "raw.events";

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("day", DataType::Utf8, true),
    ]))
}

/// Rows `ids`, all on `day`.
fn rows(ids: std::ops::Range<i64>, day: &str) -> Vec<Result<RecordBatch, ArrowError>> {
    let n = ids.end - ids.start;
    vec![Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from_iter_values((0..n).map(|_| day))),
        ],
    )
    .unwrap())]
}

async fn setup(
    properties: &[(&str, &str)],
    partition_by: &[(String, String)],
) -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    let properties: HashMap<String, String> = properties
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    lh.create_table(TABLE, &schema(), partition_by, properties, MAIN)
        .await
        .unwrap();
    (dir, lh)
}

async fn append(lh: &Lakehouse, ids: std::ops::Range<i64>, day: &str) -> i64 {
    lh.append(TABLE, rows(ids, day), MAIN, HashMap::new())
        .await
        .unwrap()
        .snapshot_id
}

/// The manifest list of the table's current snapshot on `main`.
async fn manifests(lh: &Lakehouse) -> Vec<ManifestFile> {
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    let snapshot = table.metadata.current_snapshot().unwrap();
    let bytes = lh
        .file_io()
        .new_input(snapshot.manifest_list())
        .unwrap()
        .read()
        .await
        .unwrap();
    ManifestList::parse_with_version(&bytes, table.metadata.format_version())
        .unwrap()
        .consume_entries()
        .into_iter()
        .collect()
}

/// Every id on `main`, sorted.
async fn ids(lh: &Lakehouse) -> Vec<i64> {
    let plan = lh.scan(TABLE, &ScanOptions::default()).await.unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..col.len()).map(|i| col.value(i)).collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_merge_once_a_commit_would_list_min_count_of_them() {
    let (_dir, lh) = setup(&[("commit.manifest.min-count-to-merge", "4")], &[]).await;
    let mut added_by = Vec::new();
    for i in 0..3 {
        added_by.push(append(&lh, i * 10..i * 10 + 10, "d").await);
    }
    assert_eq!(
        manifests(&lh).await.len(),
        3,
        "below min-count: one manifest per commit"
    );

    let fourth = append(&lh, 30..40, "d").await;
    added_by.push(fourth);
    let merged = manifests(&lh).await;
    assert_eq!(merged.len(), 1, "the fourth commit merges all four");
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    let summary = &table
        .metadata
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(summary["manifests-created"], "1");
    assert_eq!(summary["manifests-replaced"], "3");
    assert_eq!(summary["total-data-files"], "4");

    // Entries keep who added them and when: older files are `existing` with the snapshot id and
    // sequence number of their own commit; the new file is `added` by the merging commit.
    let manifest = merged[0].load_manifest(lh.file_io()).await.unwrap();
    let sequence_of = |id: i64| table.metadata.snapshot_by_id(id).unwrap().sequence_number();
    let mut seen = Vec::new();
    for entry in manifest.entries() {
        let by = entry.snapshot_id().unwrap();
        let expected = if by == fourth {
            ManifestStatus::Added
        } else {
            ManifestStatus::Existing
        };
        assert_eq!(entry.status(), expected);
        assert_eq!(entry.sequence_number(), Some(sequence_of(by)));
        assert_eq!(entry.file_sequence_number, Some(sequence_of(by)));
        seen.push(by);
    }
    seen.sort();
    added_by.sort();
    assert_eq!(seen, added_by);
    assert_eq!(ids(&lh).await, (0..40).collect::<Vec<_>>());

    // The merged manifest is small, so it keeps company with the next commits' manifests
    // until their bin reaches min-count again.
    append(&lh, 40..50, "d").await;
    assert_eq!(manifests(&lh).await.len(), 2);
    append(&lh, 50..60, "d").await;
    append(&lh, 60..70, "d").await;
    assert_eq!(manifests(&lh).await.len(), 1);
    assert_eq!(ids(&lh).await, (0..70).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_follows_the_enabled_and_target_size_properties() {
    // Disabled: never merged.
    let (_dir, lh) = setup(
        &[
            ("commit.manifest.min-count-to-merge", "2"),
            ("commit.manifest-merge.enabled", "false"),
        ],
        &[],
    )
    .await;
    for i in 0..4 {
        append(&lh, i * 10..i * 10 + 10, "d").await;
    }
    assert_eq!(manifests(&lh).await.len(), 4);

    // A target smaller than one manifest: every bin holds one manifest, nothing to merge.
    let (_dir, lh) = setup(
        &[
            ("commit.manifest.min-count-to-merge", "2"),
            ("commit.manifest.target-size-bytes", "100"),
        ],
        &[],
    )
    .await;
    for i in 0..4 {
        append(&lh, i * 10..i * 10 + 10, "d").await;
    }
    assert_eq!(manifests(&lh).await.len(), 4);

    // Defaults (100): 10 commits keep their 10 manifests.
    let (_dir, lh) = setup(&[], &[]).await;
    for i in 0..10 {
        append(&lh, i * 10..i * 10 + 10, "d").await;
    }
    assert_eq!(manifests(&lh).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_merge_property_is_typed_and_changes_nothing() {
    let (_dir, lh) = setup(&[("commit.manifest.min-count-to-merge", "many")], &[]).await;
    let err = lh
        .append(TABLE, rows(0..10, "d"), MAIN, HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("commit.manifest.min-count-to-merge"),
        "{text}"
    );
    assert!(text.contains(TABLE), "{text}");
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    assert!(table.metadata.current_snapshot().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_keeps_files_removed_by_the_commit_as_deleted_entries() {
    let (_dir, lh) = setup(&[("commit.manifest.min-count-to-merge", "3")], &[]).await;
    append(&lh, 0..10, "d").await;
    append(&lh, 10..20, "d").await;
    // A delete of the first file: its manifest is rewritten, then merged with the other.
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    let first = phlo_core::iceberg::commit::live_data_files(lh.file_io(), &table, MAIN)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.record_count() == 10 && ids_of(f).0 == 0)
        .unwrap();
    let change = phlo_core::iceberg::SnapshotChange {
        branch: MAIN.into(),
        removed_files: vec![first.clone()],
        added_files: vec![],
        ..Default::default()
    };
    let outcome =
        phlo_core::iceberg::commit::commit_append(lh.catalog(), lh.file_io(), table, &change)
            .await
            .unwrap();
    let snapshot = outcome.table.metadata.current_snapshot().unwrap().clone();
    assert_eq!(snapshot.summary().operation, Operation::Delete);
    append(&lh, 20..30, "d").await;
    assert_eq!(ids(&lh).await, (10..30).collect::<Vec<_>>());
    // The delete's entry was dropped by the next merge (deleted by an earlier snapshot).
    for manifest in manifests(&lh).await {
        let loaded = manifest.load_manifest(lh.file_io()).await.unwrap();
        assert!(
            loaded
                .entries()
                .iter()
                .all(|e| e.file_path() != first.file_path() || !e.is_alive())
        );
    }
}

/// The (min, max) id of a data file, from its statistics.
fn ids_of(file: &iceberg::spec::DataFile) -> (i64, i64) {
    let bound = |b: &HashMap<i32, iceberg::spec::Datum>| match b[&1].literal() {
        iceberg::spec::PrimitiveLiteral::Long(v) => *v,
        other => panic!("{other:?}"),
    };
    (bound(file.lower_bounds()), bound(file.upper_bounds()))
}
