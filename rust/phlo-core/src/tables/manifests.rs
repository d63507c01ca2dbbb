//! Keeping a table's manifests few and well sized: one manifest per commit would make every
//! scan plan and every merge read as many manifests as the table had commits.
//!
//! - [`merge_on_commit`]: every commit merges small data manifests, with Iceberg's semantics of
//!   the table properties `commit.manifest-merge.enabled` (default true),
//!   `commit.manifest.min-count-to-merge` (100) and `commit.manifest.target-size-bytes` (8 MiB),
//!   as Java's `ManifestMergeManager` and PyIceberg's `_ManifestMergeManager` apply them.
//! - [`rewrite_all`]: regroups every live entry into target-size manifests sorted by partition
//!   (`rewrite_manifests`).
//!
//! Carried entries keep what they are to readers: files this snapshot adds stay `added`, files
//! it removes stay `deleted`; every other live file becomes `existing` with the snapshot id and
//! sequence numbers it had. Files removed by earlier snapshots are dropped.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use futures::StreamExt;
use iceberg::expr::BoundPredicate;
use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, Literal, ManifestContentType, ManifestEntry, ManifestFile, ManifestStatus,
    ManifestWriter, ManifestWriterBuilder, Operation, PartitionSpec, SchemaRef, SnapshotRef,
    Struct, TableMetadata,
};

use super::commit::{SnapshotChange, commit, parse_manifest_list};
use super::deletes::{FileToRead, attach};
use super::manifest_filter::manifest_may_match;
use super::manifest_read::read_manifest_keeping_bytes;
use super::plan_reads::PlanReads;
use super::{LoadedTable, read_manifest};
use crate::catalog::{Catalog, MAIN};
use crate::error::{Context, Error, Location, Result};

const MERGE_ENABLED: &str = "commit.manifest-merge.enabled";
const MIN_COUNT_TO_MERGE: &str = "commit.manifest.min-count-to-merge";
const TARGET_SIZE_BYTES: &str = "commit.manifest.target-size-bytes";

/// When and how far a commit merges manifests (from the table's properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePolicy {
    pub enabled: bool,
    /// The bin holding the commit's own new manifest is merged once it has this many.
    pub min_count: usize,
    pub target_bytes: u64,
}

impl MergePolicy {
    /// The policy table properties set, Iceberg's defaults for those they do not; a value that
    /// does not parse is an `InvalidInput` naming the property.
    pub fn of(table: &LoadedTable) -> Result<Self> {
        Ok(Self {
            enabled: property(table, MERGE_ENABLED, "true", "true or false")?,
            min_count: property(table, MIN_COUNT_TO_MERGE, "100", "a whole number")?,
            target_bytes: property(table, TARGET_SIZE_BYTES, "8388608", "a size in bytes")?,
        })
    }
}

fn property<T: FromStr>(table: &LoadedTable, key: &str, default: &str, kind: &str) -> Result<T> {
    let raw = table
        .metadata
        .properties()
        .get(key)
        .map_or(default, String::as_str);
    raw.trim()
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| Error::InvalidInput {
            message: format!("table property {key} is {raw:?}, not {kind}"),
            at: Location {
                table: Some(table.ident.to_string()),
                column: None,
            },
            hint: format!("set it to {kind}, or remove it for the default ({default})"),
        })
}

/// What `rewrite_manifests` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrittenManifests {
    /// `None`: the table had no snapshot, so nothing was written.
    pub snapshot_id: Option<i64>,
    pub manifests_before: usize,
    pub manifests_after: usize,
}

/// Regroups every live data file of the table's branch into manifests of about
/// `commit.manifest.target-size-bytes`, sorted by partition, as one `replace` snapshot. A commit
/// that lands first is not lost: the rewrite is redone on top of it.
pub async fn rewrite_manifests(
    catalog: &Catalog,
    io: &FileIO,
    table: LoadedTable,
    properties: HashMap<String, String>,
) -> Result<RewrittenManifests> {
    if table.snapshot_for_ref(MAIN).is_none() {
        return Ok(RewrittenManifests::default());
    }
    let change = SnapshotChange {
        branch: MAIN.to_string(),
        properties,
        operation: Some(Operation::Replace),
        rewrite_manifests: true,
        ..Default::default()
    };
    let outcome = commit(catalog, io, table, &change, &|_| Ok(())).await?;
    let summary = outcome
        .table
        .metadata
        .snapshot_by_id(outcome.snapshot_id)
        .map(|s| s.summary().additional_properties.clone())
        .unwrap_or_default();
    let count = |key: &str| summary.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(RewrittenManifests {
        snapshot_id: Some(outcome.snapshot_id),
        manifests_before: count("manifests-kept") + count("manifests-replaced"),
        manifests_after: count("manifests-kept") + count("manifests-created"),
    })
}

/// The manifests of a new snapshot, and which files producing them wrote and replaced.
pub(crate) struct ManifestSet {
    pub manifests: Vec<ManifestFile>,
    /// Manifest files written here (all listed in `manifests`).
    pub written: Vec<String>,
    /// Input manifests whose entries now live in a written one (no longer listed).
    pub replaced: Vec<String>,
}

/// Merges the data manifests of a commit's list (its own new manifest first, as in Java) where
/// `policy` says so. Per partition spec, newest spec first, manifests are packed in order into
/// bins of up to `target_bytes`, filled from the oldest end so that the newest bin is the
/// under-filled one; a bin of several manifests becomes one, except the bin holding the first
/// manifest, which is merged only once it has `min_count` (so one large old manifest does not
/// keep the rest from merging, and a commit does not rewrite its neighbours every time).
pub(crate) async fn merge_on_commit(
    io: &FileIO,
    table: &TableMetadata,
    snapshot_id: i64,
    policy: MergePolicy,
    manifests: Vec<ManifestFile>,
    next_path: &mut (dyn FnMut() -> String + Send),
) -> Result<ManifestSet> {
    let (data, deletes): (Vec<_>, Vec<_>) = manifests
        .into_iter()
        .partition(|m| m.content == ManifestContentType::Data);
    let mut set = ManifestSet {
        manifests: Vec::with_capacity(data.len() + deletes.len()),
        written: Vec::new(),
        replaced: Vec::new(),
    };
    let first = data.first().map(|m| m.manifest_path.clone());
    for (_, group) in by_spec(data) {
        if !policy.enabled {
            set.manifests.extend(group);
            continue;
        }
        let sizes: Vec<u64> = group.iter().map(|m| m.manifest_length as u64).collect();
        let mut group = group.into_iter();
        for len in pack_from_end(&sizes, policy.target_bytes) {
            let bin: Vec<ManifestFile> = group.by_ref().take(len).collect();
            let holds_first = bin.iter().any(|m| Some(&m.manifest_path) == first.as_ref());
            if bin.len() == 1 || (holds_first && bin.len() < policy.min_count) {
                set.manifests.extend(bin);
                continue;
            }
            let path = next_path();
            set.manifests
                .push(write_merged(io, table, snapshot_id, &bin, &path).await?);
            set.written.push(path);
            set.replaced
                .extend(bin.into_iter().map(|m| m.manifest_path));
        }
    }
    set.manifests.extend(deletes);
    Ok(set)
}

/// Writes every entry of every live data file of `manifests` again, sorted by partition (per
/// spec), into manifests of about `target_bytes` each; delete manifests are kept as they are.
pub(crate) async fn rewrite_all(
    io: &FileIO,
    table: &TableMetadata,
    snapshot_id: i64,
    target_bytes: u64,
    manifests: Vec<ManifestFile>,
    next_path: &mut (dyn FnMut() -> String + Send),
) -> Result<ManifestSet> {
    let (data, deletes): (Vec<_>, Vec<_>) = manifests
        .into_iter()
        .partition(|m| m.content == ManifestContentType::Data);
    let mut set = ManifestSet {
        manifests: Vec::new(),
        written: Vec::new(),
        replaced: data.iter().map(|m| m.manifest_path.clone()).collect(),
    };
    for (_, group) in by_spec(data) {
        let mut layout = None;
        let mut entries = Vec::new();
        let (mut bytes, mut count) = (0u64, 0u64);
        for (index, manifest) in group.iter().enumerate() {
            let loaded = read_manifest(io, manifest, table).await?;
            let (loaded_entries, metadata) = loaded.into_parts();
            bytes += manifest.manifest_length as u64;
            count += loaded_entries.len() as u64;
            layout.get_or_insert_with(|| {
                (metadata.schema().clone(), metadata.partition_spec().clone())
            });
            entries.extend(
                loaded_entries
                    .into_iter()
                    .filter(|e| e.is_alive() || e.snapshot_id == Some(snapshot_id))
                    .map(|e| (index, e)),
            );
        }
        let Some((schema, spec)) = layout else {
            continue;
        };
        // Stable: entries of one partition keep the order they had.
        entries
            .sort_by(|a, b| partition_order(a.1.data_file.partition(), b.1.data_file.partition()));
        let per_manifest = match bytes.checked_div(count) {
            Some(entry_bytes) if entry_bytes > 0 => (target_bytes / entry_bytes).max(1),
            _ => u64::MAX,
        } as usize;
        for chunk in entries.chunks(per_manifest) {
            let path = next_path();
            let mut writer = manifest_writer(
                io,
                (&path, ManifestContentType::Data),
                snapshot_id,
                schema.clone(),
                spec.clone(),
            )?;
            for (index, entry) in chunk {
                carry(&mut writer, entry, &group[*index], snapshot_id, false)?;
            }
            set.manifests.push(
                writer
                    .write_manifest_file()
                    .await
                    .context(|| format!("writing {path}"))?,
            );
            set.written.push(path);
        }
    }
    set.manifests.extend(deletes);
    Ok(set)
}

/// Writes `entry` of `manifest` into a manifest this snapshot writes (see the module docs);
/// `remove` marks a live file this snapshot removes.
pub(crate) fn carry(
    writer: &mut ManifestWriter,
    entry: &ManifestEntry,
    manifest: &ManifestFile,
    snapshot_id: i64,
    remove: bool,
) -> Result<()> {
    let sequence = entry.sequence_number().unwrap_or(manifest.sequence_number);
    let file_sequence = entry.file_sequence_number.or(Some(sequence));
    let file = entry.data_file().clone();
    let this_snapshot = entry.snapshot_id() == Some(snapshot_id);
    match entry.status() {
        ManifestStatus::Deleted if !this_snapshot => return Ok(()),
        ManifestStatus::Deleted => writer.add_delete_file(file, sequence, file_sequence),
        // Its sequence number is assigned when the snapshot commits (inherited).
        ManifestStatus::Added if this_snapshot => writer.add_file(file, -1),
        _ if remove => writer.add_delete_file(file, sequence, file_sequence),
        _ => {
            let added_by = entry.snapshot_id().unwrap_or(manifest.added_snapshot_id);
            writer.add_existing_file(file, added_by, sequence, file_sequence)
        }
    }
    .context(|| format!("carrying {} into a new manifest", entry.file_path()))
}

/// A v2 manifest of data or delete files written by snapshot `snapshot_id` for files of `spec`.
pub(crate) fn manifest_writer(
    io: &FileIO,
    (path, content): (&str, ManifestContentType),
    snapshot_id: i64,
    schema: SchemaRef,
    spec: PartitionSpec,
) -> Result<ManifestWriter> {
    let output = io.new_output(path).context(|| format!("creating {path}"))?;
    let builder = ManifestWriterBuilder::new(output, Some(snapshot_id), schema, spec);
    Ok(match content {
        ManifestContentType::Data => builder.build_v2_data(),
        ManifestContentType::Deletes => builder.build_v2_deletes(),
    })
}

/// `manifests-created`, `manifests-kept` and `manifests-replaced` (Java's summary keys) of a
/// snapshot listing `manifests` whose parent listed `parent`.
pub(crate) fn manifest_counts(
    parent: &HashSet<String>,
    manifests: &[ManifestFile],
    snapshot_id: i64,
) -> [(String, String); 3] {
    let created = manifests
        .iter()
        .filter(|m| m.added_snapshot_id == snapshot_id)
        .count();
    let listed: HashSet<&str> = manifests.iter().map(|m| m.manifest_path.as_str()).collect();
    let replaced = parent
        .iter()
        .filter(|p| !listed.contains(p.as_str()))
        .count();
    [
        ("manifests-created", created),
        ("manifests-kept", manifests.len() - created),
        ("manifests-replaced", replaced),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
}

/// A data file that is live on a branch, with what its manifest entry says about it.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub file: DataFile,
    /// The partition spec the file was written with.
    pub spec_id: i32,
    /// The data sequence number: files of one commit share it, later commits have larger ones.
    pub sequence_number: i64,
}

/// The live files of one snapshot: data files, and delete files (which phlo never writes, but
/// other engines' merge-on-read writes do).
#[derive(Debug, Clone, Default)]
pub struct SnapshotFiles {
    pub data: Vec<LiveFile>,
    pub deletes: Vec<LiveFile>,
}

/// The live files of `snapshot`, in manifest order.
pub async fn snapshot_files(
    io: &FileIO,
    table: &LoadedTable,
    snapshot: &SnapshotRef,
) -> Result<SnapshotFiles> {
    Ok(snapshot_files_matching(io, table, snapshot, None).await?.0)
}

/// How many of a snapshot's data manifests a plan read, and how many it skipped by their
/// partition summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManifestsRead {
    pub total: usize,
    pub read: usize,
    /// Live data files listed by the manifests skipped.
    pub files_skipped: usize,
}

/// The live files of `snapshot` that may hold rows matching `predicate`, in manifest order:
/// data manifests whose partition summaries rule the predicate out are not read. (Delete
/// manifests are all read: they are few, and a scan needs every delete file of the files it
/// reads.)
pub async fn snapshot_files_matching(
    io: &FileIO,
    table: &LoadedTable,
    snapshot: &SnapshotRef,
    predicate: Option<&BoundPredicate>,
) -> Result<(SnapshotFiles, ManifestsRead)> {
    read_snapshot_files(io, table, snapshot, predicate, None).await
}

/// Manifests read at once: on object storage each is a request, and their round trips overlap.
const MANIFEST_READS_AT_ONCE: usize = 8;

/// [`snapshot_files_matching`], recording what it read into `record` when given.
async fn read_snapshot_files(
    io: &FileIO,
    table: &LoadedTable,
    snapshot: &SnapshotRef,
    predicate: Option<&BoundPredicate>,
    mut record: Option<&mut PlanReads>,
) -> Result<(SnapshotFiles, ManifestsRead)> {
    let mut files = SnapshotFiles::default();
    let mut counts = ManifestsRead::default();
    let list_path = snapshot.manifest_list();
    let list_bytes = super::read_bytes(io, list_path).await?;
    let mut to_read = Vec::new();
    for manifest in parse_manifest_list(&list_bytes, table.metadata.format_version(), list_path)? {
        if manifest.content == ManifestContentType::Data {
            counts.total += 1;
            if predicate.is_some_and(|p| !manifest_may_match(p, &manifest, &table.metadata)) {
                counts.files_skipped += [manifest.added_files_count, manifest.existing_files_count]
                    .into_iter()
                    .map(|n| n.unwrap_or(0) as usize)
                    .sum::<usize>();
                continue;
            }
            counts.read += 1;
        }
        to_read.push(manifest);
    }
    if let Some(record) = record.as_deref_mut() {
        record.record_list(list_path, list_bytes);
    }
    let metadata = &table.metadata;
    let mut reads = futures::stream::iter(to_read)
        .map(|manifest| async move {
            let (loaded, bytes) = read_manifest_keeping_bytes(io, &manifest, metadata).await?;
            Ok::<_, Error>((manifest, loaded, bytes))
        })
        .buffered(MANIFEST_READS_AT_ONCE);
    while let Some(read) = reads.next().await {
        let (manifest, loaded, bytes) = read?;
        let live = loaded.entries().iter().filter(|e| e.is_alive());
        if let (Some(record), Some(bytes)) = (record.as_deref_mut(), bytes) {
            record.record_manifest(
                &manifest.manifest_path,
                bytes,
                live.clone().map(|e| e.file_path()),
            );
        }
        let live = live.map(|e| LiveFile {
            file: e.data_file().clone(),
            spec_id: manifest.partition_spec_id,
            sequence_number: e.sequence_number().unwrap_or(manifest.sequence_number),
        });
        match manifest.content {
            ManifestContentType::Data => files.data.extend(live),
            ManifestContentType::Deletes => files.deletes.extend(live),
        }
    }
    Ok((files, counts))
}

/// The live data files of a branch, in manifest order, each with the delete files (written by
/// other engines) that apply to it.
pub async fn live_files(io: &FileIO, table: &LoadedTable, branch: &str) -> Result<Vec<FileToRead>> {
    read_live_files(io, table, branch, None).await
}

/// [`live_files`] for a write that commits on `table` next, with what was read for that
/// commit to reuse (see [`PlanReads`]).
pub async fn live_files_for_commit(
    io: &FileIO,
    table: &LoadedTable,
    branch: &str,
) -> Result<(Vec<FileToRead>, PlanReads)> {
    let mut reads = PlanReads::new(table);
    let files = read_live_files(io, table, branch, Some(&mut reads)).await?;
    Ok((files, reads))
}

async fn read_live_files(
    io: &FileIO,
    table: &LoadedTable,
    branch: &str,
    record: Option<&mut PlanReads>,
) -> Result<Vec<FileToRead>> {
    let Some(snapshot) = table.snapshot_for_ref(branch) else {
        return Ok(vec![]);
    };
    let (files, _) = read_snapshot_files(io, table, snapshot, None, record).await?;
    attach(table, files.data, files.deletes)
}

/// Orders partition values field by field, nulls first (values of one spec share types).
pub fn partition_order(a: &Struct, b: &Struct) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let order = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(Literal::Primitive(x)), Some(Literal::Primitive(y))) => {
                x.partial_cmp(y).unwrap_or(Ordering::Equal)
            }
            (Some(_), Some(_)) => Ordering::Equal,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// Manifests grouped by partition spec, newest spec first, in list order within a group.
fn by_spec(manifests: Vec<ManifestFile>) -> Vec<(i32, Vec<ManifestFile>)> {
    let mut groups: HashMap<i32, Vec<ManifestFile>> = HashMap::new();
    for manifest in manifests {
        groups
            .entry(manifest.partition_spec_id)
            .or_default()
            .push(manifest);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|(spec, _)| std::cmp::Reverse(*spec));
    groups
}

/// Splits items (by size, in order) into consecutive bins of at most `target` each (an item
/// larger than `target` gets a bin of its own), filling them from the last item backwards:
/// the first bin is the one left under-filled. Returns the bins' lengths, first bin first.
fn pack_from_end(sizes: &[u64], target: u64) -> Vec<usize> {
    let mut bins = Vec::new();
    let (mut len, mut weight) = (0usize, 0u64);
    for &size in sizes.iter().rev() {
        if len > 0 && weight + size > target {
            bins.push(len);
            (len, weight) = (0, 0);
        }
        len += 1;
        weight += size;
    }
    if len > 0 {
        bins.push(len);
    }
    bins.reverse();
    bins
}

/// Merges the entries of `bin` (manifests of one spec) into one new manifest at `path`.
async fn write_merged(
    io: &FileIO,
    table: &TableMetadata,
    snapshot_id: i64,
    bin: &[ManifestFile],
    path: &str,
) -> Result<ManifestFile> {
    let mut writer = None;
    for manifest in bin {
        let loaded = read_manifest(io, manifest, table).await?;
        let writer = match &mut writer {
            Some(writer) => writer,
            None => writer.insert(manifest_writer(
                io,
                (path, ManifestContentType::Data),
                snapshot_id,
                loaded.metadata().schema().clone(),
                loaded.metadata().partition_spec().clone(),
            )?),
        };
        for entry in loaded.entries() {
            carry(writer, entry, manifest, snapshot_id, false)?;
        }
    }
    let writer = writer.ok_or_else(|| {
        Error::invalid(
            "merging an empty bin of manifests",
            "this is a bug; please report it",
        )
    })?;
    writer
        .write_manifest_file()
        .await
        .context(|| format!("writing {path}"))
}

#[cfg(test)]
mod tests {
    use super::pack_from_end;

    #[test]
    fn bins_fill_from_the_end_and_keep_order() {
        assert_eq!(pack_from_end(&[1, 1, 1, 1, 1], 2), vec![1, 2, 2]);
        assert_eq!(pack_from_end(&[1, 5, 1, 1], 3), vec![1, 1, 2]);
        assert_eq!(pack_from_end(&[4, 1, 1], 3), vec![1, 2]);
        assert_eq!(pack_from_end(&[], 3), Vec::<usize>::new());
        assert_eq!(pack_from_end(&[1; 150], 8 << 20), vec![150]);
    }
}
