//! Whether the files the branch rewrote (removed since the fork) can be re-applied on the
//! target, from one walk of the target's snapshots since the fork. Not when the target removed
//! or rewrote one of them too: a copy-on-write rewrite replaces a whole file, and the branch's
//! copy also holds the rows it only carried over, so it would bring back (or duplicate) what
//! the target changed there. Nor when the target added delete files (other engines'
//! merge-on-read writes): they may remove rows of those files, which the copies bring back.
//!
//! A file both sides rewrote is named with each side's snapshot; a key found in both copies
//! would only be one that was carried over, so a key is named only when both snapshots changed
//! its row of that file (each wrote a row of that key that is not the file's).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use arrow_array::RecordBatch;
use arrow_row::{RowConverter, SortField};
use futures::StreamExt;
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, ManifestContentType, ManifestFile, ManifestStatus, SnapshotRef};

use super::rebase::{Conflict, UNIQUE_KEY_PROPERTY};
use super::shared_keys::MAX_INDEXED_KEYS;
use crate::catalog::MAIN;
use crate::error::{Context, Result};
use crate::tables::commit::{
    adds_delete_files, files_added_by, load_manifest_list, snapshots_since,
};
use crate::tables::{LoadedTable, ProjectedFile, Projection, read_manifest};
use crate::validate::failures::JsonRows;

/// Why the branch's rewrites of the files it `removed` cannot be re-applied on the target, if
/// they cannot: the file both sides rewrote and each side's snapshot (and a key both changed,
/// when there is one), or the target's snapshot that added delete files.
pub async fn rewrites_conflict(
    io: &FileIO,
    (base, branch, target): (&LoadedTable, &LoadedTable, &LoadedTable),
    removed: &[DataFile],
    into: &str,
) -> Result<Option<Conflict>> {
    if removed.is_empty() {
        return Ok(None);
    }
    let paths: Vec<&str> = removed.iter().map(DataFile::file_path).collect();
    let since = walk_target(io, base, target, &paths).await?;
    if let Some((path, theirs)) = since.removal {
        let ours = first_removal(io, base, branch, &[path.as_str()]).await?;
        let file = removed.iter().find(|f| f.file_path() == path);
        let key = match (&ours, file) {
            (Some(ours), Some(file)) => {
                key_both_changed(io, base, file, [(branch, ours), (target, &theirs)]).await?
            }
            _ => None,
        };
        let branch_side = match &ours {
            Some(snapshot) => describe(snapshot),
            None => "a snapshot".to_string(),
        };
        let rewrote = format!(
            "both sides rewrote data file {path} since the fork: the branch in {branch_side}, \
             {into} in {}",
            describe(&theirs)
        );
        return Ok(Some(match key {
            // Merge-on-read would not help: the same row was upserted on both sides.
            Some(key) => format!(
                "{rewrote}, and both changed the row of unique key {key} in it. The branch's \
                 copy of the file would undo what {into} changed in it"
            )
            .into(),
            None => Conflict {
                what: format!(
                    "{rewrote}. The branch's copy of the file would undo what {into} changed \
                     in it, so the merge is refused even when the two sides changed different \
                     rows"
                ),
                or: Some(
                    "write with write_mode=\"merge-on-read\", whose upserts of different rows \
                     leave the file in place and rebase",
                ),
            },
        }));
    }
    Ok(since.deletes_added.map(|id| {
        format!(
            "snapshot {id} on the target added delete files, which may remove rows of the \
             files the branch rewrote"
        )
        .into()
    }))
}

/// What the target did since the fork, newest first.
struct TargetSince {
    /// The newest snapshot that removed one of the branch's removed files, and that file.
    removal: Option<(String, SnapshotRef)>,
    /// The newest snapshot that added delete files.
    deletes_added: Option<i64>,
}

/// One walk of the target's snapshots since the fork (each manifest list read once), stopping
/// when both are found.
async fn walk_target(
    io: &FileIO,
    base: &LoadedTable,
    target: &LoadedTable,
    paths: &[&str],
) -> Result<TargetSince> {
    let mut since = TargetSince {
        removal: None,
        deletes_added: None,
    };
    for snapshot in snapshots_since(base, target, MAIN)? {
        if since.removal.is_some() && since.deletes_added.is_some() {
            break;
        }
        let manifests = manifests_of(io, target, &snapshot).await?;
        if since.deletes_added.is_none() && adds_delete_files(&manifests, snapshot.snapshot_id()) {
            since.deletes_added = Some(snapshot.snapshot_id());
        }
        if since.removal.is_none()
            && let Some(path) = removal_in(io, target, &snapshot, &manifests, paths).await?
        {
            since.removal = Some((path, snapshot));
        }
    }
    Ok(since)
}

/// The newest snapshot of `table` since `base` that removed one of `paths`, and that path.
async fn first_removal(
    io: &FileIO,
    base: &LoadedTable,
    table: &LoadedTable,
    paths: &[&str],
) -> Result<Option<SnapshotRef>> {
    for snapshot in snapshots_since(base, table, MAIN)? {
        let manifests = manifests_of(io, table, &snapshot).await?;
        if removal_in(io, table, &snapshot, &manifests, paths)
            .await?
            .is_some()
        {
            return Ok(Some(snapshot));
        }
    }
    Ok(None)
}

async fn manifests_of(
    io: &FileIO,
    table: &LoadedTable,
    snapshot: &SnapshotRef,
) -> Result<Vec<ManifestFile>> {
    load_manifest_list(
        io,
        table.metadata.format_version(),
        snapshot.manifest_list(),
    )
    .await
}

/// Which of `paths` `snapshot` (whose manifest list is `manifests`) removed, if any.
async fn removal_in(
    io: &FileIO,
    table: &LoadedTable,
    snapshot: &SnapshotRef,
    manifests: &[ManifestFile],
    paths: &[&str],
) -> Result<Option<String>> {
    let id = snapshot.snapshot_id();
    // A snapshot's removals are `deleted` entries of the manifests it wrote (an append's
    // manifest has none, and is not read).
    for manifest in manifests.iter().filter(|m| {
        m.content == ManifestContentType::Data && m.added_snapshot_id == id && m.has_deleted_files()
    }) {
        let loaded = read_manifest(io, manifest, &table.metadata).await?;
        let found = loaded.entries().iter().find(|e| {
            e.status() == ManifestStatus::Deleted
                && e.snapshot_id() == Some(id)
                && paths.contains(&e.data_file().file_path())
        });
        if let Some(entry) = found {
            return Ok(Some(entry.data_file().file_path().to_string()));
        }
    }
    Ok(None)
}

/// A unique key (as "(columns) {json}") whose row in `file`, a file of `base` both sides
/// rewrote, both sides' snapshots changed: each added a row of that key that is not one of
/// `file`'s (a row only carried over is). `None` when there is none, the snapshots recorded no
/// key, or the files hold too many rows to compare.
async fn key_both_changed(
    io: &FileIO,
    base: &LoadedTable,
    file: &DataFile,
    [(branch, ours), (target, theirs)]: [(&LoadedTable, &SnapshotRef); 2],
) -> Result<Option<String>> {
    let recorded = |s: &SnapshotRef| {
        let key = s.summary().additional_properties.get(UNIQUE_KEY_PROPERTY)?;
        Some(key.split(',').map(String::from).collect::<Vec<_>>())
    };
    let Some(key) = recorded(ours).or_else(|| recorded(theirs)) else {
        return Ok(None);
    };
    let ours = data_files(files_added_by(io, branch, ours).await?);
    let theirs = data_files(files_added_by(io, target, theirs).await?);
    let rows: u64 = [file]
        .into_iter()
        .chain(&ours)
        .chain(&theirs)
        .map(DataFile::record_count)
        .sum();
    if rows > MAX_INDEXED_KEYS {
        return Ok(None);
    }
    // Both sides read as the base saw the file (by field id).
    let projection = Projection::new(&base.metadata, base.metadata.current_schema())?;
    let Some(hashes) = RowHashes::new(&projection, &key) else {
        return Ok(None);
    };
    let (mut file_rows, mut file_keys) = (HashSet::new(), HashSet::new());
    read_rows(io, &projection, std::slice::from_ref(file), |batch| {
        for (row, key) in hashes.of(batch)? {
            file_rows.insert(row);
            file_keys.insert(key);
        }
        Ok(None)
    })
    .await?;
    let mut ours_changed = HashSet::new();
    read_rows(io, &projection, &ours, |batch| {
        for (row, key) in hashes.of(batch)? {
            if file_keys.contains(&key) && !file_rows.contains(&row) {
                ours_changed.insert(key);
            }
        }
        Ok(None)
    })
    .await?;
    let columns = key.join(", ");
    read_rows(io, &projection, &theirs, |batch| {
        let both = hashes
            .of(batch)?
            .into_iter()
            .position(|(row, key)| ours_changed.contains(&key) && !file_rows.contains(&row));
        let Some(i) = both else { return Ok(None) };
        let keys = batch
            .project(&hashes.key_columns)
            .context(|| "selecting the key columns".into())?;
        Ok(Some(format!("({columns}) {}", JsonRows::new(&keys).row(i))))
    })
    .await
}

fn data_files(live: Vec<crate::tables::manifests::LiveFile>) -> Vec<DataFile> {
    live.into_iter().map(|f| f.file).collect()
}

/// Streams the rows of `files` to `each` batch by batch, until it returns something.
async fn read_rows(
    io: &FileIO,
    projection: &Projection,
    files: &[DataFile],
    mut each: impl FnMut(&RecordBatch) -> Result<Option<String>>,
) -> Result<Option<String>> {
    for file in files {
        let mut batches = ProjectedFile::open(io, file, projection).await?.batches()?;
        while let Some(batch) = batches.next().await {
            if let Some(found) = each(&batch?)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

/// Hashes of each row, whole and of its key columns, comparable across files read with one
/// projection.
struct RowHashes {
    rows: RowConverter,
    keys: RowConverter,
    key_columns: Vec<usize>,
    state: RandomState,
}

impl RowHashes {
    /// `None` when a key column is not in the projection or a column's type has no row
    /// encoding.
    fn new(projection: &Projection, key: &[String]) -> Option<Self> {
        let schema = projection.schema();
        let key_columns: Vec<usize> = key
            .iter()
            .map(|k| schema.index_of(k).ok())
            .collect::<Option<_>>()?;
        let field = |i: usize| SortField::new(schema.field(i).data_type().clone());
        Some(Self {
            rows: RowConverter::new((0..schema.fields().len()).map(field).collect()).ok()?,
            keys: RowConverter::new(key_columns.iter().map(|&i| field(i)).collect()).ok()?,
            key_columns,
            state: RandomState::new(),
        })
    }

    /// (whole row, key) hashes of each row of `batch`.
    fn of(&self, batch: &RecordBatch) -> Result<Vec<(u64, u64)>> {
        let context = || "encoding rows to compare".to_string();
        let rows = self
            .rows
            .convert_columns(batch.columns())
            .context(context)?;
        let key_arrays: Vec<_> = self
            .key_columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let keys = self.keys.convert_columns(&key_arrays).context(context)?;
        Ok((0..batch.num_rows())
            .map(|i| {
                let row = self.state.hash_one(rows.row(i).as_ref());
                (row, self.state.hash_one(keys.row(i).as_ref()))
            })
            .collect())
    }
}

/// "snapshot 123 (overwrite, merge by id)".
fn describe(snapshot: &SnapshotRef) -> String {
    let summary = snapshot.summary();
    let what = match summary.additional_properties.get(UNIQUE_KEY_PROPERTY) {
        Some(key) => format!("{}, merge by {key}", summary.operation.as_str()),
        None => summary.operation.as_str().to_string(),
    };
    format!("snapshot {} ({what})", snapshot.snapshot_id())
}
