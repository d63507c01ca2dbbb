//! phlo's own commit path. iceberg-rust only fast-appends on `main`, so phlo writes manifests,
//! the manifest list, the snapshot and the new metadata file itself, then swaps the catalog
//! pointer (compare-and-swap). A crash before the swap leaves the table at its old snapshot;
//! the files written so far are orphans for maintenance to remove.

use std::collections::HashMap;
use std::time::Duration;

use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, DataFileFormat, FormatVersion, ManifestFile, ManifestList, ManifestListWriter,
    ManifestWriterBuilder, Operation, Snapshot, SnapshotSummaryCollector, Summary,
};
use uuid::Uuid;

use crate::catalog::SqliteCatalog;
use crate::error::{Context, Error, Result};
use crate::iceberg::LoadedTable;

/// Attempts before a commit that keeps losing the race gives up with `CommitConflict`.
const MAX_COMMIT_ATTEMPTS: u32 = 16;

/// What one snapshot changes. For now: data files appended to a branch.
#[derive(Debug, Clone)]
pub struct SnapshotChange {
    pub branch: String,
    pub added_files: Vec<DataFile>,
    /// Extra summary properties (phlo metrics, run id); computed totals always win.
    pub properties: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct CommitOutcome {
    pub table: LoadedTable,
    pub snapshot_id: i64,
    /// How many times the compare-and-swap was retried after losing to another writer.
    pub retries: u32,
}

/// Commits an append: the branch's existing manifests are carried over and one new manifest
/// lists the added files. Appends never conflict logically, so a lost race is retried on the
/// new table state (bounded attempts, jittered backoff).
pub async fn commit_append(
    catalog: &SqliteCatalog,
    io: &FileIO,
    base: LoadedTable,
    change: &SnapshotChange,
) -> Result<CommitOutcome> {
    let mut table = base;
    for attempt in 0..MAX_COMMIT_ATTEMPTS {
        let attempt_files = write_append_snapshot(io, &table, change).await?;
        if catalog.swap_metadata_location(
            &table.ident,
            &table.metadata_location,
            &attempt_files.metadata,
        )? {
            let table = LoadedTable::load(catalog, io, &table.ident).await?;
            return Ok(CommitOutcome {
                table,
                snapshot_id: attempt_files.snapshot_id,
                retries: attempt,
            });
        }
        // Lost the race: this attempt's files are unreferenced; remove them, rebase on the winner.
        for path in attempt_files.paths() {
            let _ = io.delete(path).await;
        }
        tokio::time::sleep(backoff(attempt)).await;
        table = LoadedTable::load(catalog, io, &table.ident).await?;
    }
    Err(Error::CommitConflict {
        table: table.ident.to_string(),
        message: format!("lost the commit race {MAX_COMMIT_ATTEMPTS} times in a row"),
    })
}

fn backoff(attempt: u32) -> Duration {
    let jitter = (Uuid::new_v4().as_u128() % 20) as u64;
    Duration::from_millis((5u64 << attempt.min(6)) + jitter)
}

/// The files one commit attempt wrote, none of them referenced until the catalog swap.
struct AttemptFiles {
    snapshot_id: i64,
    manifest: Option<String>,
    manifest_list: String,
    metadata: String,
}

impl AttemptFiles {
    fn paths(&self) -> impl Iterator<Item = &str> {
        self.manifest
            .iter()
            .map(String::as_str)
            .chain([self.manifest_list.as_str(), self.metadata.as_str()])
    }
}

/// Writes manifest, manifest list and metadata for an append on top of `table` (not yet
/// committed).
async fn write_append_snapshot(
    io: &FileIO,
    table: &LoadedTable,
    change: &SnapshotChange,
) -> Result<AttemptFiles> {
    let metadata = &table.metadata;
    if metadata.format_version() != FormatVersion::V2 {
        return Err(Error::invalid(
            format!(
                "table {} uses Iceberg format {}",
                table.ident,
                metadata.format_version()
            ),
            "phlo writes format v2 tables; upgrade the table to v2",
        ));
    }
    let snapshot_id = new_snapshot_id(table);
    let parent = table.snapshot_for_ref(&change.branch).cloned();
    let sequence_number = metadata.next_sequence_number();
    let commit_id = Uuid::now_v7();
    let meta_dir = format!("{}/metadata", metadata.location());

    let mut manifests: Vec<ManifestFile> = match &parent {
        Some(parent) => {
            let path = parent.manifest_list();
            let bytes = io
                .new_input(path)
                .context(|| format!("opening {path}"))?
                .read()
                .await
                .context(|| format!("reading {path}"))?;
            ManifestList::parse_with_version(&bytes, metadata.format_version())
                .context(|| format!("parsing {path}"))?
                .consume_entries()
                .into_iter()
                .collect()
        }
        None => Vec::new(),
    };
    let mut manifest_path = None;
    if !change.added_files.is_empty() {
        let path = format!("{meta_dir}/{commit_id}-m0.avro");
        let output = io
            .new_output(&path)
            .context(|| format!("creating {path}"))?;
        let mut writer = ManifestWriterBuilder::new(
            output,
            Some(snapshot_id),
            metadata.current_schema().clone(),
            metadata.default_partition_spec().as_ref().clone(),
        )
        .build_v2_data();
        for file in &change.added_files {
            // A negative sequence number means "inherit the snapshot's" at read time.
            writer
                .add_file(file.clone(), -1)
                .context(|| "adding a file to the manifest".into())?;
        }
        manifests.push(
            writer
                .write_manifest_file()
                .await
                .context(|| format!("writing manifest {path}"))?,
        );
        manifest_path = Some(path);
    }

    let list_path = format!(
        "{meta_dir}/snap-{snapshot_id}-0-{commit_id}.{}",
        DataFileFormat::Avro
    );
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
    list_writer
        .close()
        .await
        .context(|| format!("writing {list_path}"))?;

    let summary = append_summary(table, parent.as_ref().map(|p| p.summary()), change);
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(
            chrono::Utc::now()
                .timestamp_millis()
                .max(metadata.last_updated_ms()),
        )
        .with_manifest_list(list_path.clone())
        .with_summary(summary)
        .with_schema_id(metadata.current_schema_id())
        .build();
    let next = metadata
        .as_ref()
        .clone()
        .into_builder(Some(table.metadata_location.clone()))
        .set_branch_snapshot(snapshot, &change.branch)
        .and_then(|b| b.build())
        .context(|| format!("building new metadata of {}", table.ident))?
        .metadata;
    let location = table.next_metadata_location(&next)?;
    next.write_to(io, &location)
        .await
        .context(|| format!("writing metadata of {}", table.ident))?;
    Ok(AttemptFiles {
        snapshot_id,
        manifest: manifest_path,
        manifest_list: list_path,
        metadata: location.to_string(),
    })
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

const TOTALS: [(&str, &str); 4] = [
    ("total-data-files", "added-data-files"),
    ("total-records", "added-records"),
    ("total-files-size", "added-files-size"),
    ("total-delete-files", "added-delete-files"),
];

/// `added-*` from iceberg's collector; `total-*` = parent totals + added (iceberg-rust keeps
/// its own totals helper private, and readers rely on these numbers).
fn append_summary(
    table: &LoadedTable,
    parent: Option<&Summary>,
    change: &SnapshotChange,
) -> Summary {
    let metadata = &table.metadata;
    let mut collector = SnapshotSummaryCollector::default();
    for file in &change.added_files {
        collector.add_file(
            file,
            metadata.current_schema().clone(),
            metadata.default_partition_spec().clone(),
        );
    }
    let mut properties = change.properties.clone();
    properties.extend(collector.build());
    for (total, added) in TOTALS {
        let before = parent
            .and_then(|p| p.additional_properties.get(total))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let added = properties
            .get(added)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        properties.insert(total.to_string(), (before + added).to_string());
    }
    for zero in ["total-position-deletes", "total-equality-deletes"] {
        let before = parent
            .and_then(|p| p.additional_properties.get(zero))
            .cloned();
        properties.insert(zero.to_string(), before.unwrap_or_else(|| "0".into()));
    }
    Summary {
        operation: Operation::Append,
        additional_properties: properties,
    }
}
