//! Which files the catalog's refs can still reach.

use std::collections::HashSet;
use std::sync::Arc;

use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;

use crate::catalog::Pointer;
use crate::catalog::ref_copies::copy_of;
use crate::error::Result;
use crate::tables::commit::load_manifest_list;
use crate::tables::read_manifest;

/// What the refs' current metadata can reach.
#[derive(Default)]
pub(super) struct Reachable {
    /// The metadata files (with the versions they log), the statistics files they list, every
    /// snapshot's manifest list, manifests and data/delete files — the snapshots of table-level
    /// refs (tags and branches other engines made) included — and the snapshot each branch
    /// forked from; and the refs' copies of the metadata files they point at.
    pub files: HashSet<String>,
    /// The tables' locations (folders).
    pub locations: HashSet<String>,
}

pub(super) async fn reachable_files(io: &FileIO, pointers: &[Pointer]) -> Result<Reachable> {
    let mut reachable = Reachable::default();
    let files = &mut reachable.files;
    let mut seen_metadata = HashSet::new();
    for pointer in pointers {
        if !seen_metadata.insert(pointer.metadata_location.clone()) {
            continue;
        }
        let metadata = read_metadata(io, &pointer.metadata_location).await?;
        let location = metadata.location().trim_end_matches('/').to_string();
        reachable.locations.insert(location);
        files.insert(pointer.metadata_location.clone());
        files.insert(copy_of(&pointer.metadata_location));
        files.extend(
            metadata
                .metadata_log()
                .iter()
                .map(|m| m.metadata_file.clone()),
        );
        files.extend(
            metadata
                .statistics_iter()
                .map(|s| s.statistics_path.clone()),
        );
        files.extend(
            metadata
                .partition_statistics_iter()
                .map(|s| s.statistics_path.clone()),
        );
        for snapshot in metadata.snapshots() {
            snapshot_files(io, &metadata, snapshot.snapshot_id(), files).await?;
        }
    }
    for base in pointers.iter().filter_map(|p| p.base_location.as_ref()) {
        if !seen_metadata.insert(base.clone()) {
            continue;
        }
        files.insert(base.clone());
        files.insert(copy_of(base));
        let metadata = read_metadata(io, base).await?;
        if let Some(id) = metadata.current_snapshot_id() {
            snapshot_files(io, &metadata, id, files).await?;
        }
    }
    Ok(reachable)
}

/// Adds the manifest list, manifests and data files of one snapshot to `files`; manifests
/// already in `files` are not read again (snapshots share most of them).
pub(super) async fn snapshot_files(
    io: &FileIO,
    metadata: &Arc<TableMetadata>,
    snapshot_id: i64,
    files: &mut HashSet<String>,
) -> Result<()> {
    let Some(snapshot) = metadata.snapshot_by_id(snapshot_id) else {
        return Ok(());
    };
    let list = snapshot.manifest_list().to_string();
    if !files.insert(list.clone()) {
        return Ok(());
    }
    for manifest in load_manifest_list(io, metadata.format_version(), &list).await? {
        if !files.insert(manifest.manifest_path.clone()) {
            continue;
        }
        let loaded = read_manifest(io, &manifest, metadata).await?;
        files.extend(loaded.entries().iter().map(|e| e.file_path().to_string()));
    }
    Ok(())
}

pub(super) async fn read_metadata(io: &FileIO, location: &str) -> Result<Arc<TableMetadata>> {
    crate::tables::metadata_cache::read_metadata(io, location, || {
        format!("reading metadata {location}")
    })
    .await
    .map(Arc::new)
}
