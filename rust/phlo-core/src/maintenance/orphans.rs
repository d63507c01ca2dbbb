//! Removing files under table locations that nothing reachable references.

use super::OrphanResult;
use super::reachable::reachable_files;
use crate::catalog::Catalog;
use crate::error::{Context, Result};
use crate::storage::Storage;
use crate::tables::table::now_ms;

/// Lists (and unless `dry_run`, deletes) the files under every table's location that nothing
/// reachable from any ref references and that were last modified before `older_than_ms` (so a
/// write still in progress keeps its files, and one that started before the cutoff fails at
/// its commit instead of landing without them: see `catalog::orphan_fence`). Snapshots of
/// table-level refs (tags and branches in the table metadata, e.g. made by PyIceberg) are
/// reachable like any other. Locations are listed through the warehouse's storage: a local
/// folder or an object-store prefix.
pub async fn remove_orphan_files(
    catalog: &Catalog,
    storage: &Storage,
    older_than_ms: i64,
    dry_run: bool,
) -> Result<OrphanResult> {
    let io = storage.file_io();
    // A cutoff in the future counts as now: files written after the pointers are read belong
    // to writes that started later, which the fence lets commit.
    let older_than_ms = older_than_ms.min(now_ms());
    // Writes still in progress that started before the cutoff are refused at their commit.
    let pointers = if dry_run {
        catalog.all_pointers()?
    } else {
        catalog.fence_orphan_removal(older_than_ms)?
    };
    let reachable = reachable_files(io, &pointers).await?;
    let mut result = OrphanResult {
        deleted: !dry_run,
        ..Default::default()
    };
    let mut locations: Vec<&String> = reachable.locations.iter().collect();
    locations.sort();
    for location in locations {
        for file in storage.list(location).await? {
            // A file of the cutoff's millisecond is old enough: the fence refuses writes that
            // started then.
            if file.modified_ms > older_than_ms || reachable.files.contains(&file.uri) {
                continue;
            }
            if !dry_run {
                io.delete(&file.uri)
                    .await
                    .context(|| format!("deleting orphan file {}", file.uri))?;
            }
            result.files.push(file.uri);
            result.bytes += file.size;
        }
    }
    result.files.sort();
    Ok(result)
}
