//! Maintenance across refs: expiring old snapshots and removing files nothing references.
//!
//! Branch-aware: a file stays while anything may still read it — the current state of every
//! ref (main, branches, tags), every snapshot those refs retain, and the fork point of every
//! branch (a merge reads it to tell appends from rewrites). Tags are never rewritten, so every
//! snapshot a tag's metadata lists stays.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use iceberg::io::FileIO;
use iceberg::spec::{TableMetadata, TableMetadataBuilder};

use crate::catalog::{MAIN, Pointer, RefKind, SqliteCatalog, TableIdent};
use crate::error::{Context, Error, Result};
use crate::iceberg::LoadedTable;
use crate::iceberg::commit::{commit_metadata, load_manifest_list};

/// Attempts at rewriting one ref's metadata while other writers keep committing to it.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireResult {
    pub snapshots_expired: usize,
    /// Manifest lists, manifests and data files only expired snapshots referenced.
    pub files_deleted: usize,
    /// `table@ref` for every ref whose history was shortened.
    pub refs_rewritten: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanResult {
    /// Files under table locations that no ref, retained snapshot or fork point references.
    pub files: Vec<String>,
    pub bytes: u64,
    /// `false` for a dry run: the files were only listed.
    pub deleted: bool,
}

/// Expires, on every branch, the snapshots older than `older_than_ms` beyond the newest
/// `keep_last` of its history; then deletes the files only those snapshots referenced. A
/// branch's head, its history back to its fork point, and everything tags list are kept.
pub async fn expire_snapshots(
    catalog: &SqliteCatalog,
    io: &FileIO,
    older_than_ms: i64,
    keep_last: usize,
) -> Result<ExpireResult> {
    if keep_last == 0 {
        return Err(Error::invalid(
            "keep_last must be at least 1",
            "a branch always keeps its current snapshot",
        ));
    }
    let mut result = ExpireResult::default();
    let mut by_table: HashMap<TableIdent, Vec<Pointer>> = HashMap::new();
    for pointer in catalog.all_pointers()? {
        by_table
            .entry(pointer.ident.clone())
            .or_default()
            .push(pointer);
    }
    for (ident, pointers) in by_table {
        let mut candidates = HashSet::new();
        for pointer in pointers.iter().filter(|p| p.kind == RefKind::Branch) {
            let expired = expire_on_ref(catalog, io, pointer, older_than_ms, keep_last).await?;
            if let Some((count, files)) = expired {
                result.snapshots_expired += count;
                result
                    .refs_rewritten
                    .push(format!("{ident}@{}", pointer.ref_name));
                candidates.extend(files);
            }
        }
        if candidates.is_empty() {
            continue;
        }
        // Re-read every ref: files still reachable from any of them stay.
        let pointers: Vec<Pointer> = catalog
            .all_pointers()?
            .into_iter()
            .filter(|p| p.ident == ident)
            .collect();
        let reachable = reachable_files(io, &pointers).await?.files;
        for path in candidates.difference(&reachable) {
            if io.delete(path).await.is_ok() {
                result.files_deleted += 1;
            }
        }
    }
    result.refs_rewritten.sort();
    Ok(result)
}

/// Rewrites one branch's metadata without its expired snapshots (compare-and-swap, retried
/// when another writer commits first). Returns how many snapshots went and the files they
/// referenced, or `None` when nothing was old enough.
async fn expire_on_ref(
    catalog: &SqliteCatalog,
    io: &FileIO,
    pointer: &Pointer,
    older_than_ms: i64,
    keep_last: usize,
) -> Result<Option<(usize, HashSet<String>)>> {
    let fork_snapshot = match &pointer.base_location {
        Some(base) => read_metadata(io, base).await?.current_snapshot_id(),
        None => None,
    };
    for _ in 0..MAX_ATTEMPTS {
        let table = LoadedTable::load(catalog, io, &pointer.ident, &pointer.ref_name).await?;
        let keep = retained(&table.metadata, older_than_ms, keep_last, fork_snapshot);
        let expired: Vec<i64> = table
            .metadata
            .snapshots()
            .map(|s| s.snapshot_id())
            .filter(|id| !keep.contains(id))
            .collect();
        if expired.is_empty() {
            return Ok(None);
        }
        let mut files = HashSet::new();
        for id in &expired {
            snapshot_files(io, &table.metadata, *id, &mut files).await?;
        }
        let next = TableMetadataBuilder::new_from_metadata(
            (*table.metadata).clone(),
            Some(table.metadata_location.clone()),
        )
        .remove_snapshots(&expired)
        .build()
        .context(|| format!("expiring snapshots of {}", pointer.ident))?
        .metadata;
        let message = format!("expire {} snapshots of {}", expired.len(), pointer.ident);
        if commit_metadata(catalog, io, &table, &next, &message).await? {
            return Ok(Some((expired.len(), files)));
        }
    }
    Err(Error::CommitConflict {
        table: pointer.ident.to_string(),
        message: format!(
            "{} kept changing on {} while its snapshots were being expired",
            pointer.ident, pointer.ref_name
        ),
    })
}

/// Snapshot ids a branch keeps: the newest `keep_last` of the head's history, everything from
/// `older_than_ms` on, and the history back to the branch's fork point.
fn retained(
    metadata: &TableMetadata,
    older_than_ms: i64,
    keep_last: usize,
    fork_snapshot: Option<i64>,
) -> HashSet<i64> {
    let mut keep: HashSet<i64> = metadata
        .snapshots()
        .filter(|s| s.timestamp_ms() >= older_than_ms)
        .map(|s| s.snapshot_id())
        .collect();
    let mut before_fork = fork_snapshot.is_some();
    let mut current = metadata.snapshot_for_ref(MAIN).cloned();
    let mut depth = 0;
    while let Some(snapshot) = current {
        if depth < keep_last || before_fork {
            keep.insert(snapshot.snapshot_id());
        }
        if Some(snapshot.snapshot_id()) == fork_snapshot {
            before_fork = false;
        }
        depth += 1;
        current = snapshot
            .parent_snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id).cloned());
    }
    keep
}

/// What the refs' current metadata can reach.
#[derive(Default)]
struct Reachable {
    /// The metadata files (with the versions they log), every snapshot's manifest list,
    /// manifests and data/delete files, and the snapshot each branch forked from.
    files: HashSet<String>,
    /// The tables' locations (folders).
    locations: HashSet<String>,
}

async fn reachable_files(io: &FileIO, pointers: &[Pointer]) -> Result<Reachable> {
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
        files.extend(
            metadata
                .metadata_log()
                .iter()
                .map(|m| m.metadata_file.clone()),
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
        let metadata = read_metadata(io, base).await?;
        if let Some(id) = metadata.current_snapshot_id() {
            snapshot_files(io, &metadata, id, files).await?;
        }
    }
    Ok(reachable)
}

/// Adds the manifest list, manifests and data files of one snapshot to `files`; manifests
/// already in `files` are not read again (snapshots share most of them).
async fn snapshot_files(
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
        let loaded = manifest
            .load_manifest(io)
            .await
            .context(|| format!("reading manifest {}", manifest.manifest_path))?;
        files.extend(loaded.entries().iter().map(|e| e.file_path().to_string()));
    }
    Ok(())
}

async fn read_metadata(io: &FileIO, location: &str) -> Result<Arc<TableMetadata>> {
    TableMetadata::read_from(io, location)
        .await
        .map(Arc::new)
        .context(|| format!("reading metadata {location}"))
}

/// Lists (and unless `dry_run`, deletes) the files under every table's location that nothing
/// reachable from any ref references and that were last modified before `older_than_ms` (so a
/// write still in progress keeps its files).
pub async fn remove_orphan_files(
    catalog: &SqliteCatalog,
    io: &FileIO,
    older_than_ms: i64,
    dry_run: bool,
) -> Result<OrphanResult> {
    let reachable = reachable_files(io, &catalog.all_pointers()?).await?;
    let mut result = OrphanResult {
        deleted: !dry_run,
        ..Default::default()
    };
    let mut locations: Vec<&String> = reachable.locations.iter().collect();
    locations.sort();
    for location in locations {
        let Some(dir) = location.strip_prefix("file://") else {
            return Err(Error::invalid(
                format!("cannot list files under {location}"),
                "orphan removal supports the local warehouse (file://) for now",
            ));
        };
        for (path, modified_ms, size) in list_files(std::path::Path::new(dir))? {
            let uri = format!("file://{}", path.display());
            if modified_ms >= older_than_ms || reachable.files.contains(&uri) {
                continue;
            }
            if !dry_run {
                std::fs::remove_file(&path).map_err(|source| Error::Storage {
                    path: path.display().to_string(),
                    source,
                })?;
            }
            result.files.push(uri);
            result.bytes += size;
        }
    }
    result.files.sort();
    Ok(result)
}

/// Files below `dir` (recursively) with their modification time (ms) and size.
fn list_files(dir: &std::path::Path) -> Result<Vec<(std::path::PathBuf, i64, u64)>> {
    let storage = |source| Error::Storage {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(storage(e)),
    };
    for entry in entries {
        let entry = entry.map_err(storage)?;
        let meta = entry.metadata().map_err(storage)?;
        if meta.is_dir() {
            files.extend(list_files(&entry.path())?);
        } else if meta.is_file() {
            let modified = meta.modified().map_err(storage)?;
            let ms = chrono::DateTime::<chrono::Utc>::from(modified).timestamp_millis();
            files.push((entry.path(), ms, meta.len()));
        }
    }
    Ok(files)
}
