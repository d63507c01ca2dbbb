//! Small files and many manifests: manifest merging on commit, `rewrite_manifests`, and data
//! file compaction (a `replace` snapshot that keeps every row and conflicts correctly).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::TryStreamExt;
use iceberg::spec::{ManifestFile, ManifestList, ManifestStatus, Operation};
use phlo_core::catalog::{MAIN, RefKind};
use phlo_core::compact::{CompactOptions, CompactResult};
use phlo_core::tables::commit::{commit_append, live_data_files};
use phlo_core::tables::discard::Uncommitted;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions, SnapshotChange};
use phlo_core::{Error, Lakehouse};

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
    let (dir, lh) = setup(&[("commit.manifest.min-count-to-merge", "many")], &[]).await;
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
    // Nothing left behind: the first metadata file only, no manifests, no data files.
    let files = |sub: &str| {
        std::fs::read_dir(dir.path().join("warehouse/raw.db/events").join(sub)).map_or(0, |d| {
            d.filter(|e| e.as_ref().unwrap().path().is_file()).count()
        })
    };
    assert_eq!((files("metadata"), files("data")), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_keeps_files_removed_by_the_commit_as_deleted_entries() {
    let (_dir, lh) = setup(&[("commit.manifest.min-count-to-merge", "3")], &[]).await;
    append(&lh, 0..10, "d").await;
    append(&lh, 10..20, "d").await;
    // A delete of the first file: its manifest is rewritten, then merged with the other.
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    let first = live_data_files(lh.file_io(), &table, MAIN)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.record_count() == 10 && ids_of(f).0 == 0)
        .unwrap();
    let change = SnapshotChange {
        branch: MAIN.into(),
        removed_files: vec![first.clone()],
        added_files: vec![],
        ..Default::default()
    };
    let outcome = commit_append(lh.catalog(), lh.file_io(), table, &change)
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

fn by_day() -> Vec<(String, String)> {
    vec![("day".to_string(), "identity".to_string())]
}

fn options(target: u64) -> CompactOptions {
    CompactOptions {
        target_file_size: Some(target),
        filters: vec![],
        properties: HashMap::new(),
    }
}

/// Ids of one day in the order a scan returns them (one file: the file's order).
async fn ids_in_order(lh: &Lakehouse, day: &str) -> Vec<i64> {
    let scan = ScanOptions {
        filters: vec![Filter {
            column: "day".into(),
            op: FilterOp::Eq,
            values: vec![Literal::String(day.into())],
        }],
        ..Default::default()
    };
    let plan = lh.scan(TABLE, &scan).await.unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..col.len()).map(|i| col.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

async fn live(lh: &Lakehouse) -> Vec<iceberg::spec::DataFile> {
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    live_data_files(lh.file_io(), &table, MAIN).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_rewrites_small_files_per_partition_as_one_replace_snapshot() {
    let (_dir, lh) = setup(&[], &by_day()).await;
    for i in 0..5 {
        append(&lh, i * 10..i * 10 + 10, "a").await;
    }
    append(&lh, 100..110, "b").await;
    let before = lh.load_table(TABLE, MAIN).await.unwrap();
    let before_summary = before
        .metadata
        .current_snapshot()
        .unwrap()
        .summary()
        .clone();
    let b_file: Vec<String> = live(&lh)
        .await
        .iter()
        .filter(|f| ids_of(f).0 == 100)
        .map(|f| f.file_path().to_string())
        .collect();

    let result = lh.compact(TABLE, MAIN, &options(1 << 20)).await.unwrap();
    assert_eq!(result.files_rewritten, 5, "{result:?}");
    assert_eq!(result.files_added, 1, "{result:?}");
    assert_eq!(result.rows, 50);
    assert!(result.bytes_before > result.bytes_after, "{result:?}");

    let after = lh.load_table(TABLE, MAIN).await.unwrap();
    let snapshot = after.metadata.current_snapshot().unwrap();
    assert_eq!(Some(snapshot.snapshot_id()), result.snapshot_id);
    assert_eq!(snapshot.summary().operation, Operation::Replace);
    let summary = &snapshot.summary().additional_properties;
    assert_eq!(summary["added-data-files"], "1");
    assert_eq!(summary["deleted-data-files"], "5");
    assert_eq!(summary["total-data-files"], "2");
    assert_eq!(
        summary["total-records"],
        before_summary.additional_properties["total-records"]
    );
    // Rows of day a keep their load order in the one new file; day b's single file stays.
    assert_eq!(ids_in_order(&lh, "a").await, (0..50).collect::<Vec<_>>());
    let files = live(&lh).await;
    assert_eq!(files.len(), 2);
    assert!(files.iter().any(|f| f.file_path() == b_file[0]));
    assert_eq!(ids(&lh).await, (0..50).chain(100..110).collect::<Vec<_>>());

    // Nothing left to compact: no new snapshot.
    let again = lh.compact(TABLE, MAIN, &options(1 << 20)).await.unwrap();
    assert_eq!(again, CompactResult::default());
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    assert_eq!(table.metadata.snapshots().count(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_skips_large_files_and_cuts_runs_at_the_target_size() {
    let (_dir, lh) = setup(&[], &[]).await;
    for i in 0..6 {
        append(&lh, i * 10..i * 10 + 10, "a").await;
    }
    let size = live(&lh).await[0].file_size_in_bytes();
    // Runs of at most two files (a third would pass the target); files are below 3/4 of it.
    let result = lh
        .compact(TABLE, MAIN, &options(size * 2 + 1))
        .await
        .unwrap();
    assert_eq!(result.files_rewritten, 6, "{result:?}");
    assert_eq!(result.files_added, 3, "{result:?}");
    assert_eq!(ids(&lh).await, (0..60).collect::<Vec<_>>());
    // A target where every file counts as large: nothing to do.
    let result = lh.compact(TABLE, MAIN, &options(size)).await.unwrap();
    assert_eq!(result.snapshot_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_without_a_target_aims_at_the_tables_target_file_size() {
    let (_dir, lh) = setup(&[], &[]).await;
    for i in 0..6 {
        append(&lh, i * 10..i * 10 + 10, "a").await;
    }
    let size = live(&lh).await[0].file_size_in_bytes();
    let without_target = CompactOptions {
        target_file_size: None,
        ..options(0)
    };
    // Every file is at the table's target: nothing is small.
    let property = "write.target-file-size-bytes".to_string();
    lh.set_properties(TABLE, MAIN, &[(property.clone(), Some(size.to_string()))])
        .await
        .unwrap();
    let result = lh.compact(TABLE, MAIN, &without_target).await.unwrap();
    assert_eq!(result.snapshot_id, None, "{result:?}");
    // Room for two files a run, as with that target given.
    let two = (size * 2 + 1).to_string();
    lh.set_properties(TABLE, MAIN, &[(property.clone(), Some(two))])
        .await
        .unwrap();
    let result = lh.compact(TABLE, MAIN, &without_target).await.unwrap();
    assert_eq!(
        (result.files_rewritten, result.files_added),
        (6, 3),
        "{result:?}"
    );
    assert_eq!(ids(&lh).await, (0..60).collect::<Vec<_>>());
    // Not a byte count: refused when set, naming the property.
    let err = (lh
        .set_properties(TABLE, MAIN, &[(property, Some("0".into()))])
        .await)
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(
        err.to_string().contains("write.target-file-size-bytes"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_with_a_filter_only_touches_matching_partitions() {
    let (_dir, lh) = setup(&[], &by_day()).await;
    for i in 0..3 {
        append(&lh, i * 10..i * 10 + 10, "a").await;
        append(&lh, 100 + i * 10..110 + i * 10, "b").await;
    }
    let mut opts = options(1 << 20);
    opts.filters = vec![Filter {
        column: "day".into(),
        op: FilterOp::Eq,
        values: vec![Literal::String("b".into())],
    }];
    let result = lh.compact(TABLE, MAIN, &opts).await.unwrap();
    assert_eq!((result.files_rewritten, result.files_added), (3, 1));
    assert_eq!(live(&lh).await.len(), 4);
    assert_eq!(ids_in_order(&lh, "b").await, (100..130).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_refuses_when_a_concurrent_commit_removed_a_file_it_rewrites() {
    let (_dir, lh) = setup(&[], &[]).await;
    for i in 0..4 {
        append(&lh, i * 10..i * 10 + 10, "a").await;
    }
    // The compaction plans on this state; meanwhile a delete removes one of its files.
    let planned_on = lh.load_table(TABLE, MAIN).await.unwrap();
    let victim = live(&lh)
        .await
        .into_iter()
        .find(|f| ids_of(f).0 == 10)
        .unwrap();
    let delete = SnapshotChange {
        branch: MAIN.into(),
        removed_files: vec![victim],
        ..Default::default()
    };
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    commit_append(lh.catalog(), lh.file_io(), table, &delete)
        .await
        .unwrap();
    let head = lh.load_table(TABLE, MAIN).await.unwrap().metadata_location;

    let written = Uncommitted::new(lh.file_io());
    let err = phlo_core::compact::compact(
        lh.catalog(),
        lh.file_io(),
        planned_on,
        &options(1 << 20),
        &written,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::CommitConflict { .. }), "{err}");
    assert!(err.to_string().contains("no longer in the table"), "{err}");
    assert_eq!(
        written.files().paths().len(),
        1,
        "the compacted file was written, then refused"
    );
    assert_eq!(
        lh.load_table(TABLE, MAIN).await.unwrap().metadata_location,
        head
    );
    let mut expected: Vec<i64> = (0..10).chain(20..40).collect();
    expected.sort();
    assert_eq!(ids(&lh).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_commits_over_a_concurrent_append() {
    let (_dir, lh) = setup(&[], &[]).await;
    for i in 0..4 {
        append(&lh, i * 10..i * 10 + 10, "a").await;
    }
    let planned_on = lh.load_table(TABLE, MAIN).await.unwrap();
    append(&lh, 40..50, "a").await;
    let written = Uncommitted::new(lh.file_io());
    let result = phlo_core::compact::compact(
        lh.catalog(),
        lh.file_io(),
        planned_on,
        &options(1 << 20),
        &written,
    )
    .await
    .unwrap();
    assert_eq!(result.commit_retries, 1);
    assert_eq!(result.files_rewritten, 4);
    assert_eq!(ids(&lh).await, (0..50).collect::<Vec<_>>());
    assert_eq!(
        live(&lh).await.len(),
        2,
        "the compacted file and the concurrent append"
    );
}

/// Another engine's expiry (PyIceberg's) cut `main`'s history: every snapshot but the head is
/// gone, and so is the head's parent id.
async fn cut_history(lh: &Lakehouse) {
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    let head = table.metadata.current_snapshot_id().unwrap();
    let old = table.metadata_location.clone();
    let path = old.strip_prefix("file://").unwrap();
    let mut metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let snapshots = metadata["snapshots"].as_array_mut().unwrap();
    snapshots.retain(|s| s["snapshot-id"] == head);
    snapshots[0]
        .as_object_mut()
        .unwrap()
        .remove("parent-snapshot-id");
    let log = metadata["snapshot-log"].as_array_mut().unwrap();
    log.retain(|e| e["snapshot-id"] == head);
    let folder = old.rsplit_once('/').unwrap().0;
    let new = format!("{folder}/00099-{}.metadata.json", uuid::Uuid::new_v4());
    std::fs::write(new.strip_prefix("file://").unwrap(), metadata.to_string()).unwrap();
    let ident = phlo_core::catalog::TableIdent::parse(TABLE).unwrap();
    assert!(
        lh.catalog()
            .swap_metadata_location_on(MAIN, &ident, &old, &new, "expire", &Default::default())
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_lands_over_a_history_another_engine_cut() {
    let (_dir, lh) = setup(&[], &[]).await;
    append(&lh, 0..10, "a").await;
    // A data file of its own, written on a branch: what the held append commits.
    lh.catalog()
        .create_ref("side", RefKind::Branch, MAIN)
        .unwrap();
    lh.append(TABLE, rows(100..110, "a"), "side", HashMap::new())
        .await
        .unwrap();
    let on_main = live(&lh).await;
    let side = lh.load_table(TABLE, "side").await.unwrap();
    let [file]: [_; 1] = (live_data_files(lh.file_io(), &side, MAIN).await.unwrap())
        .into_iter()
        .filter(|f| !on_main.contains(f))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let base = lh.load_table(TABLE, MAIN).await.unwrap();
    append(&lh, 10..20, "a").await;
    cut_history(&lh).await;
    let change = SnapshotChange {
        branch: MAIN.into(),
        added_files: vec![file],
        ..Default::default()
    };
    let outcome = commit_append(lh.catalog(), lh.file_io(), base, &change)
        .await
        .unwrap();
    assert_eq!(outcome.retries, 1);
    let expected: Vec<i64> = (0..20).chain(100..110).collect();
    assert_eq!(ids(&lh).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_manifest_rewrites_are_refused_on_a_tag_and_bad_targets() {
    let (dir, lh) = setup(&[], &[]).await;
    for i in 0..3 {
        append(&lh, i * 10..i * 10 + 10, "a").await;
    }
    lh.catalog().create_ref("v1", RefKind::Tag, MAIN).unwrap();
    let files = std::fs::read_dir(dir.path().join("warehouse/raw.db/events/data"))
        .unwrap()
        .count();
    let err = lh
        .compact(TABLE, "v1", &options(1 << 20))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("v1 is a tag"), "{err}");
    let err = lh
        .rewrite_manifests(TABLE, "v1", HashMap::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("v1 is a tag"), "{err}");
    let err = lh.compact(TABLE, MAIN, &options(0)).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("target_file_size"), "{err}");
    let after = std::fs::read_dir(dir.path().join("warehouse/raw.db/events/data"))
        .unwrap()
        .count();
    assert_eq!(files, after, "nothing written");
    assert_eq!(
        lh.load_table(TABLE, MAIN)
            .await
            .unwrap()
            .metadata
            .snapshots()
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_manifests_regroups_entries_by_partition_keeping_their_history() {
    let (_dir, lh) = setup(&[("commit.manifest-merge.enabled", "false")], &by_day()).await;
    let mut added_by = HashMap::new();
    for i in 0..6 {
        let day = ["a", "b"][i as usize % 2];
        added_by.insert(i * 10, append(&lh, i * 10..i * 10 + 10, day).await);
    }
    assert_eq!(manifests(&lh).await.len(), 6);
    let result = lh
        .rewrite_manifests(TABLE, MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!((result.manifests_before, result.manifests_after), (6, 1));
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    let snapshot = table.metadata.current_snapshot().unwrap();
    assert_eq!(Some(snapshot.snapshot_id()), result.snapshot_id);
    assert_eq!(snapshot.summary().operation, Operation::Replace);
    assert_eq!(
        snapshot.summary().additional_properties["total-records"],
        "60"
    );
    let list = manifests(&lh).await;
    let manifest = list[0].load_manifest(lh.file_io()).await.unwrap();
    let days: Vec<String> = manifest
        .entries()
        .iter()
        .map(|e| format!("{:?}", e.data_file().partition()))
        .collect();
    let mut sorted = days.clone();
    sorted.sort();
    assert_eq!(days, sorted, "clustered by partition");
    for entry in manifest.entries() {
        assert_eq!(entry.status(), ManifestStatus::Existing);
        let by = added_by[&ids_of(entry.data_file()).0];
        assert_eq!(entry.snapshot_id(), Some(by));
        let sequence = table.metadata.snapshot_by_id(by).unwrap().sequence_number();
        assert_eq!(entry.sequence_number(), Some(sequence));
    }
    assert_eq!(ids(&lh).await, (0..60).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_listing_only_files_removed_earlier_are_dropped_by_the_next_commit() {
    let (_dir, lh) = setup(&[], &[]).await;
    for i in 0..4 {
        append(&lh, i * 10..i * 10 + 10, "a").await;
    }
    lh.compact(TABLE, MAIN, &options(1 << 20)).await.unwrap();
    // The compaction's own list still says which files it removed (four rewritten manifests
    // with one `deleted` entry each, and its new file)...
    assert_eq!(manifests(&lh).await.len(), 5);
    // ...the next commit carries only manifests with live files.
    append(&lh, 40..50, "a").await;
    let list = manifests(&lh).await;
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .all(|m| m.has_added_files() || m.has_existing_files())
    );
    assert_eq!(ids(&lh).await, (0..50).collect::<Vec<_>>());
}
