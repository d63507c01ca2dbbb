//! Every kind of local commit makes the files it wrote durable before the catalog points at
//! them. A power loss cannot be staged here, so the storage logs what it created and synced and
//! the catalog logs each pointer it moves ([`log`]); for every metadata file a commit points
//! at, each file it reaches that the operation created must have been synced, and its name
//! (and that of every folder created for it) synced into its folder, between its creation and
//! the pointer move.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use iceberg::spec::{DataContentType, TableMetadata};

use super::log::{self, Event};
use super::{Pending, local_path};
use crate::Lakehouse;
use crate::catalog::{MAIN, RefKind, ref_copies};
use crate::compact::CompactOptions;
use crate::merge::{MergeOptions, MergeStrategy, WriteMode};
use crate::tables::commit::load_manifest_list;
use crate::tables::{Filter, FilterOp, Literal, read_bytes, read_manifest};

const TABLE: &str = "raw.events";

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("p", DataType::Utf8, false),
        Field::new("v", DataType::Utf8, true),
    ]))
}

/// Rows `ids`, each in partition `p<id % 3>`.
fn rows(ids: std::ops::Range<i64>, v: &str) -> Vec<Result<RecordBatch, ArrowError>> {
    let ids: Vec<i64> = ids.collect();
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("p{}", i % 3)),
            )),
            Arc::new(StringArray::from_iter_values(ids.iter().map(|_| v))),
        ],
    )
    .unwrap();
    vec![Ok(batch)]
}

/// A lakehouse in a fresh folder with namespace `raw`.
fn lakehouse() -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    (dir, lh)
}

async fn create(lh: &Lakehouse, partitioned: bool) {
    let by = [("p".to_string(), "identity".to_string())];
    let partition_by: &[(String, String)] = if partitioned { &by } else { &[] };
    lh.create_table(TABLE, &schema(), partition_by, HashMap::new(), MAIN)
        .await
        .unwrap();
}

fn merge_options(mode: WriteMode) -> MergeOptions {
    MergeOptions {
        unique_key: vec!["id".into()],
        strategy: MergeStrategy::Merge,
        dedupe: None,
        order_by: None,
        ref_name: MAIN.into(),
        properties: HashMap::new(),
        write_mode: Some(mode),
    }
}

/// The new files the commits of one operation made reachable, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
struct Reached {
    metadata: usize,
    manifest_lists: usize,
    manifests: usize,
    data: usize,
    deletes: usize,
}

/// What existed under a lakehouse's folder before an operation, and where the log stood.
struct Watch {
    root: PathBuf,
    before: HashSet<PathBuf>,
    start: usize,
}

impl Watch {
    fn start(lh: &Lakehouse) -> Self {
        let root = lh.root().unwrap().to_path_buf();
        let mut before = HashSet::new();
        walk(&root, &mut before);
        Self {
            root,
            before,
            start: log::events().len(),
        }
    }

    /// Checks every pointer the operation moved (at least one) and counts the new files the
    /// commits reached.
    async fn check(self, lh: &Lakehouse) -> Reached {
        let under = |p: &Path| p.starts_with(&self.root);
        let events: Vec<Event> = log::events()[self.start..]
            .iter()
            .filter(|e| match e {
                Event::Created(p) | Event::FileSynced(p) | Event::DirSynced(p) => under(p),
                Event::PointerMoved(l) => under(&local_path(l)),
            })
            .cloned()
            .collect();
        let mut reached = Reached::default();
        let mut moves = 0;
        for (at, event) in events.iter().enumerate() {
            let Event::PointerMoved(location) = event else {
                continue;
            };
            moves += 1;
            for (file, kind) in reachable(lh, location).await {
                let path = local_path(&file);
                if self.before.contains(&path) {
                    continue;
                }
                let new_dirs = path
                    .ancestors()
                    .skip(1)
                    .take_while(|d| !self.before.contains(*d) && d.starts_with(&self.root));
                if let Err(e) = durable_before(&events, &path, new_dirs, at) {
                    panic!("{file} (reached from {location}): {e}\nevents: {events:#?}");
                }
                *match kind {
                    Kind::Metadata => &mut reached.metadata,
                    Kind::ManifestList => &mut reached.manifest_lists,
                    Kind::Manifest => &mut reached.manifests,
                    Kind::Data => &mut reached.data,
                    Kind::Deletes => &mut reached.deletes,
                } += 1;
            }
        }
        assert!(moves > 0, "no pointer moved: {events:#?}");
        reached
    }
}

/// Every file and folder under `dir`.
fn walk(dir: &Path, found: &mut HashSet<PathBuf>) {
    found.insert(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.file_type().unwrap().is_dir() {
            true => walk(&path, found),
            false => {
                found.insert(path);
            }
        }
    }
}

/// Whether `file` (created as a new entry, as were the folders `new_dirs` above it) was
/// synced, and each of their names synced into its folder, after it was created and before
/// `events[pointer]` moved a pointer.
fn durable_before<'a>(
    events: &[Event],
    file: &'a Path,
    new_dirs: impl Iterator<Item = &'a Path>,
    pointer: usize,
) -> Result<(), String> {
    let before = &events[..pointer];
    let created = |path: &Path| {
        before
            .iter()
            .rposition(|e| *e == Event::Created(path.to_path_buf()))
            .ok_or_else(|| {
                format!(
                    "{} was not created before the pointer moved",
                    path.display()
                )
            })
    };
    let after = |from: usize, event: Event| before[from..].contains(&event);
    let at = created(file)?;
    if !after(at, Event::FileSynced(file.to_path_buf())) {
        return Err("not synced between its creation and the pointer move".into());
    }
    for path in std::iter::once(file).chain(new_dirs) {
        let at = created(path)?;
        let dir = path.parent().unwrap().to_path_buf();
        if !after(at, Event::DirSynced(dir.clone())) {
            return Err(format!(
                "the entry of {} was not synced into {} before the pointer moved",
                path.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

enum Kind {
    Metadata,
    ManifestList,
    Manifest,
    Data,
    Deletes,
}

/// Every file metadata file `location` reaches: itself, and each snapshot's manifest list,
/// manifests, data and delete files.
async fn reachable(lh: &Lakehouse, location: &str) -> Vec<(String, Kind)> {
    let io = lh.file_io();
    let bytes = read_bytes(io, location).await.unwrap();
    let metadata: TableMetadata = serde_json::from_slice(&bytes).unwrap();
    let mut files = vec![(location.to_string(), Kind::Metadata)];
    for snapshot in metadata.snapshots() {
        let list = snapshot.manifest_list();
        files.push((list.to_string(), Kind::ManifestList));
        for manifest in load_manifest_list(io, metadata.format_version(), list)
            .await
            .unwrap()
        {
            files.push((manifest.manifest_path.clone(), Kind::Manifest));
            let read = read_manifest(io, &manifest, &metadata).await.unwrap();
            for entry in read.entries() {
                let kind = match entry.data_file().content_type() {
                    DataContentType::Data => Kind::Data,
                    _ => Kind::Deletes,
                };
                files.push((entry.file_path().to_string(), kind));
            }
        }
    }
    files
}

#[tokio::test]
async fn creating_a_table_and_appending_to_new_partitions() {
    let (_dir, lh) = lakehouse();
    let watch = Watch::start(&lh);
    create(&lh, true).await;
    let created = watch.check(&lh).await;
    assert_eq!(
        created,
        Reached {
            metadata: 1,
            ..Reached::default()
        }
    );
    let watch = Watch::start(&lh);
    lh.append(TABLE, rows(0..30, "a"), MAIN, HashMap::new())
        .await
        .unwrap();
    let appended = watch.check(&lh).await;
    // One file per partition, each in a folder of its own created by this append.
    assert_eq!(
        (appended.data, appended.manifest_lists, appended.metadata),
        (3, 1, 1)
    );
    assert!(appended.manifests >= 1, "{appended:?}");
}

#[tokio::test]
async fn merges_in_both_modes_and_deletes() {
    let (_dir, lh) = lakehouse();
    create(&lh, false).await;
    lh.append(TABLE, rows(0..20, "a"), MAIN, HashMap::new())
        .await
        .unwrap();

    let watch = Watch::start(&lh);
    lh.merge(
        TABLE,
        rows(10..25, "b"),
        &merge_options(WriteMode::CopyOnWrite),
    )
    .await
    .unwrap();
    let copied = watch.check(&lh).await;
    assert!(copied.data >= 1 && copied.deletes == 0, "{copied:?}");

    let watch = Watch::start(&lh);
    lh.merge(
        TABLE,
        rows(0..5, "c"),
        &merge_options(WriteMode::MergeOnRead),
    )
    .await
    .unwrap();
    let marked = watch.check(&lh).await;
    assert!(marked.data >= 1 && marked.deletes >= 1, "{marked:?}");

    let filter = |id: i64| Filter {
        column: "id".into(),
        op: FilterOp::Lt,
        values: vec![Literal::Int(id)],
    };
    for (mode, below) in [(WriteMode::MergeOnRead, 3), (WriteMode::CopyOnWrite, 8)] {
        let watch = Watch::start(&lh);
        let deleted = lh
            .delete_with_mode(TABLE, &[filter(below)], MAIN, HashMap::new(), Some(mode))
            .await
            .unwrap();
        assert!(deleted.rows_deleted > 0, "{deleted:?}");
        let reached = watch.check(&lh).await;
        assert_eq!((reached.metadata, reached.manifest_lists), (1, 1));
    }
}

#[tokio::test]
async fn compaction_evolution_and_maintenance() {
    let (_dir, lh) = lakehouse();
    create(&lh, false).await;
    for n in 0..3 {
        lh.append(TABLE, rows(n * 10..n * 10 + 10, "a"), MAIN, HashMap::new())
            .await
            .unwrap();
    }

    let watch = Watch::start(&lh);
    let options = CompactOptions {
        target_file_size: Some(64 << 20),
        filters: Vec::new(),
        properties: HashMap::new(),
    };
    let compacted = lh.compact(TABLE, MAIN, &options).await.unwrap();
    assert_eq!(compacted.files_rewritten, 3);
    let reached = watch.check(&lh).await;
    assert_eq!(reached.data, 1, "{reached:?}");

    let watch = Watch::start(&lh);
    lh.rewrite_manifests(TABLE, MAIN, HashMap::new())
        .await
        .unwrap();
    let reached = watch.check(&lh).await;
    assert!(reached.manifests >= 1, "{reached:?}");

    // Metadata-only commits: a new metadata file, nothing else.
    let wider = Schema::new(
        (schema().fields().iter().cloned())
            .chain([Arc::new(Field::new("w", DataType::Int64, true))])
            .collect::<Vec<_>>(),
    );
    let watch = Watch::start(&lh);
    assert!(lh.evolve_schema(TABLE, MAIN, &wider).await.unwrap());
    let evolved = watch.check(&lh).await;
    let watch = Watch::start(&lh);
    let set = [("owner".to_string(), Some("durable".to_string()))];
    assert!(lh.set_properties(TABLE, MAIN, &set).await.unwrap());
    let set = watch.check(&lh).await;
    let watch = Watch::start(&lh);
    let expired = lh.expire_snapshots(i64::MAX, 1).await.unwrap();
    assert!(expired.snapshots_expired > 0, "{expired:?}");
    let expired = watch.check(&lh).await;
    for reached in [evolved, set, expired] {
        let metadata_only = Reached {
            metadata: 1,
            ..Reached::default()
        };
        assert_eq!(reached, metadata_only);
    }
}

#[tokio::test]
async fn branch_merges_and_transactions_across_tables() {
    let (_dir, lh) = lakehouse();
    create(&lh, true).await;
    lh.create_table("raw.other", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    lh.append(TABLE, rows(0..6, "a"), MAIN, HashMap::new())
        .await
        .unwrap();
    let start = log::events().len();
    ref_copies::create_ref(lh.catalog(), lh.file_io(), "dev", RefKind::Branch, MAIN)
        .await
        .unwrap();
    // The ref's copies of the metadata files it points at are renamed into place: their names
    // are synced by the catalog change that creates the ref.
    let events = &log::events()[start..];
    let root = lh.root().unwrap();
    let copies: Vec<usize> = (events.iter().enumerate())
        .filter_map(|(at, e)| match e {
            Event::Created(p)
                if p.starts_with(root) && p.to_string_lossy().ends_with(".phlo-ref") =>
            {
                Some(at)
            }
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 2, "one per table: {events:#?}");
    for at in copies {
        let Event::Created(copy) = &events[at] else {
            unreachable!()
        };
        let dir = Event::DirSynced(copy.parent().unwrap().to_path_buf());
        assert!(events[at..].contains(&dir), "{copy:?}: {events:#?}");
    }

    let watch = Watch::start(&lh);
    lh.append(TABLE, rows(6..9, "dev"), "dev", HashMap::new())
        .await
        .unwrap();
    let on_branch = watch.check(&lh).await;
    assert!(on_branch.data >= 1, "{on_branch:?}");
    // main moved too: the merge rebases dev's snapshot on it, writing new metadata files.
    lh.append(TABLE, rows(9..12, "main"), MAIN, HashMap::new())
        .await
        .unwrap();
    let watch = Watch::start(&lh);
    let merged = lh
        .merge_branch("dev", MAIN, &Default::default())
        .await
        .unwrap();
    assert_eq!(merged.rebased, vec![TABLE.to_string()]);
    let rebased = watch.check(&lh).await;
    assert_eq!((rebased.metadata, rebased.manifest_lists), (1, 1));

    // A transaction: writes to two tables on its own branch, then one merge.
    let watch = Watch::start(&lh);
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    for table in [TABLE, "raw.other"] {
        lh.append(table, rows(20..23, "tx"), &tx, HashMap::new())
            .await
            .unwrap();
    }
    let merged = lh
        .merge_branch(&tx, MAIN, &Default::default())
        .await
        .unwrap();
    assert_eq!(merged.fast_forwarded.len(), 2, "{merged:?}");
    let committed = watch.check(&lh).await;
    assert!(committed.data >= 2, "{committed:?}");
}

#[test]
fn a_name_synced_before_the_file_was_made_or_after_the_pointer_moved_fails_the_check() {
    let root = Path::new("/w");
    let file = root.join("t/data/p=1/f.parquet");
    let dir = root.join("t/data/p=1");
    let pointer = Event::PointerMoved("file:///w/t/metadata/1.json".into());
    let good = vec![
        Event::Created(dir.clone()),
        Event::Created(file.clone()),
        Event::FileSynced(file.clone()),
        Event::DirSynced(dir.clone()),
        Event::DirSynced(root.join("t/data")),
        pointer.clone(),
    ];
    let check = |events: &[Event]| {
        let at = events.iter().position(|e| *e == pointer).unwrap();
        durable_before(events, &file, std::iter::once(dir.as_path()), at)
    };
    assert_eq!(check(&good), Ok(()));
    // The folder synced before the file got its name.
    let mut early = good.clone();
    early.swap(1, 3);
    early.swap(2, 3);
    assert!(check(&early).is_err(), "{early:?}");
    // The new partition folder's own name never synced into data/.
    let mut unsynced_dir = good.clone();
    unsynced_dir.remove(4);
    assert!(check(&unsynced_dir).is_err());
    // The file synced only after the pointer moved.
    let mut late = good.clone();
    let synced = late.remove(2);
    late.push(synced);
    assert!(check(&late).is_err());
}

#[test]
fn a_folder_that_gets_an_entry_during_its_sync_stays_pending() {
    let mut pending = Pending::default();
    pending.note(Path::new("/w/a"));
    pending.note(Path::new("/w/b"));
    let synced: Vec<(PathBuf, u64)> = pending.dirs.clone().into_iter().collect();
    // Another writer creates a file in /w/a while the sync of the snapshot runs.
    pending.note(Path::new("/w/a"));
    pending.forget(&synced);
    let left: Vec<&PathBuf> = pending.dirs.keys().collect();
    assert_eq!(left, vec![Path::new("/w/a")]);
}

#[test]
fn file_uris_name_the_paths_iceberg_reads() {
    for uri in ["file:///w/t/f", "file:/w/t/f", "/w/t/f"] {
        assert_eq!(local_path(uri), Path::new("/w/t/f"), "{uri}");
    }
}
