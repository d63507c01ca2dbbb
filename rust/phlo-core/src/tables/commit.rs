//! phlo's own commit path. iceberg-rust only fast-appends on `main`, so phlo writes manifests,
//! the manifest list, the snapshot and the new metadata file itself, then swaps the catalog
//! pointer (compare-and-swap). An error before the swap leaves the table at its old snapshot
//! and removes the manifests the attempt wrote; after a crash they are orphans for maintenance
//! to remove.
//!
//! One commit adds and/or removes data files on one branch: append (only added), overwrite
//! (both: copy-on-write merge; or data plus position-delete files: merge-on-read) or delete
//! (only removed, or only delete files added). When another writer commits first, the change is
//! re-validated against what that writer did and re-applied, or refused with `CommitConflict`:
//! a file it removes must still be live, its position deletes must still point at live data
//! files, and nobody may have added delete files to the files it rewrites. A concurrent append
//! never conflicts with position deletes (they name their data file).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, FormatVersion, Literal, ManifestContentType,
    ManifestFile, ManifestList, ManifestListWriter, ManifestStatus, ManifestWriter, Operation,
    PartitionSpec, PartitionSpecRef, Snapshot, SnapshotRef, SnapshotSummaryCollector, Summary,
    TableMetadata,
};
use uuid::Uuid;

use crate::catalog::{Catalog, CommitMeta};
use crate::error::{Context, Error, Result};
use crate::failpoint;
use crate::tables::column_defaults::{DefaultsUse, refuse_defaults};
use crate::tables::discard::WriteGuard;
use crate::tables::manifest_read::parse_manifest;
use crate::tables::manifests::{self, LiveFile, MergePolicy, live_files};
use crate::tables::plan_reads::{PlanReads, Reuse};
use crate::tables::{LoadedTable, read_manifest};

/// Attempts before a commit that keeps losing the race gives up with `CommitConflict`.
const MAX_COMMIT_ATTEMPTS: u32 = 16;

/// What one snapshot changes on a branch.
#[derive(Debug, Clone, Default)]
pub struct SnapshotChange {
    pub branch: String,
    pub added_files: Vec<DataFile>,
    /// Files to remove; each must be live on the branch when the commit lands.
    pub removed_files: Vec<DataFile>,
    /// Extra summary properties (phlo metrics, run id); computed totals always win.
    pub properties: HashMap<String, String>,
    /// The summary's operation when the files do not tell it (`Replace`: compaction, manifest
    /// rewrites — the rows stay the same).
    pub operation: Option<Operation>,
    /// Regroup every live data file into new target-size manifests (`rewrite_manifests`)
    /// instead of carrying the parent's manifests over.
    pub rewrite_manifests: bool,
    /// The write whose files `added_files` are, when one of phlo's writes made them: debug
    /// builds check that it said [`Uncommitted::committing`] before the commit starts (its
    /// drop would otherwise delete files that landed).
    ///
    /// [`Uncommitted::committing`]: super::discard::Uncommitted::committing
    pub written_by: Option<WriteGuard>,
}

impl SnapshotChange {
    fn operation(&self) -> Operation {
        if let Some(operation) = &self.operation {
            return operation.clone();
        }
        // Delete files remove rows: adding only those is a delete, as Java's row deltas say.
        let adds_data = self.added_files.iter().any(is_data);
        let adds_deletes = self.added_files.iter().any(|f| !is_data(f));
        match (adds_data, adds_deletes || !self.removed_files.is_empty()) {
            (_, false) => Operation::Append,
            (false, true) => Operation::Delete,
            (true, true) => Operation::Overwrite,
        }
    }
}

/// Data files other writers added to the branch since this commit's base.
pub struct ConcurrentChanges<'a> {
    pub added_files: &'a [DataFile],
}

/// Decides whether a change may be re-applied after others committed (e.g. a merge refuses
/// when a concurrent append added rows with keys it upserts).
pub type Validator<'a> = &'a (dyn Fn(&ConcurrentChanges<'_>) -> Result<()> + Sync);

#[derive(Debug, Clone)]
pub struct CommitOutcome {
    pub table: LoadedTable,
    pub snapshot_id: i64,
    /// How many times the compare-and-swap was retried after losing to another writer.
    pub retries: u32,
}

/// Commits an append, which never conflicts: a lost race is retried on the new state.
pub async fn commit_append(
    catalog: &Catalog,
    io: &FileIO,
    base: LoadedTable,
    change: &SnapshotChange,
) -> Result<CommitOutcome> {
    let none = PlanReads::default();
    commit_attempts(catalog, io, base, change, None, &none).await
}

/// Commits `change` on top of `base`. On a lost race the table is reloaded; the commit is
/// retried only when every file it removes is still live and `validate` accepts what the
/// other writers added in between; otherwise it fails with `CommitConflict`. Once the pointer
/// swap has landed nothing can fail: the result is built from the metadata in hand. A swap
/// whose outcome cannot be read back is `CommitStateUnknown`, and the caller keeps its files.
pub async fn commit(
    catalog: &Catalog,
    io: &FileIO,
    base: LoadedTable,
    change: &SnapshotChange,
    validate: Validator<'_>,
) -> Result<CommitOutcome> {
    commit_planned(catalog, io, base, change, validate, &PlanReads::default()).await
}

/// [`commit`] after a plan that read `base`'s manifest list and manifests into `planned`: the
/// first attempt builds on those instead of reading them again. They are of `base` only: the
/// pointer swap (or the REST server's requirement) proves `base` still current as it commits,
/// and every attempt after a lost race reads the reloaded table's files afresh.
pub async fn commit_planned(
    catalog: &Catalog,
    io: &FileIO,
    base: LoadedTable,
    change: &SnapshotChange,
    validate: Validator<'_>,
    planned: &PlanReads,
) -> Result<CommitOutcome> {
    commit_attempts(catalog, io, base, change, Some(validate), planned).await
}

/// The commit loop; `validate` is `None` for a plain append, which has nothing to check
/// against what others committed meanwhile, so it lands even when their history no longer
/// leads back to its base (another engine expired the snapshots in between).
async fn commit_attempts(
    catalog: &Catalog,
    io: &FileIO,
    base: LoadedTable,
    change: &SnapshotChange,
    validate: Option<Validator<'_>>,
    planned: &PlanReads,
) -> Result<CommitOutcome> {
    if let Some(write) = &change.written_by {
        write.debug_assert_committing(&change.added_files);
    }
    // New files carry partition values of the spec they were written with.
    let spec_id = base.metadata.default_partition_spec_id();
    // The files were written after `base` was loaded: orphan removal since then may have
    // deleted them, and the catalog refuses the swap if so.
    let written_since = base.loaded_ms;
    let mut table = base;
    let nothing_read = PlanReads::default();
    for attempt in 0..MAX_COMMIT_ATTEMPTS {
        if !change.added_files.is_empty() && table.metadata.default_partition_spec_id() != spec_id {
            return Err(Error::conflict(
                table.ident.to_string(),
                "another writer changed the partition spec while this write was running",
            ));
        }
        let reads = if attempt == 0 { planned } else { &nothing_read };
        let prepared = prepare_snapshot(io, &table, change, reads).await?;
        let snapshot_id = prepared.snapshot_id;
        let message = format!("{} {}", change.operation().as_str(), table.ident);
        let meta = CommitMeta {
            files_written_since_ms: Some(written_since),
            ..CommitMeta::from_properties(&change.properties)
        };
        let proposal = Proposal::Snapshot(Box::new(prepared), &change.branch);
        if let Some(landed) = publish(catalog, io, &table, proposal, &message, &meta).await? {
            return Ok(CommitOutcome {
                table: landed,
                snapshot_id,
                retries: attempt,
            });
        }
        tokio::time::sleep(backoff(attempt)).await;
        let newer = LoadedTable::load(catalog, io, &table.ident, &table.ref_name).await?;
        same_table(&table, &newer)?;
        if let Some(validate) = validate {
            let added = files_added_since(io, &table, &newer, &change.branch).await?;
            validate(&ConcurrentChanges {
                added_files: &added,
            })?;
        }
        if !change.removed_files.is_empty()
            && let Some(id) = deletes_added_since(io, &table, &newer, &change.branch).await?
        {
            return Err(Error::conflict(
                table.ident.to_string(),
                format!(
                    "snapshot {id} of another writer added delete files, which may remove rows \
                     of the files this commit rewrites"
                ),
            ));
        }
        if let Some(path) = deleted_target_gone(io, &newer, change).await? {
            return Err(Error::conflict(
                table.ident.to_string(),
                format!(
                    "another writer removed or rewrote {path}, whose rows this commit's \
                     position deletes remove (its positions mean nothing in the new files)"
                ),
            ));
        }
        table = newer;
    }
    Err(Error::CommitConflict {
        table: table.ident.to_string(),
        message: format!("lost the commit race {MAX_COMMIT_ATTEMPTS} times in a row"),
        hint: "Run the write again when fewer writers commit to the table at once".into(),
    })
}

/// `CommitConflict` when `newer` is another table under `old`'s name (dropped and created
/// again: a new table-uuid): this write's files and plan belong to the old one, and the new
/// table's history never contains the old one's snapshots to re-validate against.
pub(crate) fn same_table(old: &LoadedTable, newer: &LoadedTable) -> Result<()> {
    let (was, now) = (old.metadata.uuid(), newer.metadata.uuid());
    if was == now {
        return Ok(());
    }
    Err(Error::CommitConflict {
        table: old.ident.to_string(),
        message: format!(
            "the table was dropped and created again while this write was running (table-uuid \
             {was} is now {now}); nothing was written to the new table"
        ),
        hint: "Run the write again against the new table if that is what you want".into(),
    })
}

/// Swaps the table's pointer to metadata file `location`. `Ok(false)`: another writer
/// committed first, and `written` (this attempt's files, unreferenced) is removed. When the
/// swap itself fails, the commit log says whether it landed (pointer and log row are written in
/// one transaction); when even that cannot be read, the outcome is unknown and every file is
/// kept.
async fn swap_pointer(
    catalog: &Catalog,
    io: &FileIO,
    table: &LoadedTable,
    (location, written): (&str, Vec<&str>),
    message: &str,
    meta: &CommitMeta,
) -> Result<bool> {
    let swapped = catalog
        .swap_metadata_location_on(
            &table.ref_name,
            &table.ident,
            &table.metadata_location,
            location,
            message,
            meta,
        )
        .and_then(|swapped| failpoint::hit("commit.after-swap").map(|()| swapped));
    let landed = match swapped {
        Ok(landed) => landed,
        Err(error) => {
            let logged = failpoint::hit("commit.read-outcome")
                .and_then(|()| catalog.logged_metadata_location(location));
            match logged {
                Ok(true) => true,
                Ok(false) => {
                    delete_all(io, written).await;
                    return Err(error);
                }
                Err(_) => {
                    return Err(Error::CommitStateUnknown {
                        table: table.ident.to_string(),
                        message: format!(
                            "the catalog failed while committing ({error}), and whether the \
                             commit landed could not be read back; the files written are kept"
                        ),
                    });
                }
            }
        }
    };
    if !landed {
        delete_all(io, written).await;
    }
    Ok(landed)
}

/// Best effort: files no snapshot references are only orphans if a delete fails.
async fn delete_all(io: &FileIO, paths: Vec<&str>) {
    for path in paths {
        let _ = io.delete(path).await;
    }
}

/// Commits a metadata-only change (`next`, built from `table.metadata`): writes the next
/// metadata file and swaps the ref's pointer, with the same guarantees as [`commit`]. `false`
/// (and nothing left behind) when another writer committed first; the caller reloads and
/// decides again.
pub async fn commit_metadata(
    catalog: &Catalog,
    io: &FileIO,
    table: &LoadedTable,
    next: &TableMetadata,
    message: &str,
) -> Result<bool> {
    let proposal = Proposal::Metadata(next);
    // The next metadata file is written after `table` was loaded (see `commit_planned`).
    let meta = CommitMeta {
        files_written_since_ms: Some(table.loaded_ms),
        ..CommitMeta::default()
    };
    let landed = publish(catalog, io, table, proposal, message, &meta).await?;
    Ok(landed.is_some())
}

/// What one commit attempt asks the catalog to make the table's new state.
enum Proposal<'a> {
    /// A new snapshot on a branch, its manifests and manifest list written.
    Snapshot(Box<PreparedSnapshot>, &'a str),
    /// Metadata only (schema, properties), built from the table's metadata.
    Metadata(&'a TableMetadata),
}

/// Makes `proposal` the table's state: the one step that differs between catalogs. A SQL
/// catalog gets the next metadata file written by phlo and its pointer swapped; a REST catalog
/// gets the change as updates and writes the metadata itself. `None`: another writer committed
/// first, nothing changed and this attempt's files are removed; an outcome that cannot be known
/// is `CommitStateUnknown`, and every file is kept.
async fn publish(
    catalog: &Catalog,
    io: &FileIO,
    table: &LoadedTable,
    proposal: Proposal<'_>,
    message: &str,
    meta: &CommitMeta,
) -> Result<Option<LoadedTable>> {
    if let Some(rest) = catalog.rest() {
        let (landed, written) = match proposal {
            Proposal::Snapshot(prepared, branch) => {
                close_list(prepared.list, &prepared.snapshot).await?;
                (
                    rest.publish_snapshot(table, prepared.snapshot, branch),
                    prepared.written,
                )
            }
            Proposal::Metadata(next) => (rest.publish_metadata(table, next), Vec::new()),
        };
        let landed = landed?;
        if landed.is_none() {
            delete_all(io, written.iter().map(String::as_str).collect()).await;
        }
        return Ok(landed);
    }
    let (next, written, list) = match proposal {
        Proposal::Snapshot(prepared, _) => {
            let list = Some((prepared.list, prepared.snapshot));
            (prepared.next, prepared.written, list)
        }
        Proposal::Metadata(next) => (next.clone(), Vec::new(), None),
    };
    let location = write_metadata(io, table, &next, list).await?;
    let files = written
        .iter()
        .map(String::as_str)
        .chain([location.as_str()]);
    let landed = swap_pointer(
        catalog,
        io,
        table,
        (&location, files.collect()),
        message,
        meta,
    );
    if !landed.await? {
        return Ok(None);
    }
    super::metadata_log::delete_dropped(catalog, io, &table.ident, &table.metadata, &next).await;
    // The file just written is the table's state: the next load only reads the pointer.
    let metadata = Arc::new(next);
    catalog.metadata_cache().insert(&location, metadata.clone());
    Ok(Some(LoadedTable {
        ident: table.ident.clone(),
        ref_name: table.ref_name.clone(),
        metadata,
        metadata_location: location,
        loaded_ms: table.loaded_ms,
    }))
}

/// Exponential backoff with jitter, so writers that lost a race do not collide again in step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let jitter = (Uuid::new_v4().as_u128() % 20) as u64;
    Duration::from_millis((5u64 << attempt.min(6)) + jitter)
}

/// Data files that snapshots committed on `branch` after `old`'s head added. Files a `replace`
/// snapshot (compaction) added are left out: they hold rows that were in the table already,
/// and the files they came from are reported by the snapshots that added those.
pub(crate) async fn files_added_since(
    io: &FileIO,
    old: &LoadedTable,
    new: &LoadedTable,
    branch: &str,
) -> Result<Vec<DataFile>> {
    let mut added = Vec::new();
    for snapshot in snapshots_since(old, new, branch)? {
        if snapshot.summary().operation != Operation::Replace {
            added.extend(
                files_added_by(io, new, &snapshot)
                    .await?
                    .into_iter()
                    .map(|f| f.file),
            );
        }
    }
    Ok(added)
}

/// The first snapshot committed on `branch` after `old`'s head that added delete files (other
/// engines' merge-on-read writes): they may remove rows of files a commit rewrites, which its
/// copies would bring back.
pub(crate) async fn deletes_added_since(
    io: &FileIO,
    old: &LoadedTable,
    new: &LoadedTable,
    branch: &str,
) -> Result<Option<i64>> {
    for snapshot in snapshots_since(old, new, branch)? {
        let id = snapshot.snapshot_id();
        let manifests =
            load_manifest_list(io, new.metadata.format_version(), snapshot.manifest_list()).await?;
        if adds_delete_files(&manifests, id) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Whether snapshot `id`, whose manifest list is `manifests`, added delete files.
pub(crate) fn adds_delete_files(manifests: &[ManifestFile], id: i64) -> bool {
    manifests.iter().any(|m| {
        m.content == ManifestContentType::Deletes
            && m.added_snapshot_id == id
            && m.has_added_files()
    })
}

/// A data file that a position-delete file of `change` targets and that is no longer live on
/// the branch of `table` (another writer's merge or compaction removed it). Positions are per
/// data file: files others only added never matter.
pub(crate) async fn deleted_target_gone(
    io: &FileIO,
    table: &LoadedTable,
    change: &SnapshotChange,
) -> Result<Option<String>> {
    let targets: Vec<String> = change
        .added_files
        .iter()
        .filter(|f| f.content_type() == DataContentType::PositionDeletes)
        .filter_map(|f| f.referenced_data_file())
        .collect();
    if targets.is_empty() {
        return Ok(None);
    }
    let live: HashSet<String> = live_data_files(io, table, &change.branch)
        .await?
        .into_iter()
        .map(|f| f.file_path().to_string())
        .collect();
    Ok(targets.into_iter().find(|t| !live.contains(t)))
}

/// The snapshots committed on `branch` after `old`'s head, newest first. `old`'s head itself
/// may have been expired since (phlo's expiry keeps its id as its children's parent): only the
/// snapshots after it are needed. A branch whose history no longer leads back to it was reset,
/// or expired snapshots in between (PyIceberg's expiry also drops the parent id of a snapshot
/// whose parent it expires): those commits cannot be checked, so `CommitConflict`.
pub(crate) fn snapshots_since(
    old: &LoadedTable,
    new: &LoadedTable,
    branch: &str,
) -> Result<Vec<SnapshotRef>> {
    let stop = old.snapshot_for_ref(branch).map(|s| s.snapshot_id());
    let mut since = Vec::new();
    let mut current = new.snapshot_for_ref(branch).cloned();
    while let Some(snapshot) = current {
        if Some(snapshot.snapshot_id()) == stop {
            return Ok(since);
        }
        let parent = snapshot.parent_snapshot_id();
        since.push(snapshot);
        if parent.is_some() && parent == stop {
            return Ok(since);
        }
        current = parent.and_then(|id| new.metadata.snapshot_by_id(id).cloned());
    }
    let Some(stop) = stop else {
        return Ok(since);
    };
    Err(Error::conflict(
        new.ident.to_string(),
        format!(
            "the history of branch {branch} no longer leads back to snapshot {stop}, which this \
             write started from: another writer reset the branch, or expired the snapshots \
             committed meanwhile before this write could check them (expire_snapshots with an \
             older_than shorter than this write took)"
        ),
    ))
}

/// The data files `snapshot` itself added.
pub(crate) async fn files_added_by(
    io: &FileIO,
    table: &LoadedTable,
    snapshot: &SnapshotRef,
) -> Result<Vec<LiveFile>> {
    let id = snapshot.snapshot_id();
    let mut added = Vec::new();
    let manifests = load_manifest_list(
        io,
        table.metadata.format_version(),
        snapshot.manifest_list(),
    )
    .await?;
    for manifest in manifests {
        if manifest.content != ManifestContentType::Data
            || manifest.added_snapshot_id != id
            || !manifest.has_added_files()
        {
            continue;
        }
        let loaded = read_manifest(io, &manifest, &table.metadata).await?;
        added.extend(
            loaded
                .entries()
                .iter()
                .filter(|e| e.status() == ManifestStatus::Added && e.snapshot_id() == Some(id))
                .map(|e| LiveFile {
                    file: e.data_file().clone(),
                    spec_id: manifest.partition_spec_id,
                    sequence_number: e.sequence_number().unwrap_or(manifest.sequence_number),
                }),
        );
    }
    Ok(added)
}

pub(crate) async fn load_manifest_list(
    io: &FileIO,
    version: FormatVersion,
    path: &str,
) -> Result<Vec<ManifestFile>> {
    parse_manifest_list(&super::read_bytes(io, path).await?, version, path)
}

/// The manifests the list at `path` (whose bytes are `bytes`) names.
pub(crate) fn parse_manifest_list(
    bytes: &[u8],
    version: FormatVersion,
    path: &str,
) -> Result<Vec<ManifestFile>> {
    Ok(ManifestList::parse_with_version(bytes, version)
        .context(|| format!("parsing {path}"))?
        .consume_entries()
        .into_iter()
        .collect())
}

/// The live data files of a branch, without the delete files that may apply to them (see
/// [`live_files`]).
pub async fn live_data_files(
    io: &FileIO,
    table: &LoadedTable,
    branch: &str,
) -> Result<Vec<DataFile>> {
    Ok(live_files(io, table, branch)
        .await?
        .into_iter()
        .map(|live| live.data.file)
        .collect())
}

/// A snapshot one commit attempt prepared: its manifests are written, its manifest list is
/// ready to be, none of them referenced until the catalog takes the snapshot.
pub(crate) struct PreparedSnapshot {
    pub snapshot_id: i64,
    written: Vec<String>,
    snapshot: Snapshot,
    /// The snapshot's manifest list, written when it closes (with the metadata file, by
    /// [`write_metadata`]).
    list: ManifestListWriter,
    /// The table's metadata with the snapshot on the branch.
    next: TableMetadata,
}

/// The files one commit attempt wrote, none of them referenced until the catalog swap.
pub(crate) struct AttemptFiles {
    written: Vec<String>,
    pub metadata: String,
}

impl AttemptFiles {
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.written
            .iter()
            .map(String::as_str)
            .chain([self.metadata.as_str()])
    }
}

/// Writes manifests, manifest list and metadata for `change` on top of `table` (not yet
/// committed), for a SQL catalog's pointer swap.
pub(crate) async fn write_snapshot(
    io: &FileIO,
    table: &LoadedTable,
    change: &SnapshotChange,
) -> Result<AttemptFiles> {
    let prepared = prepare_snapshot(io, table, change, &PlanReads::default()).await?;
    let list = Some((prepared.list, prepared.snapshot));
    let metadata = write_metadata(io, table, &prepared.next, list).await?;
    Ok(AttemptFiles {
        written: prepared.written,
        metadata,
    })
}

/// Writes `next`, the table's next metadata file, and returns its location; with the manifest
/// list of the snapshot it adds, which is written at the same time (both are unreferenced
/// until the catalog swap, and on object storage their round trips overlap).
async fn write_metadata(
    io: &FileIO,
    table: &LoadedTable,
    next: &TableMetadata,
    list: Option<(ManifestListWriter, Snapshot)>,
) -> Result<String> {
    let location = table.next_metadata_location(next)?;
    let metadata = async {
        next.write_to(io, &location)
            .await
            .context(|| format!("writing metadata of {}", table.ident))
    };
    match list {
        Some((list, snapshot)) => {
            futures::try_join!(metadata, close_list(list, &snapshot))?;
        }
        None => metadata.await?,
    }
    Ok(location.to_string())
}

/// Writes the manifest list `snapshot` names.
async fn close_list(list: ManifestListWriter, snapshot: &Snapshot) -> Result<()> {
    list.close()
        .await
        .context(|| format!("writing {}", snapshot.manifest_list()))
}

/// Writes manifests and manifest list for `change` on top of `table` and returns the snapshot,
/// for a REST catalog (its server writes the metadata): a transaction there re-applies its
/// appends this way after another writer moved a table.
pub(crate) async fn prepare_rest_snapshot(
    io: &FileIO,
    table: &LoadedTable,
    change: &SnapshotChange,
) -> Result<Snapshot> {
    let prepared = prepare_snapshot(io, table, change, &PlanReads::default()).await?;
    close_list(prepared.list, &prepared.snapshot).await?;
    Ok(prepared.snapshot)
}

/// Writes manifests and manifest list for `change` on top of `table`, and builds the snapshot.
/// Manifests that list none of the removed files are carried over untouched, then small ones
/// merged as the table's properties say (see [`super::manifests`]).
async fn prepare_snapshot(
    io: &FileIO,
    table: &LoadedTable,
    change: &SnapshotChange,
    planned: &PlanReads,
) -> Result<PreparedSnapshot> {
    let names = AttemptNames::new(table);
    let prepared = write_snapshot_files(io, table, change, planned, &names).await;
    if prepared.is_err() {
        // Whatever this attempt wrote before it failed is referenced by nothing (on a REST
        // catalog no orphan removal would ever find it): every name it may have used goes.
        delete_all(io, names.used().iter().map(String::as_str).collect()).await;
    }
    prepared
}

/// The names of the metadata files one commit attempt writes: its manifests
/// (`<commit id>-m<n>.avro`, numbered as they are needed) and its manifest list.
struct AttemptNames {
    meta_dir: String,
    commit_id: Uuid,
    snapshot_id: i64,
    manifests: AtomicUsize,
}

impl AttemptNames {
    fn new(table: &LoadedTable) -> Self {
        Self {
            meta_dir: format!("{}/metadata", table.metadata.location()),
            commit_id: Uuid::now_v7(),
            snapshot_id: new_snapshot_id(table),
            manifests: Default::default(),
        }
    }

    fn next_manifest(&self) -> String {
        let n = 1 + self.manifests.fetch_add(1, Ordering::Relaxed);
        format!("{}/{}-m{n}.avro", self.meta_dir, self.commit_id)
    }

    fn manifest_list(&self) -> String {
        let (dir, id, commit) = (&self.meta_dir, self.snapshot_id, self.commit_id);
        format!("{dir}/snap-{id}-0-{commit}.{}", DataFileFormat::Avro)
    }

    /// Every name handed out so far.
    fn used(&self) -> Vec<String> {
        let count = self.manifests.load(Ordering::Relaxed);
        let manifests =
            (1..=count).map(|n| format!("{}/{}-m{n}.avro", self.meta_dir, self.commit_id));
        manifests.chain([self.manifest_list()]).collect()
    }
}

async fn write_snapshot_files(
    io: &FileIO,
    table: &LoadedTable,
    change: &SnapshotChange,
    planned: &PlanReads,
    names: &AttemptNames,
) -> Result<PreparedSnapshot> {
    let metadata = &table.metadata;
    if metadata.format_version() != FormatVersion::V2 {
        return Err(Error::invalid(
            format!(
                "table {} uses Iceberg format {}",
                table.ident,
                metadata.format_version()
            ),
            "phlo writes Iceberg format v2 tables only: a v1 table can be upgraded to v2 \
             (set the `format-version` property to 2, e.g. with `table.set_properties`); a v3 table cannot be written by phlo — write it with \
             the engine that created it, or copy its rows into a v2 table",
        ));
    }
    refuse_defaults(metadata.current_schema(), DefaultsUse::Write)
        .map_err(|e| e.in_table(&table.ident.to_string()))?;
    // Read before anything is written: a bad property leaves nothing behind.
    let policy = MergePolicy::of(table)?;
    let snapshot_id = names.snapshot_id;
    let parent = table.snapshot_for_ref(&change.branch).cloned();
    let sequence_number = metadata.next_sequence_number();
    let mut written = Vec::new();
    let mut next_manifest_path = || names.next_manifest();

    let parent_manifests = match &parent {
        Some(parent) => {
            let path = parent.manifest_list();
            match planned.list(table, path) {
                Some(bytes) => parse_manifest_list(bytes, metadata.format_version(), path)?,
                None => load_manifest_list(io, metadata.format_version(), path).await?,
            }
        }
        None => Vec::new(),
    };
    let parent_paths: HashSet<String> = parent_manifests
        .iter()
        .map(|m| m.manifest_path.clone())
        .collect();
    let removed: HashSet<&str> = change.removed_files.iter().map(|f| f.file_path()).collect();
    let mut writes = ManifestWrites::default();
    // The new data manifest first, then the delete manifest, then the parent's: Java and
    // PyIceberg order new manifests first, and manifest merging keys on the first.
    let (data, deletes): (Vec<&DataFile>, Vec<&DataFile>) =
        change.added_files.iter().partition(|f| is_data(f));
    let mut slots = Vec::new();
    for (files, content) in [
        (data, ManifestContentType::Data),
        (deletes, ManifestContentType::Deletes),
    ] {
        if files.is_empty() {
            continue;
        }
        let path = next_manifest_path();
        let mut writer = manifests::manifest_writer(
            io,
            (&path, content),
            snapshot_id,
            metadata.current_schema().clone(),
            metadata.default_partition_spec().as_ref().clone(),
        )?;
        for file in files {
            // A negative sequence number means "inherit the snapshot's" at read time.
            writer
                .add_file(file.clone(), -1)
                .context(|| "adding a file to the manifest".into())?;
        }
        writes.add(path, writer).await?;
        slots.push(None);
    }
    // Each parent manifest that lists a removed file is written again; the rest are carried.
    let carried = parent_manifests.into_iter().filter(|manifest| {
        // Only files earlier snapshots removed: nothing to carry (Java drops these too).
        manifest.content != ManifestContentType::Data
            || manifest.has_added_files()
            || manifest.has_existing_files()
    });
    let mut inspected = futures::stream::iter(carried)
        .map(|manifest| {
            let removed = &removed;
            async move {
                if removed.is_empty() {
                    return Ok((manifest, None));
                }
                let loaded = match planned.manifest(table, &manifest.manifest_path, removed) {
                    Reuse::Untouched => None,
                    Reuse::Parse(bytes) => Some(parse_manifest(bytes, &manifest, metadata)?),
                    Reuse::Read => Some(read_manifest(io, &manifest, metadata).await?),
                };
                Ok::<_, Error>((manifest, loaded))
            }
        })
        .buffered(MANIFEST_IO_AT_ONCE);
    let mut found = 0;
    while let Some(inspected) = inspected.next().await {
        let (manifest, loaded) = inspected?;
        let hits = loaded.as_ref().map_or(0, |loaded| {
            loaded
                .entries()
                .iter()
                .filter(|e| e.is_alive() && removed.contains(e.file_path()))
                .count()
        });
        let Some(loaded) = loaded.filter(|_| hits > 0) else {
            slots.push(Some(manifest));
            continue;
        };
        found += hits;
        // Rewrite this manifest: removed files become `deleted` entries, the rest `existing`.
        let path = next_manifest_path();
        let mut writer = manifests::manifest_writer(
            io,
            (&path, manifest.content),
            snapshot_id,
            loaded.metadata().schema().clone(),
            loaded.metadata().partition_spec().clone(),
        )?;
        for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
            let remove = removed.contains(entry.file_path());
            manifests::carry(&mut writer, entry, &manifest, snapshot_id, remove)?;
        }
        writes.add(path, writer).await?;
        slots.push(None);
    }
    drop(inspected);
    if found != removed.len() {
        return Err(Error::conflict(
            table.ident.to_string(),
            format!(
                "{} of the {} files this commit replaces are no longer in the table (another \
                 writer removed or rewrote them)",
                removed.len() - found,
                removed.len()
            ),
        ));
    }
    let (done, paths) = writes.finish().await?;
    written.extend(paths);
    failpoint::hit("commit.after-manifests")?;
    // Written manifests fill the empty slots, in the order they were added.
    let mut done = done.into_iter();
    let manifests: Vec<ManifestFile> = slots
        .into_iter()
        .filter_map(|slot| slot.or_else(|| done.next()))
        .collect();
    let set = if change.rewrite_manifests {
        let target = policy.target_bytes;
        manifests::rewrite_all(
            io,
            metadata,
            snapshot_id,
            target,
            manifests,
            &mut next_manifest_path,
        )
        .await?
    } else {
        let next = &mut next_manifest_path;
        manifests::merge_on_commit(io, metadata, snapshot_id, policy, manifests, next).await?
    };
    // Manifests this attempt wrote and then merged away are referenced by nothing.
    for path in &set.replaced {
        if let Some(i) = written.iter().position(|w| w == path) {
            let _ = io.delete(path).await;
            written.remove(i);
        }
    }
    written.extend(set.written);
    let manifests = set.manifests;
    let counts = manifests::manifest_counts(&parent_paths, &manifests, snapshot_id);

    let list_path = names.manifest_list();
    let list_output = io
        .new_output(&list_path)
        .context(|| format!("creating {list_path}"))?;
    let mut list_writer = ManifestListWriter::v2(
        list_output
            .writer()
            .await
            .context(|| format!("opening {list_path}"))?,
        snapshot_id,
        parent.as_ref().map(|p| p.snapshot_id()),
        sequence_number,
    );
    list_writer
        .add_manifests(manifests.into_iter())
        .context(|| "listing manifests".into())?;
    written.push(list_path.clone());

    let mut summary = summary(table, parent.as_ref().map(|p| p.summary()), change);
    summary.additional_properties.extend(counts);
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(
            chrono::Utc::now()
                .timestamp_millis()
                .max(metadata.last_updated_ms()),
        )
        .with_manifest_list(list_path)
        .with_summary(summary)
        .with_schema_id(metadata.current_schema_id())
        .build();
    let next = metadata
        .as_ref()
        .clone()
        .into_builder(Some(table.metadata_location.clone()))
        .set_branch_snapshot(snapshot.clone(), &change.branch)
        .and_then(|b| b.build())
        .context(|| format!("building new metadata of {}", table.ident))?
        .metadata;
    Ok(PreparedSnapshot {
        snapshot_id,
        written,
        snapshot,
        list: list_writer,
        next,
    })
}

/// Manifest reads or writes one commit has in flight at once: on object storage each is a
/// request, and their round trips overlap.
const MANIFEST_IO_AT_ONCE: usize = 8;

/// The manifests one commit attempt writes, written [`MANIFEST_IO_AT_ONCE`] at a time (so no
/// more than that many are held in memory) and in the order they were added.
#[derive(Default)]
struct ManifestWrites {
    pending: Vec<(String, ManifestWriter)>,
    done: Vec<ManifestFile>,
    paths: Vec<String>,
}

impl ManifestWrites {
    /// Adds the manifest `writer` holds (to be written at `path`), writing the pending ones
    /// when there are enough of them.
    async fn add(&mut self, path: String, writer: ManifestWriter) -> Result<()> {
        self.pending.push((path, writer));
        if self.pending.len() == MANIFEST_IO_AT_ONCE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let writes = self.pending.drain(..).map(|(path, writer)| async move {
            let written = writer.write_manifest_file().await;
            written
                .context(|| format!("writing {path}"))
                .map(|m| (path, m))
        });
        for (path, manifest) in futures::future::try_join_all(writes).await? {
            self.paths.push(path);
            self.done.push(manifest);
        }
        Ok(())
    }

    /// The manifests written, in the order they were added, and their paths.
    async fn finish(mut self) -> Result<(Vec<ManifestFile>, Vec<String>)> {
        self.flush().await?;
        Ok((self.done, self.paths))
    }
}

/// A data file, not a delete file.
fn is_data(file: &DataFile) -> bool {
    file.content_type() == DataContentType::Data
}

/// Snapshot ids are random positive 63-bit numbers, unique within the table.
fn new_snapshot_id(table: &LoadedTable) -> i64 {
    loop {
        let (hi, lo) = Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) >> 1) as i64;
        if id != 0 && table.metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// (total, added, removed) summary keys.
const TOTALS: [(&str, &str, &str); 6] = [
    ("total-data-files", "added-data-files", "deleted-data-files"),
    ("total-records", "added-records", "deleted-records"),
    ("total-files-size", "added-files-size", "removed-files-size"),
    (
        "total-delete-files",
        "added-delete-files",
        "removed-delete-files",
    ),
    (
        "total-position-deletes",
        "added-position-deletes",
        "removed-position-deletes",
    ),
    (
        "total-equality-deletes",
        "added-equality-deletes",
        "removed-equality-deletes",
    ),
];

/// The partition spec `file`'s partition values are summarized by: the default spec, or when
/// the file was written under an older one (a merge or compaction removing files of a spec
/// since evolved), a spec its values fit; none fitting, no spec (the file counts in the totals
/// but in no partition). iceberg's collector formats the values by the spec it is given and
/// panics on values of another spec's types.
fn summary_spec(metadata: &TableMetadata, file: &DataFile) -> PartitionSpecRef {
    let values = file.partition().fields();
    let schema = metadata.current_schema();
    let fits = |spec: &&PartitionSpecRef| {
        spec.partition_type(schema).is_ok_and(|partition| {
            partition.fields().len() == values.len()
                && (partition.fields().iter())
                    .zip(values)
                    .all(
                        |(field, value)| match (field.field_type.as_primitive_type(), value) {
                            (_, None) => true,
                            (Some(t), Some(Literal::Primitive(v))) => t.compatible(v),
                            _ => false,
                        },
                    )
        })
    };
    std::iter::once(metadata.default_partition_spec())
        .chain(metadata.partition_specs_iter())
        .find(fits)
        .cloned()
        .unwrap_or_else(|| Arc::new(PartitionSpec::unpartition_spec()))
}

/// `added-*`/`deleted-*` from iceberg's collector; `total-*` = parent + added − removed
/// (iceberg-rust keeps its totals helper private, and readers rely on these numbers).
fn summary(table: &LoadedTable, parent: Option<&Summary>, change: &SnapshotChange) -> Summary {
    let metadata = &table.metadata;
    let mut collector = SnapshotSummaryCollector::default();
    let schema = metadata.current_schema();
    for file in &change.added_files {
        collector.add_file(file, schema.clone(), summary_spec(metadata, file));
    }
    for file in &change.removed_files {
        collector.remove_file(file, schema.clone(), summary_spec(metadata, file));
    }
    let mut properties = change.properties.clone();
    properties.extend(collector.build());
    let number = |map: &HashMap<String, String>, key: &str| {
        map.get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // As Java does: a first snapshot counts from zero; a parent without a total (written by
    // an engine that keeps none) leaves that total out rather than guessing.
    for (total, added, removed) in TOTALS {
        let before = match parent {
            None => Some(0),
            Some(p) => p
                .additional_properties
                .get(total)
                .and_then(|v| v.parse::<u64>().ok()),
        };
        match before {
            Some(before) => {
                let after = (before + number(&properties, added))
                    .saturating_sub(number(&properties, removed));
                properties.insert(total.to_string(), after.to_string());
            }
            None => {
                properties.remove(total);
            }
        }
    }
    Summary {
        operation: change.operation(),
        additional_properties: properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableIdent;
    use crate::tables::metadata_cache::test_metadata;

    fn table() -> LoadedTable {
        let metadata = test_metadata::one_long_column();
        LoadedTable {
            ident: TableIdent::parse("raw.t").unwrap(),
            ref_name: "main".into(),
            metadata: Arc::new(metadata),
            metadata_location: "file:///tmp/t/metadata/00000-x.metadata.json".into(),
            loaded_ms: 0,
        }
    }

    #[test]
    fn totals_count_from_zero_without_a_parent_and_are_left_out_when_the_parent_has_none() {
        let change = SnapshotChange::default();
        let first = summary(&table(), None, &change);
        assert_eq!(first.additional_properties["total-records"], "0");
        // A parent another engine wrote without totals: no total is better than a wrong one.
        let bare = Summary {
            operation: Operation::Append,
            additional_properties: HashMap::from([("total-data-files".into(), "3".into())]),
        };
        let next = summary(&table(), Some(&bare), &change);
        assert!(!next.additional_properties.contains_key("total-records"));
        assert_eq!(next.additional_properties["total-data-files"], "3");
    }
}
