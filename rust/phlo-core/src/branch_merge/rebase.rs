//! Re-applying what a branch did to one table on top of a target that moved since the fork.
//! The branch's removed files must all still be live on the target, and no key the branch
//! merged by (all its columns) may be both in a data file the target gained since the fork and
//! in a file the branch added. Min/max statistics of the key's first column clear most pairs of
//! files unread (the rule a table commit's retry uses); the rest are compared key by key
//! (`shared_keys.rs`), so runs upserting different random keys (UUIDs, hashes), whose ranges
//! all overlap, rebase. The branch's added files also hold rows its rewrites only copied: such
//! a key on the target too is a conflict (the target may have inserted it again). Plain appends
//! commute. Position deletes the branch wrote (merge-on-read) carry over as long as the data
//! file each names is still live on the target.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, Datum, ManifestContentType, ManifestFile, Operation, TableMetadata,
    TableMetadataBuilder,
};

use super::rewritten::rewrites_conflict;
use super::schema::carry_over;
use super::settings::carry_settings;
use super::shared_keys::{MAX_INDEXED_KEYS, Shared, shared_key};
use crate::catalog::{Changed, MAIN};
use crate::error::{Context, Error, Result};
use crate::tables::commit::{
    AttemptFiles, SnapshotChange, deleted_target_gone, files_added_since, load_manifest_list,
    write_snapshot,
};
use crate::tables::metadata_cache::read_metadata;
use crate::tables::{LoadedTable, Projection, read_manifest};

/// The snapshot property a merge records its unique key in (comma-separated column names), so
/// a branch's upserts can be rebased by key later.
pub const UNIQUE_KEY_PROPERTY: &str = "phlo.unique-key";

/// The rebased table written (not committed), or why the branch's changes cannot be re-applied.
pub enum Rebased {
    Written(AttemptFiles),
    Conflict(Conflict),
}

/// Why a branch's changes to a table cannot be re-applied on the target, and the way to
/// publish them other than re-running the branch's writes on a fresh fork, when there is one.
pub struct Conflict {
    pub what: String,
    /// Ends "To publish, re-run the branch's writes … now, or …".
    pub or: Option<&'static str>,
}

impl From<String> for Conflict {
    fn from(what: String) -> Self {
        Self { what, or: None }
    }
}

pub async fn rebase(
    io: &FileIO,
    changed: &Changed,
    (source, into): (&str, &str),
) -> Result<Rebased> {
    let (Some(base), Some(target)) = (&changed.base, &changed.target) else {
        return Ok(Rebased::Conflict(
            String::from("created on both sides").into(),
        ));
    };
    let (base, branch, target) = (
        read(io, changed, base).await?,
        read(io, changed, &changed.source).await?,
        read(io, changed, target).await?,
    );
    let (was, now) = (base.metadata.uuid(), target.metadata.uuid());
    if was != now {
        return Ok(Rebased::Conflict(format!(
            "the table was dropped and created again on {into} since the fork (table-uuid {was} \
             is now {now}): the branch's changes are to the old table"
        )
        .into()));
    }
    let net = net_change(io, &base, &branch).await?;
    if let Some(reason) = net.unsupported {
        return Ok(Rebased::Conflict(reason.into()));
    }
    let spec_id = target.metadata.default_partition_spec_id();
    if net.spec_ids.iter().any(|id| *id != spec_id) {
        return Ok(Rebased::Conflict(
            String::from("the partition spec changed on the target since the fork").into(),
        ));
    }
    let checked = rewrites_conflict(io, (&base, &branch, &target), &net.removed, into).await;
    if let Err(conflict) | Ok(Some(conflict)) = as_merge_conflict(checked, (&base, &target), into)?
    {
        return Ok(Rebased::Conflict(conflict));
    }
    let gained = match net.unkeyed_rewrite || !net.keys.is_empty() {
        true => match as_merge_conflict(
            files_added_since(io, &base, &target, MAIN).await,
            (&base, &target),
            into,
        )? {
            Ok(gained) => gained,
            Err(conflict) => return Ok(Rebased::Conflict(conflict)),
        },
        false => Vec::new(),
    };
    let target = match carry_over(
        base.metadata.current_schema(),
        branch.metadata.current_schema(),
        target.metadata.current_schema(),
        target.metadata.last_column_id(),
    ) {
        Err(problems) => return Ok(Rebased::Conflict(problems.join("; ").into())),
        Ok(None) => target,
        Ok(Some(schema)) => with_schema(target, schema)?,
    };
    let target = match carry_settings((&base.metadata, &branch.metadata), target)? {
        Ok(target) => target,
        Err(conflict) => return Ok(Rebased::Conflict(conflict)),
    };
    if let Some(conflict) = colliding_keys(io, (&branch, &target, into), &net, &gained).await? {
        return Ok(Rebased::Conflict(conflict));
    }
    let change = SnapshotChange {
        branch: MAIN.to_string(),
        added_files: net.added,
        removed_files: net.removed,
        properties: carried_properties(&branch, source),
        ..Default::default()
    };
    if let Some(path) = deleted_target_gone(io, &target, &change).await? {
        return Ok(Rebased::Conflict(
            format!(
                "the target removed or rewrote {path} since the fork, and the branch's position \
                 deletes remove rows of it"
            )
            .into(),
        ));
    }
    match write_snapshot(io, &target, &change).await {
        Ok(files) => Ok(Rebased::Written(files)),
        // A file the branch removed is gone from the target: both sides rewrote it.
        Err(Error::CommitConflict { message, .. }) => Ok(Rebased::Conflict(message.into())),
        Err(e) => Err(e),
    }
}

/// What a check of the target's history since the fork found, with a history that no longer
/// leads back to the fork (the walk back from the target's head ends in a `CommitConflict`)
/// as the merge conflict it is: another engine rolled the target back past the fork, or its
/// expiry dropped the fork point and the parent ids after it (as PyIceberg's does). No retry
/// of the merge can check it (the table commit's "run the write again" does not apply), only
/// re-running the branch's writes on a branch forked from the target now.
fn as_merge_conflict<T>(
    checked: Result<T>,
    (fork, target): (&LoadedTable, &LoadedTable),
    into: &str,
) -> Result<std::result::Result<T, Conflict>> {
    match checked {
        Err(Error::CommitConflict { .. }) => Ok(Err(history_cut(fork, target, into).into())),
        other => other.map(Ok),
    }
}

fn history_cut(fork: &LoadedTable, target: &LoadedTable, into: &str) -> String {
    let id = fork.snapshot_for_ref(MAIN).map(|s| s.snapshot_id());
    let snapshot = id.map_or("the branch forked from".into(), |id| {
        format!("{id}, which the branch forked from")
    });
    let why = match id.and_then(|id| target.metadata.snapshot_by_id(id)) {
        // Still in the metadata, just not behind the head.
        Some(_) => format!(
            "another engine rolled {into} back past it (e.g. PyIceberg's rollback_to_snapshot)"
        ),
        None => "another engine's snapshot expiry removed it (and, as PyIceberg's does, the \
                 parent ids after it)"
            .into(),
    };
    format!(
        "the history of {into} no longer leads back to snapshot {snapshot}: {why}, so what \
         {into} changed since the fork cannot be checked against the branch's changes"
    )
}

/// The file `error` says is missing, if it says so.
fn missing_file(error: &Error) -> Option<&str> {
    match error {
        Error::Storage { source, path } if source.kind() == std::io::ErrorKind::NotFound => {
            Some(path)
        }
        _ => None,
    }
}

/// The branch head's phlo properties (run id, partition, message, metrics), so a rebased publish
/// says what produced it as a fast-forwarded one does, plus where it came from. The unique key
/// is left out: the rebased snapshot may squash several merges.
fn carried_properties(branch: &LoadedTable, source: &str) -> HashMap<String, String> {
    let mut properties: HashMap<String, String> = branch
        .metadata
        .current_snapshot()
        .map(|head| head.summary().additional_properties.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| key.starts_with("phlo.") && key != UNIQUE_KEY_PROPERTY)
        .collect();
    properties.insert("phlo.rebased-from".to_string(), source.to_string());
    properties
}

async fn read(io: &FileIO, changed: &Changed, location: &str) -> Result<LoadedTable> {
    let metadata = read_metadata(io, location, || {
        format!("reading metadata of {} at {location}", changed.ident)
    })
    .await?;
    Ok(LoadedTable::read_now(
        &changed.ident,
        MAIN,
        Arc::new(metadata),
        location.to_string(),
    ))
}

/// The target with `schema` as its current schema, in memory: the rebased snapshot's metadata
/// file carries the schema change and the data together.
fn with_schema(target: LoadedTable, schema: iceberg::spec::Schema) -> Result<LoadedTable> {
    let metadata = TableMetadataBuilder::new_from_metadata(target.metadata.as_ref().clone(), None)
        .add_current_schema(schema)
        .and_then(|b| b.build())
        .context(|| format!("carrying the branch's schema into {}", target.ident))?
        .metadata;
    Ok(LoadedTable {
        metadata: Arc::new(metadata),
        ..target
    })
}

/// What the branch did to a table's data files since the fork.
struct NetChange {
    added: Vec<DataFile>,
    removed: Vec<DataFile>,
    /// Partition specs the added files were written with.
    spec_ids: HashSet<i32>,
    /// Every unique key the branch merged by (its columns).
    keys: HashSet<Vec<String>>,
    /// Whether the branch rewrote or deleted rows without a recorded key (e.g. a delete).
    unkeyed_rewrite: bool,
    /// Why the branch's history cannot be rebased at all.
    unsupported: Option<String>,
}

/// Live files of the branch minus live files of the base, and the reverse. Manifests both
/// lists share hold the same live files, so only the others are read.
async fn net_change(io: &FileIO, base: &LoadedTable, branch: &LoadedTable) -> Result<NetChange> {
    let mut net = NetChange {
        added: Vec::new(),
        removed: Vec::new(),
        spec_ids: HashSet::new(),
        keys: HashSet::new(),
        unkeyed_rewrite: false,
        unsupported: None,
    };
    let after = manifests(io, branch).await?;
    let after_paths: HashSet<String> = after.iter().map(|m| m.manifest_path.clone()).collect();
    // Another engine's expiry (Java's) deletes the files of the snapshots it expires, the fork
    // point's among them: what the branch changed cannot be told from what it started with.
    let (before_paths, mut live_before) = match fork_files(io, base, &after_paths).await {
        Err(ref e) if let Some(path) = missing_file(e) => {
            net.unsupported = Some(format!(
                "the files of the snapshot the branch forked from are gone ({path} among them): \
                 another engine's snapshot expiry deleted them"
            ));
            return Ok(net);
        }
        other => other?,
    };
    for manifest in after
        .iter()
        .filter(|m| !before_paths.contains(&m.manifest_path))
    {
        for file in live_files(io, manifest, &branch.metadata).await? {
            if live_before.remove(file.file_path()).is_none() {
                // Position deletes naming their data file (phlo's merge-on-read) carry over
                // while that file is live on the target; others could apply anywhere.
                if manifest.content == ManifestContentType::Deletes
                    && (file.content_type() != DataContentType::PositionDeletes
                        || file.referenced_data_file().is_none())
                {
                    net.unsupported = Some(format!(
                        "the branch wrote delete file {} that does not name the one data file \
                         it applies to",
                        file.file_path()
                    ));
                    return Ok(net);
                }
                net.spec_ids.insert(manifest.partition_spec_id);
                net.added.push(file);
            }
        }
    }
    net.removed = live_before.into_values().collect();
    (net.keys, net.unkeyed_rewrite) = merged_keys(base, branch);
    Ok(net)
}

/// The manifests of `table`'s head on `main`.
async fn manifests(io: &FileIO, table: &LoadedTable) -> Result<Vec<ManifestFile>> {
    match table.snapshot_for_ref(MAIN) {
        Some(s) => load_manifest_list(io, table.metadata.format_version(), s.manifest_list()).await,
        None => Ok(Vec::new()),
    }
}

/// The fork point's manifests, and the live files of those the branch no longer lists (`after`
/// are the branch's manifests), by path.
async fn fork_files(
    io: &FileIO,
    base: &LoadedTable,
    after: &HashSet<String>,
) -> Result<(HashSet<String>, HashMap<String, DataFile>)> {
    let before = manifests(io, base).await?;
    let mut live = HashMap::new();
    for manifest in before.iter().filter(|m| !after.contains(&m.manifest_path)) {
        for file in live_files(io, manifest, &base.metadata).await? {
            live.insert(file.file_path().to_string(), file);
        }
    }
    Ok((before.into_iter().map(|m| m.manifest_path).collect(), live))
}

/// Which keys the branch's merges since `base` were made by (a merge that only inserted is an
/// append), and whether it rewrote or deleted rows without a recorded key.
fn merged_keys(base: &LoadedTable, branch: &LoadedTable) -> (HashSet<Vec<String>>, bool) {
    let (mut keys, mut unkeyed_rewrite) = (HashSet::new(), false);
    let stop = base.snapshot_for_ref(MAIN).map(|s| s.snapshot_id());
    let mut current = branch.snapshot_for_ref(MAIN).cloned();
    while let Some(snapshot) = current.filter(|s| Some(s.snapshot_id()) != stop) {
        let summary = snapshot.summary();
        match summary.additional_properties.get(UNIQUE_KEY_PROPERTY) {
            Some(key) => {
                keys.insert(key.split(',').map(String::from).collect());
            }
            // A compaction (`replace`) moves rows without changing them.
            None if !matches!(summary.operation, Operation::Append | Operation::Replace) => {
                unkeyed_rewrite = true
            }
            None => {}
        }
        current = snapshot
            .parent_snapshot_id()
            .and_then(|id| branch.metadata.snapshot_by_id(id).cloned());
    }
    (keys, unkeyed_rewrite)
}

/// Why re-applying `added`, the files `branch`'s snapshots since `base` added (appends only,
/// keyed merges that only inserted among them), on `target`, a later version of `base`, could
/// hold a key twice, if it could: a REST transaction re-applies its appends this way after
/// losing a race.
pub(crate) async fn inserted_keys_collide(
    io: &FileIO,
    (base, branch, target): (&LoadedTable, &LoadedTable, &LoadedTable),
    added: &[DataFile],
) -> Result<Option<Conflict>> {
    let (keys, unkeyed_rewrite) = merged_keys(base, branch);
    if keys.is_empty() && !unkeyed_rewrite {
        return Ok(None);
    }
    let gained = files_added_since(io, base, target, MAIN).await?;
    let net = NetChange {
        added: added.to_vec(),
        removed: Vec::new(),
        spec_ids: HashSet::new(),
        keys,
        unkeyed_rewrite,
        unsupported: None,
    };
    colliding_keys(io, (branch, target, "the target"), &net, &gained).await
}

async fn live_files(
    io: &FileIO,
    manifest: &ManifestFile,
    table: &TableMetadata,
) -> Result<Vec<DataFile>> {
    let loaded = read_manifest(io, manifest, table).await?;
    Ok(loaded
        .entries()
        .iter()
        .filter(|e| e.is_alive())
        .map(|e| e.data_file().clone())
        .collect())
}

/// Why the branch's rewrites may collide with rows the target gained, if they may: a key
/// (all its columns) in both a gained file and a file the branch added (its upserted rows are
/// among those). Min/max statistics of the key's first column rule out most pairs of files
/// without reading them; only the files left are read, their key columns alone. `target`
/// carries the schema of the rebased table, which both sides are read as.
async fn colliding_keys(
    io: &FileIO,
    (branch, target, into): (&LoadedTable, &LoadedTable, &str),
    net: &NetChange,
    gained: &[DataFile],
) -> Result<Option<Conflict>> {
    let Some(first) = gained.first() else {
        return Ok(None);
    };
    // Position deletes hold no keys: the rows they replace are in the branch's data files.
    let added: Vec<DataFile> = net
        .added
        .iter()
        .filter(|f| f.content_type() == DataContentType::Data)
        .cloned()
        .collect();
    if net.unkeyed_rewrite {
        return Ok(Some(
            format!(
                "the branch rewrote rows without a recorded unique key, and the target gained {} \
                 data file(s) since the fork (e.g. {})",
                gained.len(),
                first.file_path()
            )
            .into(),
        ));
    }
    let (branch_schema, schema) = (
        branch.metadata.current_schema(),
        target.metadata.current_schema(),
    );
    for key in &net.keys {
        let columns = key.join(", ");
        // By field id, named as in the rebased schema (the target may have renamed a column).
        let fields: Option<Vec<(i32, String)>> = key
            .iter()
            .map(|k| {
                let id = branch_schema.field_by_name(k)?.id;
                Some((id, schema.field_by_id(id)?.name.clone()))
            })
            .collect();
        let Some(fields) = fields else {
            return Ok(Some(
                format!("the branch's unique key ({columns}) is not in the table").into(),
            ));
        };
        let id = fields[0].0;
        let names: Vec<String> = fields.into_iter().map(|(_, name)| name).collect();
        let overlapping = |ours: &[DataFile], theirs: &[DataFile]| -> Vec<DataFile> {
            ours.iter()
                .filter(|a| theirs.iter().any(|b| ranges_overlap(a, b, id)))
                .cloned()
                .collect()
        };
        let candidates = overlapping(gained, &added);
        if candidates.is_empty() {
            continue;
        }
        let projection = Projection::select(&target.metadata, schema, &names)?;
        let ours = overlapping(&added, &candidates);
        match shared_key(io, &projection, &ours, &candidates).await? {
            Shared::None => {}
            Shared::Key(example) => {
                return Ok(Some(
                    format!(
                        "unique key ({columns}) {example} is both in a data file the branch \
                         wrote and in one {into} gained since the fork, so the merge would leave \
                         two rows with that key"
                    )
                    .into(),
                ));
            }
            Shared::TooMany(rows) => {
                return Ok(Some(Conflict {
                    what: format!(
                        "{} data file(s) the target gained since the fork (e.g. {}) overlap the \
                         range of the branch's upserted keys ({columns}), and the overlapping \
                         files hold {rows} or more rows on each side, more than the \
                         {MAX_INDEXED_KEYS} keys compared exactly",
                        candidates.len(),
                        candidates[0].file_path()
                    ),
                    or: Some("publish branches more often, in smaller runs"),
                }));
            }
        }
    }
    Ok(None)
}

/// Whether two files' min/max statistics of field `id` overlap (true when either has none).
fn ranges_overlap(a: &DataFile, b: &DataFile, id: i32) -> bool {
    fn bounds(f: &DataFile, id: i32) -> Option<(&Datum, &Datum)> {
        Some((f.lower_bounds().get(&id)?, f.upper_bounds().get(&id)?))
    }
    match (bounds(a, id), bounds(b, id)) {
        (Some((a_low, a_high)), Some((b_low, b_high))) => {
            !(matches!(a_high.partial_cmp(b_low), Some(std::cmp::Ordering::Less))
                || matches!(b_high.partial_cmp(a_low), Some(std::cmp::Ordering::Less)))
        }
        _ => true,
    }
}
