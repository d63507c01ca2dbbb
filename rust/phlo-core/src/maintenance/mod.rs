//! Maintenance across refs: expiring old snapshots and removing files nothing references.
//!
//! Branch-aware: a file stays while anything may still read it — the current state of every
//! catalog ref (main, branches, tags), every snapshot those refs retain, every table-level ref
//! (tags and branches in a table's own metadata, e.g. made by PyIceberg), and the fork point of
//! every catalog branch (a merge reads it to tell appends from rewrites). Catalog tags are never
//! rewritten, so every snapshot a tag's metadata lists stays.
//!
//! - [`retention`]: which snapshots and table-level refs one version of a table keeps.
//! - [`reachable`]: which files the refs still reach.
//! - [`orphans`]: deleting files under table locations that nothing reaches.

mod orphans;
mod reachable;
mod retention;

use std::collections::{HashMap, HashSet};

use iceberg::io::FileIO;
use iceberg::spec::TableMetadataBuilder;

use crate::catalog::{Catalog, Pointer, RefKind, TableIdent};
use crate::error::{Context, Error, Result};
use crate::tables::LoadedTable;
use crate::tables::commit::{backoff, commit_metadata};
pub use orphans::remove_orphan_files;
use reachable::{reachable_files, read_metadata, snapshot_files};
pub(crate) use retention::table_refs;
use retention::{Plan, Request};

/// Attempts at rewriting one ref's metadata while other writers keep committing to it (an
/// attempt reads every expired snapshot's manifests, so a busy writer wins often).
const MAX_ATTEMPTS: u32 = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireResult {
    pub snapshots_expired: usize,
    /// Manifest lists, manifests, data and statistics files only expired snapshots referenced.
    pub files_deleted: usize,
    /// `table@ref` for every catalog branch whose table metadata was rewritten.
    pub refs_rewritten: Vec<String>,
    /// `table@ref:name` for every table-level ref removed because its `max-ref-age-ms` passed.
    pub refs_expired: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanResult {
    /// Files under table locations that no ref, retained snapshot or fork point references.
    pub files: Vec<String>,
    pub bytes: u64,
    /// `false` for a dry run: the files were only listed.
    pub deleted: bool,
}

/// Expires snapshots on every catalog branch of every table, then deletes the files only the
/// expired snapshots referenced.
///
/// `older_than_ms` and `keep_last` are the caller's floor for every branch: a snapshot newer
/// than `older_than_ms`, or among the newest `keep_last` of a branch, always stays. A table's
/// retention settings can keep more, never less: `history.expire.max-snapshot-age-ms` moves the
/// cutoff back to `now - age` when that is earlier, `history.expire.min-snapshots-to-keep`
/// raises `keep_last`, and a table-level branch's own `max-snapshot-age-ms` /
/// `min-snapshots-to-keep` take the place of the table's. Every table-level tag's and branch's
/// snapshot stays, and a table-level branch keeps its history under the same rules; a
/// table-level ref (never `main`) whose snapshot is older than its `max-ref-age-ms` (or the
/// table's `history.expire.max-ref-age-ms`) is removed. A catalog branch also keeps its history
/// back to its fork point; catalog tags are never rewritten. A retention setting that is not a
/// positive number is an [`Error::InvalidInput`] naming the table, before anything is rewritten.
pub async fn expire_snapshots(
    catalog: &Catalog,
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
    let request = Request {
        older_than_ms,
        keep_last,
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    let mut by_table: HashMap<TableIdent, Vec<Pointer>> = HashMap::new();
    for pointer in catalog.all_pointers()? {
        if pointer.kind == RefKind::Branch {
            let metadata = read_metadata(io, &pointer.metadata_location).await?;
            retention::validate(&metadata, &pointer.ident.to_string())?;
        }
        by_table
            .entry(pointer.ident.clone())
            .or_default()
            .push(pointer);
    }
    let mut result = ExpireResult::default();
    for (ident, pointers) in by_table {
        let mut candidates = HashSet::new();
        for pointer in pointers.iter().filter(|p| p.kind == RefKind::Branch) {
            let Some(expired) = expire_on_ref(catalog, io, pointer, &request).await? else {
                continue;
            };
            let at = format!("{ident}@{}", pointer.ref_name);
            result.snapshots_expired += expired.plan.expired.len();
            result.refs_expired.extend(
                expired
                    .plan
                    .refs_removed
                    .iter()
                    .map(|name| format!("{at}:{name}")),
            );
            result.refs_rewritten.push(at);
            candidates.extend(expired.files);
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
    result.refs_expired.sort();
    Ok(result)
}

/// What expiring one catalog branch's table metadata removed.
struct Expired {
    plan: Plan,
    /// Files the expired snapshots referenced (deleted unless another ref still reaches them).
    files: HashSet<String>,
}

/// Rewrites one branch's metadata without its expired snapshots and refs (compare-and-swap,
/// retried when another writer commits first). `None` when nothing expired.
async fn expire_on_ref(
    catalog: &Catalog,
    io: &FileIO,
    pointer: &Pointer,
    request: &Request,
) -> Result<Option<Expired>> {
    let fork_snapshot = match &pointer.base_location {
        Some(base) => read_metadata(io, base).await?.current_snapshot_id(),
        None => None,
    };
    let table_name = pointer.ident.to_string();
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            // Out of step with the writer that just won, as a lost table commit backs off.
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let table = LoadedTable::load(catalog, io, &pointer.ident, &pointer.ref_name).await?;
        let plan = retention::plan(&table.metadata, &table_name, request, fork_snapshot)?;
        if plan.is_empty() {
            return Ok(None);
        }
        let mut files = HashSet::new();
        let mut builder = TableMetadataBuilder::new_from_metadata(
            (*table.metadata).clone(),
            Some(table.metadata_location.clone()),
        );
        for name in &plan.refs_removed {
            builder = builder.remove_ref(name);
        }
        for &id in &plan.expired {
            snapshot_files(io, &table.metadata, id, &mut files).await?;
            let statistics = table.metadata.statistics_for_snapshot(id);
            let partition_statistics = table.metadata.partition_statistics_for_snapshot(id);
            files.extend(statistics.map(|s| s.statistics_path.clone()));
            files.extend(partition_statistics.map(|s| s.statistics_path.clone()));
            builder = builder
                .remove_statistics(id)
                .remove_partition_statistics(id);
        }
        let next = builder
            .remove_snapshots(&plan.expired)
            .build()
            .context(|| format!("expiring snapshots of {}", pointer.ident))?
            .metadata;
        let message = format!(
            "expire {} snapshots and {} refs of {}",
            plan.expired.len(),
            plan.refs_removed.len(),
            pointer.ident
        );
        if commit_metadata(catalog, io, &table, &next, &message).await? {
            return Ok(Some(Expired { plan, files }));
        }
    }
    Err(Error::CommitConflict {
        table: table_name,
        message: format!(
            "{} kept changing on {} while its snapshots were being expired",
            pointer.ident, pointer.ref_name
        ),
        hint: "Expire snapshots again when fewer writers commit to the table at once".into(),
    })
}
