//! Compaction: hourly and daily loads leave many small data files, each a file to open, a
//! footer to parse and a manifest entry to plan. This rewrites the small files of each
//! partition into files of about the target size, as one `replace` snapshot.
//!
//! - A file is small below 3/4 of the target. Per partition (of the table's current spec), the
//!   small files are taken in the order they were committed and cut into consecutive runs of
//!   up to the target size; a run of one file (e.g. a partition with one small file) stays.
//! - Each run is read file after file and written as one stream, so rows keep the order they
//!   had (data clustered by its loads stays clustered). Files are read by Iceberg field id
//!   ([`crate::tables::read`]), so columns renamed or dropped since a file was written come
//!   out under the current schema. Runs are rewritten in parallel, one at a time per core;
//!   each streams its files a row group at a time, so memory is about a row group and the
//!   writer's buffer per run, whatever the files' sizes.
//! - Files delete files apply to (phlo's merge-on-read writes, other engines') are rewritten
//!   whatever their size, without the deleted rows; a delete file left applying to no live file
//!   is removed by the same commit.
//! - The commit removes the rewritten files and adds the new ones. A concurrent append is
//!   fine; a concurrent merge or delete that removed a file being compacted makes the commit
//!   refuse (`CommitConflict`), since the compacted rows would bring back what it removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use iceberg::expr::{Bind, BoundPredicate};
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, Operation, PartitionSpecRef, SchemaRef, Struct, StructType};
use iceberg::writer::IcebergWriter;

use crate::catalog::{Catalog, MAIN};
use crate::error::{Context, Error, Result};
use crate::schema::{arrow_schema_of, cast_to_schema};
use crate::tables::commit::{SnapshotChange, commit_planned};
use crate::tables::deletes::{self, FileToRead};
use crate::tables::discard::{Uncommitted, WrittenFiles};
use crate::tables::eval::{FileMatch, file_match};
use crate::tables::filter::bind_filters;
use crate::tables::manifests::live_files_for_commit;
use crate::tables::promoted_partitions::promoted;
use crate::tables::write::{
    FileWriterBuilder, file_writer_builder, open_writer, target_file_bytes,
};
use crate::tables::{Filter, LoadedTable, ProjectedFile, Projection};

#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Size of the files written, in bytes; files below 3/4 of it are rewritten. `None`: the
    /// table's `write.target-file-size-bytes`, else phlo's default (as its writers use).
    pub target_file_size: Option<u64>,
    /// Only files that may hold rows matching these (ANDed) filters are considered.
    pub filters: Vec<Filter>,
    /// Extra snapshot summary properties (run id, message).
    pub properties: HashMap<String, String>,
}

/// What a compaction did (all zero, and no snapshot, when there was nothing to compact).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactResult {
    pub files_rewritten: usize,
    pub files_added: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows: u64,
    pub snapshot_id: Option<i64>,
    pub commit_retries: u32,
}

/// Consecutive small files of one partition that become one stream of rows.
#[derive(Debug)]
struct Run {
    partition: Struct,
    files: Vec<FileToRead>,
}

/// Compacts `table` (loaded from a branch). Every file it writes is named in `uncommitted`,
/// for the caller to remove when this fails (no run is still writing when it returns);
/// dropped mid-way, `uncommitted` aborts the runs and removes their files.
pub async fn compact(
    catalog: &Catalog,
    io: &FileIO,
    table: LoadedTable,
    options: &CompactOptions,
    uncommitted: &Uncommitted,
) -> Result<CompactResult> {
    let target_file_size = match options.target_file_size {
        Some(size) => size,
        None => target_file_bytes(&table.metadata)
            .map_err(|e| e.in_table(&table.ident.to_string()))? as u64,
    };
    if target_file_size == 0 {
        return Err(Error::invalid(
            "target_file_size must be more than 0 bytes",
            "pass the size compacted files should have, e.g. 256 MiB",
        ));
    }
    let predicate = bind_predicate(&table, &options.filters)?;
    let (files, mut reads) = live_files_for_commit(io, &table, MAIN).await?;
    // Judged on the live files planning read (as a scan prunes them): no second read of the
    // manifests. Every live file is kept in `files`: a delete file the filter's files share
    // with others must stay.
    let candidates = files.iter().filter(|f| {
        predicate.as_ref().is_none_or(|predicate| {
            let spec = table.metadata.partition_spec_by_id(f.data.spec_id);
            file_match(predicate, &f.data.file, spec.map(|s| s.as_ref())) != FileMatch::Never
        })
    });
    let spec = table.metadata.default_partition_spec().clone();
    let partition_type = (spec.partition_type(table.metadata.current_schema()))
        .context(|| format!("typing the partition values of {}", table.ident))?;
    let runs = plan_runs(
        candidates.cloned().collect(),
        (spec.spec_id(), &partition_type),
        target_file_size,
    );
    if runs.is_empty() {
        return Ok(CompactResult::default());
    }
    let removed: Vec<DataFile> = runs
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.data.file.clone()))
        .collect();
    let folded = folded_deletes(&files, &removed);
    // The commit removes only these: it needs no more of what planning read.
    reads.keep_for(removed.iter().chain(&folded).map(|f| f.file_path()));
    let written = uncommitted.files();
    let added = rewrite_runs(io, &table, runs, target_file_size, written).await?;
    let mut result = CompactResult {
        files_rewritten: removed.len(),
        files_added: added.len(),
        bytes_before: removed.iter().map(|f| f.file_size_in_bytes()).sum(),
        bytes_after: added.iter().map(|f| f.file_size_in_bytes()).sum(),
        rows: added.iter().map(|f| f.record_count()).sum(),
        ..Default::default()
    };
    let change = SnapshotChange {
        branch: MAIN.to_string(),
        added_files: added,
        removed_files: removed.into_iter().chain(folded).collect(),
        properties: options.properties.clone(),
        operation: Some(Operation::Replace),
        rewrite_manifests: false,
        written_by: Some(uncommitted.guard()),
    };
    // Rows others added meanwhile are untouched by this commit; files others removed meanwhile
    // are refused by `commit` itself (every removed file must still be live).
    uncommitted.committing();
    let outcome = commit_planned(catalog, io, table, &change, &|_| Ok(()), &reads).await?;
    result.snapshot_id = Some(outcome.snapshot_id);
    result.commit_retries = outcome.retries;
    Ok(result)
}

/// `filters` bound to the table's current schema (`None`: no filter); a bad filter is an
/// error before anything is read.
fn bind_predicate(table: &LoadedTable, filters: &[Filter]) -> Result<Option<BoundPredicate>> {
    let schema = table.metadata.current_schema();
    let name = table.ident.to_string();
    bind_filters(filters, schema)
        .map_err(|e| e.in_table(&name))?
        .map(|p| p.bind(schema.clone(), true))
        .transpose()
        .context(|| format!("binding the filter to {name}"))
}

/// The runs to rewrite: per partition of spec `spec_id`, its files below 3/4 of `target` and
/// those other engines' delete files apply to (whose deletes the rewrite folds in), in commit
/// order, cut into consecutive runs of at most `target` bytes; a run of one small file without
/// deletes stays. Partition values are taken as `partition_type` (the spec's under the
/// current schema) says: a file from before a promotion of a source column lands in the same
/// partition as files written since.
fn plan_runs(
    files: Vec<FileToRead>,
    (spec_id, partition_type): (i32, &StructType),
    target: u64,
) -> Vec<Run> {
    let small = target - target / 4;
    let mut files: Vec<FileToRead> = files
        .into_iter()
        .filter(|f| {
            f.data.spec_id == spec_id
                && (f.data.file.file_size_in_bytes() < small || !f.deletes.is_empty())
        })
        .collect();
    // Stable: files of one commit keep their manifest order.
    files.sort_by_key(|f| f.data.sequence_number);
    let mut partitions: Vec<(Struct, Vec<FileToRead>)> = Vec::new();
    let mut index: HashMap<Struct, usize> = HashMap::new();
    for live in files {
        let partition = promoted(live.data.file.partition(), partition_type);
        let i = *index.entry(partition.clone()).or_insert_with(|| {
            partitions.push((partition, Vec::new()));
            partitions.len() - 1
        });
        partitions[i].1.push(live);
    }
    let mut runs = Vec::new();
    for (partition, files) in partitions {
        let mut run: Vec<FileToRead> = Vec::new();
        let mut bytes = 0;
        for file in files {
            let size = file.data.file.file_size_in_bytes();
            if !run.is_empty() && bytes + size > target {
                runs.push(Run {
                    partition: partition.clone(),
                    files: std::mem::take(&mut run),
                });
                bytes = 0;
            }
            bytes += size;
            run.push(file);
        }
        runs.push(Run {
            partition,
            files: run,
        });
    }
    runs.retain(|r| r.files.len() > 1 || r.files.iter().any(|f| !f.deletes.is_empty()));
    runs
}

/// The delete files that apply to rewritten files only: once those are removed (their rows
/// written again without the deleted ones) they apply to nothing and go too.
fn folded_deletes(files: &[FileToRead], removed: &[DataFile]) -> Vec<DataFile> {
    let removed: HashSet<&str> = removed.iter().map(|f| f.file_path()).collect();
    let (gone, kept): (Vec<&FileToRead>, Vec<&FileToRead>) = files
        .iter()
        .partition(|f| removed.contains(f.data.file.file_path()));
    let still_used: HashSet<&str> = kept
        .iter()
        .flat_map(|f| f.deletes.iter().map(|d| d.file.file_path()))
        .collect();
    let mut folded: Vec<DataFile> = Vec::new();
    for delete in gone.iter().flat_map(|f| &f.deletes) {
        let path = delete.file.file_path();
        if !still_used.contains(path) && !folded.iter().any(|d| d.file_path() == path) {
            folded.push(delete.file.clone());
        }
    }
    folded
}

/// What every run's reader and writer share.
struct Layout {
    io: FileIO,
    schema: SchemaRef,
    spec: PartitionSpecRef,
    arrow: arrow_schema::SchemaRef,
    /// Every column of the current schema, matched by field id in each file.
    projection: Projection,
    deletes: deletes::Loader,
    writers: FileWriterBuilder,
}

/// Rewrites the runs, as many at a time as there are cores; returns the files written in run
/// order. Every run is waited for, even after one failed.
async fn rewrite_runs(
    io: &FileIO,
    table: &LoadedTable,
    runs: Vec<Run>,
    target: u64,
    written: &WrittenFiles,
) -> Result<Vec<DataFile>> {
    let metadata = &table.metadata;
    let prefix = format!("{}-compact", uuid::Uuid::now_v7());
    let layout = Arc::new(Layout {
        io: io.clone(),
        schema: metadata.current_schema().clone(),
        spec: metadata.default_partition_spec().clone(),
        arrow: arrow_schema_of(metadata.current_schema())?,
        projection: Projection::new(metadata, metadata.current_schema())?,
        deletes: deletes::Loader::default(),
        writers: file_writer_builder(
            io,
            metadata,
            &prefix,
            usize::try_from(target).unwrap_or(usize::MAX),
            written,
        )?,
    });
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut done = stream::iter(runs)
        .map(|run| written.spawn(rewrite_run(layout.clone(), run)))
        .buffered(parallelism);
    let mut added = Vec::new();
    let mut failure = None;
    while let Some(joined) = done.next().await {
        let outcome = joined.unwrap_or_else(|e| {
            Err(Error::invalid(
                format!("a compaction task failed: {e}"),
                "this is a bug; please report it",
            ))
        });
        match outcome {
            Ok(files) => added.extend(files),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(added),
    }
}

/// Copies the rows of one run, file after file, into new files of its partition.
async fn rewrite_run(layout: Arc<Layout>, run: Run) -> Result<Vec<DataFile>> {
    let partition = (!layout.spec.is_unpartitioned()).then_some(&run.partition);
    let mut writer = open_writer(&layout.writers, &layout.spec, &layout.schema, partition).await?;
    for file in &run.files {
        let file_deletes = layout
            .deletes
            .for_file(&layout.io, &layout.projection, file)
            .await?;
        let opened = ProjectedFile::open(&layout.io, &file.data.file, &layout.projection)
            .await?
            .with_deletes(file_deletes);
        let mut batches = opened.batches()?;
        while let Some(batch) = batches.next().await {
            writer
                // Every column is read (the initial-default of those a file lacks): no default
                // is left to apply.
                .write(cast_to_schema(&batch?, &layout.arrow, &[])?)
                .await
                .context(|| "writing a compacted file".into())?;
        }
    }
    writer
        .close()
        .await
        .context(|| "closing a compacted file".into())
}
