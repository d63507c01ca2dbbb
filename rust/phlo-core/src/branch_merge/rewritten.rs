//! Which data file both sides of a merge rewrote, and the snapshot on each side that did. A
//! copy-on-write rewrite replaces a whole file: the branch's copy of it also holds the rows it
//! only carried over, so once the target rewrote the same file the branch's copy would bring
//! back (or duplicate) what the target changed there. Naming the file and both snapshots says
//! what really conflicts; a key found in both copies would only be one that was carried over.

use iceberg::io::FileIO;
use iceberg::spec::{DataFile, ManifestContentType, ManifestStatus, SnapshotRef};

use super::rebase::UNIQUE_KEY_PROPERTY;
use crate::catalog::MAIN;
use crate::error::Result;
use crate::tables::commit::{load_manifest_list, snapshots_since};
use crate::tables::{LoadedTable, read_manifest};

/// Why the branch's rewrite of a file cannot be re-applied, if the target removed or rewrote a
/// file the branch `removed` too: the file and each side's snapshot, and how to publish anyway.
pub async fn rewritten_on_both(
    io: &FileIO,
    (base, branch, target): (&LoadedTable, &LoadedTable, &LoadedTable),
    removed: &[DataFile],
    into: &str,
) -> Result<Option<String>> {
    if removed.is_empty() {
        return Ok(None);
    }
    let paths: Vec<&str> = removed.iter().map(DataFile::file_path).collect();
    let Some((path, theirs)) = first_removal(io, base, target, &paths).await? else {
        return Ok(None);
    };
    let ours = first_removal(io, base, branch, &[path.as_str()]).await?;
    let branch_side = match ours {
        Some((_, snapshot)) => describe(&snapshot),
        None => "a snapshot".to_string(),
    };
    Ok(Some(format!(
        "both sides rewrote data file {path} since the fork: the branch in {branch_side}, \
         {into} in {}. The branch's copy of the file would undo what {into} changed in it, so \
         the merge is refused even when the two sides changed different rows. \
         To publish, re-run the branch's writes on a branch forked from {into} now, or write \
         with write_mode=\"merge-on-read\", whose upserts of different rows leave the file in \
         place and rebase",
        describe(&theirs)
    )))
}

/// The newest snapshot of `table` since `base` that removed one of `paths`, and that path.
async fn first_removal(
    io: &FileIO,
    base: &LoadedTable,
    table: &LoadedTable,
    paths: &[&str],
) -> Result<Option<(String, SnapshotRef)>> {
    for snapshot in snapshots_since(base, table, MAIN)? {
        let id = snapshot.snapshot_id();
        let manifests = load_manifest_list(
            io,
            table.metadata.format_version(),
            snapshot.manifest_list(),
        )
        .await?;
        // A snapshot's removals are `deleted` entries of the manifests it wrote (an append's
        // manifest has none, and is not read).
        for manifest in manifests.iter().filter(|m| {
            m.content == ManifestContentType::Data
                && m.added_snapshot_id == id
                && m.has_deleted_files()
        }) {
            let loaded = read_manifest(io, manifest, &table.metadata).await?;
            let found = loaded.entries().iter().find(|e| {
                e.status() == ManifestStatus::Deleted
                    && e.snapshot_id() == Some(id)
                    && paths.contains(&e.data_file().file_path())
            });
            if let Some(entry) = found {
                return Ok(Some((entry.data_file().file_path().to_string(), snapshot)));
            }
        }
    }
    Ok(None)
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
