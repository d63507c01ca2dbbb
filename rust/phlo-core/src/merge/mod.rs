//! The upsert engine. A merge replaces, as one atomic overwrite snapshot, every table row whose
//! unique key appears in the batch, and adds the batch's rows:
//!
//! 1. plan: only data files whose key range (column min/max) can hold a batch key are read;
//! 2. rewrite: each candidate file is read on its own (less the rows other engines' delete files
//!    removed) and, if it holds batch keys, written again without those rows (files without
//!    matches are left alone, their delete files still applying to them);
//! 3. write the batch's rows; 4. commit once.
//!
//! Step 2 is copy-on-write unless the write mode ([`mode`]: the table property
//! `write.merge.mode`, or the call's `write_mode`) says merge-on-read: then only the key
//! columns of each candidate are read ([`positions`]) and the replaced rows are marked in a
//! position-delete file beside it ([`crate::tables::delete_writer`]); `auto` decides per file.
//! Both land in one `overwrite` snapshot, data and delete manifests side by side.
//!
//! Memory is bounded by the batch plus about a row group per core of the file being rewritten
//! (a file's rows are held only until its first batch key is found), not by the table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{BooleanArray, RecordBatch};
use arrow_buffer::BooleanBufferBuilder;
use arrow_select::filter::filter_record_batch;
use futures::StreamExt;
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, DataFile};
use tokio::task::{JoinHandle, JoinSet};

mod keys;
pub mod mode;
mod plan;
pub(crate) mod positions;

use keys::BatchKeys;
use mode::MERGE_MODE;
pub use mode::WriteMode;

use crate::catalog::{Catalog, MAIN};
use crate::dedupe::{DedupeMethod, dedupe_keyed};
use crate::error::{Context, Error, Location, Result};
use crate::tables::commit::{ConcurrentChanges, SnapshotChange, commit_append, commit_planned};
use crate::tables::delete_writer::write_position_deletes;
use crate::tables::deletes::{self, FileToRead};
use crate::tables::discard::{Uncommitted, WrittenFiles};
use crate::tables::manifests::live_files_for_commit;
use crate::tables::plan_reads::PlanReads;
use crate::tables::write::DataFileSink;
use crate::tables::{LoadedTable, ProjectedFile, Projection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeStrategy {
    /// Add the rows (after optional dedupe); existing rows are untouched.
    Append,
    /// Upsert on the unique key.
    Merge,
}

impl MergeStrategy {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "append" => Ok(Self::Append),
            "merge" => Ok(Self::Merge),
            other => Err(Error::invalid(
                format!("unknown merge_strategy {other:?}"),
                "use \"merge\" (upsert on unique_key) or \"append\"",
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub unique_key: Vec<String>,
    pub strategy: MergeStrategy,
    /// Deduplicate the batch first; `None` requires the batch's keys to be unique already
    /// (for `merge`).
    pub dedupe: Option<DedupeMethod>,
    pub order_by: Option<String>,
    /// The catalog branch to merge into.
    pub ref_name: String,
    pub properties: HashMap<String, String>,
    /// Overrides the table's `write.merge.mode` for this merge.
    pub write_mode: Option<WriteMode>,
}

/// What a merge did. Timings are seconds per phase.
#[derive(Debug, Clone, Default)]
pub struct MergeResult {
    pub snapshot_id: i64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    /// Table rows removed beyond one per updated key (a key the table held several times).
    pub rows_deleted: u64,
    pub duplicates_dropped: u64,
    pub files_scanned: u64,
    /// Data files added (the batch's rows and rewritten files).
    pub files_added: u64,
    pub files_removed: u64,
    /// Position-delete files added (merge-on-read).
    pub delete_files_added: u64,
    pub bytes_written: u64,
    pub commit_retries: u32,
    pub timings: Vec<(&'static str, f64)>,
}

struct Phases {
    last: Instant,
    done: Vec<(&'static str, f64)>,
}

impl Phases {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            done: Vec::new(),
        }
    }

    fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.done.push((phase, (now - self.last).as_secs_f64()));
        self.last = now;
    }
}

/// Merges `batch` (already cast to the table schema) into `table`. Every data and delete file
/// it writes is named in `uncommitted`, for the caller to remove when it fails (nothing is
/// still being written when it returns); dropped mid-way, `uncommitted` aborts the batch's
/// writing and removes the files.
pub async fn merge(
    catalog: &Catalog,
    io: &FileIO,
    table: LoadedTable,
    batch: RecordBatch,
    options: &MergeOptions,
    uncommitted: &Uncommitted,
) -> Result<MergeResult> {
    let written = uncommitted.files();
    let name = table.ident.to_string();
    let mut phases = Phases::new();
    check_keys(&batch, &options.unique_key).map_err(|e| e.in_table(&name))?;
    let (batch, duplicates_dropped, distinct) = match options.dedupe {
        Some(method) => {
            let deduped = dedupe_keyed(
                &batch,
                &options.unique_key,
                method,
                options.order_by.as_deref(),
            )
            .map_err(|e| e.in_table(&name))?;
            (deduped.batch, deduped.duplicates_dropped, deduped.keys)
        }
        None => (batch, 0, None),
    };
    phases.end("dedupe");
    let mut result = MergeResult {
        duplicates_dropped,
        ..Default::default()
    };
    let keys = match options.strategy {
        // Keys dedupe hashed are not hashed again.
        MergeStrategy::Merge => Some(Arc::new(match distinct {
            Some(distinct) => BatchKeys::from_distinct(&batch, &options.unique_key, distinct)?,
            None => BatchKeys::new(&batch, &options.unique_key)?,
        })),
        MergeStrategy::Append => None,
    };
    let key_field = table
        .metadata
        .current_schema()
        .field_by_name(&options.unique_key[0])
        .map(|f| f.id);
    let prefix = uuid::Uuid::now_v7().to_string();
    let mut sink = DataFileSink::new(io, &table.metadata, &prefix, written)?;

    // What planning read of the table, for the commit to reuse.
    let mut planned = PlanReads::default();
    // The batch's rows being written on their own (merge-on-read).
    let mut aside = None;
    let change = async {
        Ok(match &keys {
            None => {
                sink.write(batch.clone()).await?;
                let files = sink.finish().await?;
                phases.end("write");
                result.rows_inserted = batch.num_rows() as u64;
                SnapshotChange {
                    branch: MAIN.to_string(),
                    added_files: files,
                    ..Default::default()
                }
            }
            Some(keys) => {
                if keys.distinct() < batch.num_rows() {
                    return Err(Error::Merge {
                        message: format!(
                            "the batch has {} rows but only {} distinct keys",
                            batch.num_rows(),
                            keys.distinct()
                        ),
                        at: Location {
                            table: Some(name.clone()),
                            column: Some(options.unique_key.join(", ")),
                        },
                        hint: "set merge_config={\"deduplication_method\": \"last\"} \
                               (or first/hash), or fix the duplicates upstream"
                            .into(),
                    });
                }
                let mode = WriteMode::resolve(&table, MERGE_MODE, options.write_mode)?;
                let (live, mut reads) = live_files_for_commit(io, &table, MAIN).await?;
                // Merge-on-read leaves the table's files in place: the batch's rows go to files
                // of their own, written (on object storage, uploaded) while the table's key
                // columns are read. Not before planning's reads: on one core, encoding them
                // held up the handling of those replies (S3 pinned: planning 45 ms, not 9).
                if mode != WriteMode::CopyOnWrite {
                    aside = Some(write_aside(io, &table, &prefix, written, batch.clone()));
                }
                let candidates =
                    plan::candidates(&table, live, &batch, (keys, key_field), &options.unique_key)?;
                // The commit removes only candidates (and their delete files): it needs no more
                // of what planning read.
                reads.keep_for(candidates.iter().flat_map(|f| {
                    let deletes = f.deletes.iter().map(|d| d.file.file_path());
                    std::iter::once(f.data.file.file_path()).chain(deletes)
                }));
                planned = reads;
                phases.end("plan");
                result.files_scanned = candidates.len() as u64;
                let projection = Projection::new(&table.metadata, table.metadata.current_schema())?;
                let key_ids = key_field_ids(&table, &options.unique_key)?;
                let deletes = deletes::Loader::default();
                let mut replacing = Replacing {
                    io,
                    table: &table,
                    files: (&prefix, written),
                    found: vec![false; keys.num_rows()],
                    rows_removed: 0,
                    removed: Vec::new(),
                    writing: JoinSet::new(),
                };
                let current_spec = table.metadata.default_partition_spec_id();
                // The key columns of the next candidate are read while the last one's matches are
                // taken (its delete file written in the background, or the file rewritten); a
                // file read whole is opened (its tail and footer fetched: on object storage a
                // round trip) in the background as soon as it is next, and its first row groups
                // read ahead, so the rewrite moves on to it without waiting on the store.
                let mut scans = futures::stream::iter(candidates)
                    .map(|file| {
                        let positional =
                            mode != WriteMode::CopyOnWrite && file.data.spec_id == current_spec;
                        let opening = (!positional).then(|| {
                            let (io, data) = (io.clone(), file.data.file.clone());
                            let projection = projection.clone();
                            tokio::spawn(async move {
                                let opened = ProjectedFile::open(&io, &data, &projection).await?;
                                Ok::<_, Error>(opened.read_ahead(rewrite_workers()))
                            })
                        });
                        let matcher = key_matcher(keys.clone());
                        let (columns, deletes) = ((&projection, key_ids.as_slice()), &deletes);
                        async move {
                            let hits = match positional {
                                true => Some(
                                    positions::find(io, &file, columns, deletes, matcher).await?,
                                ),
                                false => None,
                            };
                            Ok::<_, Error>((file, hits, opening))
                        }
                    })
                    .buffered(2);
                let scanned = async {
                    while let Some(scanned) = scans.next().await {
                        let (file, hits, opening) = scanned.map_err(|e| e.in_table(&name))?;
                        // Positional reading counts the rows it finds; a rewrite after it must not.
                        let mut counted = false;
                        if let Some(hits) = hits {
                            if replacing.by_positions(&file, hits, mode) {
                                continue;
                            }
                            counted = true;
                        }
                        // Rows other engines' delete files removed are not the table's: they are
                        // neither kept nor counted as updated.
                        let file_deletes = deletes.for_file(io, &projection, &file).await?;
                        let opened = match opening {
                            Some(task) => task
                                .await
                                .map_err(|e| Error::from_join("opening a data file", e))?,
                            None => ProjectedFile::open(io, &file.data.file, &projection).await,
                        };
                        let opened = opened
                            .map_err(|e| e.in_table(&name))?
                            .with_deletes(file_deletes);
                        let matched = rewrite_without_keys(
                            &opened,
                            keys.clone(),
                            &mut replacing.found,
                            &mut sink,
                        )
                        .await
                        .map_err(|e| e.in_table(&name))?;
                        if matched > 0 {
                            if !counted {
                                replacing.rows_removed += matched;
                            }
                            replacing.remove(file);
                        }
                    }
                    Ok::<_, Error>(())
                }
                .await;
                drop(scans);
                // Delete files still being written would outlive their removal: a failed scan
                // waits for them too.
                let delete_files = replacing.written_deletes().await;
                scanned?;
                let delete_files = delete_files?;
                let Replacing {
                    found,
                    rows_removed,
                    removed,
                    ..
                } = replacing;
                phases.end("rewrite");
                let mut files = match aside.take() {
                    Some(task) => joined(task).await?,
                    None => {
                        sink.write(batch.clone()).await?;
                        Vec::new()
                    }
                };
                files.extend(sink.finish().await?);
                phases.end("write");
                result.rows_updated = found.iter().filter(|f| **f).count() as u64;
                result.rows_deleted = rows_removed - result.rows_updated;
                result.rows_inserted = batch.num_rows() as u64 - result.rows_updated;
                result.files_removed = removed.iter().filter(|f| is_data(f)).count() as u64;
                result.delete_files_added = delete_files.len() as u64;
                SnapshotChange {
                    branch: MAIN.to_string(),
                    added_files: files.into_iter().chain(delete_files).collect(),
                    removed_files: removed,
                    ..Default::default()
                }
            }
        })
    }
    .await;
    let change = match change {
        Ok(change) => change,
        Err(e) => {
            // Files still being written would outlive their removal.
            let _ = sink.finish().await;
            if let Some(task) = aside {
                let _ = joined(task).await;
            }
            return Err(e);
        }
    };
    result.files_added = change.added_files.iter().filter(|f| is_data(f)).count() as u64;
    result.bytes_written = change
        .added_files
        .iter()
        .map(|f| f.file_size_in_bytes())
        .sum();
    let mut change = change;
    change.written_by = Some(uncommitted.guard());
    change.properties = options.properties.clone();
    change.properties.extend(summary_metrics(&result));
    if options.strategy == MergeStrategy::Merge {
        // Lets a branch holding this merge be rebased by key when it is published.
        change.properties.insert(
            crate::branch_merge::UNIQUE_KEY_PROPERTY.to_string(),
            options.unique_key.join(","),
        );
    }

    uncommitted.committing();
    let outcome = match keys {
        None => commit_append(catalog, io, table, &change).await?,
        Some(keys) => {
            // A concurrent write that may hold keys of this batch would leave duplicates (a
            // lost update); any other concurrent write is safe to commit over.
            let validate = move |concurrent: &ConcurrentChanges<'_>| match concurrent
                .added_files
                .iter()
                .zip(keys.may_be_in(concurrent.added_files.iter(), key_field))
                .find_map(|(file, overlaps)| overlaps.then_some(file))
            {
                Some(file) => Err(Error::conflict(
                    name.clone(),
                    format!(
                        "a concurrent write added {} whose keys may overlap this merge's",
                        file.file_path()
                    ),
                )),
                None => Ok(()),
            };
            commit_planned(catalog, io, table, &change, &validate, &planned).await?
        }
    };
    phases.end("commit");
    result.snapshot_id = outcome.snapshot_id;
    result.commit_retries = outcome.retries;
    result.timings = phases.done;
    Ok(result)
}

/// Writes `batch` to data files of its own (named after `prefix`, each name recorded in
/// `written`) on a task of its own, aborted if the merge is given up.
fn write_aside(
    io: &FileIO,
    table: &LoadedTable,
    prefix: &str,
    written: &WrittenFiles,
    batch: RecordBatch,
) -> JoinHandle<Result<Vec<DataFile>>> {
    let (io, metadata, files) = (io.clone(), table.metadata.clone(), written.clone());
    // Not the main sink's names: each sink numbers its files from 0.
    let prefix = format!("{prefix}-rows");
    written.spawn(async move {
        let mut sink = DataFileSink::new(&io, &metadata, &prefix, &files)?;
        let wrote = sink.write(batch).await;
        // Closed even after a failure, so that no file is still being written.
        let files = sink.finish().await;
        wrote.and(files)
    })
}

async fn joined(task: JoinHandle<Result<Vec<DataFile>>>) -> Result<Vec<DataFile>> {
    task.await
        .map_err(|e| Error::from_join("writing the batch's rows", e))?
}

/// What a merge removes from the table so far: the files it drops, the position deletes it
/// writes, and which batch rows replaced a table row.
struct Replacing<'a> {
    io: &'a FileIO,
    table: &'a LoadedTable,
    /// The prefix of the delete files' names, and where each name is recorded.
    files: (&'a str, &'a WrittenFiles),
    found: Vec<bool>,
    rows_removed: u64,
    /// Data files removed, with the delete files that applied to them alone.
    removed: Vec<DataFile>,
    /// The position-delete files being written, numbered in the order of their data files.
    writing: JoinSet<(usize, Result<DataFile>)>,
}

impl Replacing<'_> {
    /// Takes the positions a merge-on-read merge found in `file`: none, nothing to do; all its
    /// live rows, the file is dropped; otherwise, unless `mode` rewrites it, a position-delete
    /// file marking them starts being written. `false`: the caller rewrites the file
    /// (copy-on-write).
    fn by_positions(
        &mut self,
        file: &FileToRead,
        hits: positions::Positions,
        mode: WriteMode,
    ) -> bool {
        let replaced = hits.positions.len() as u64;
        for &tag in &hits.tags {
            self.found[tag as usize] = true;
        }
        self.rows_removed += replaced;
        if replaced == 0 {
            return true;
        }
        if replaced == hits.live_rows {
            self.remove(file.clone());
            return true;
        }
        if mode.rewrites(replaced, hits.live_rows, file.data.file.record_count()) {
            return false;
        }
        let (io, table, data) = (self.io.clone(), self.table.clone(), file.data.clone());
        let (prefix, written) = (self.files.0.to_string(), self.files.1.clone());
        let number = self.writing.len();
        self.writing.spawn(async move {
            let files = (prefix.as_str(), &written);
            let written = write_position_deletes(&io, &table, &data, &hits.positions, files);
            (number, written.await)
        });
        true
    }

    /// Waits for the position-delete files being written and returns them in the order of
    /// their data files.
    async fn written_deletes(&mut self) -> Result<Vec<DataFile>> {
        let mut files = Vec::new();
        let mut failure = None;
        while let Some(joined) = self.writing.join_next().await {
            match joined {
                Ok((number, Ok(file))) => files.push((number, file)),
                Ok((_, Err(e))) => {
                    failure.get_or_insert(e);
                }
                Err(e) => {
                    failure.get_or_insert(Error::from_join("writing position deletes", e));
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        files.sort_by_key(|(number, _)| *number);
        Ok(files.into_iter().map(|(_, file)| file).collect())
    }

    /// Removes a data file, and the delete files that pointed into it alone.
    fn remove(&mut self, file: FileToRead) {
        self.removed.extend(file.own_deletes().cloned());
        self.removed.push(file.data.file);
    }
}

/// Field ids of the key columns.
fn key_field_ids(table: &LoadedTable, unique_key: &[String]) -> Result<Vec<i32>> {
    let schema = table.metadata.current_schema();
    unique_key
        .iter()
        .map(|name| {
            schema
                .field_by_name(name)
                .map(|f| f.id)
                .ok_or_else(|| Error::InvalidInput {
                    message: format!("unique_key column {name} is not in the table"),
                    at: Location {
                        table: Some(table.ident.to_string()),
                        column: Some(name.clone()),
                    },
                    hint: "name columns the table has (see table.schema)".into(),
                })
        })
        .collect()
}

/// Matches the table rows whose key is in the batch, tagged with the batch row.
fn key_matcher(keys: Arc<BatchKeys>) -> positions::Matcher {
    Arc::new(move |batch| Ok(keys.matches(&keys.probe(batch)?)))
}

fn is_data(file: &DataFile) -> bool {
    file.content_type() == DataContentType::Data
}

fn check_keys(batch: &RecordBatch, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::invalid(
            "unique_key is empty",
            "name the column(s) that identify a row",
        ));
    }
    crate::keys::check_no_null_keys(batch, keys)
}

fn summary_metrics(result: &MergeResult) -> Vec<(String, String)> {
    [
        ("phlo.rows-inserted", result.rows_inserted),
        ("phlo.rows-updated", result.rows_updated),
        ("phlo.rows-deleted", result.rows_deleted),
        ("phlo.duplicates-dropped", result.duplicates_dropped),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Rewrites one data file into `sink` without the rows whose key is in the batch, if it holds
/// any; returns how many rows matched (0: nothing was written, the file stays as it is).
/// `found` marks the batch rows whose key the table held. The file's row groups are decoded
/// and filtered on as many threads as there are cores; their surviving rows stream to the
/// sink as soon as the file is known to match (until then they are held: a file without a
/// match is left alone).
async fn rewrite_without_keys(
    file: &ProjectedFile,
    keys: Arc<BatchKeys>,
    found: &mut [bool],
    sink: &mut DataFileSink,
) -> Result<u64> {
    let workers = rewrite_workers();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Filtered>(workers);
    let reading = file.read_parallel(workers, move |reader| {
        for batch in reader {
            // A closed channel: writing failed, and says so.
            if sender
                .blocking_send(filter_out_keys(&batch?, &keys)?)
                .is_err()
            {
                break;
            }
        }
        Ok(())
    });
    let writing = async {
        let mut matched = 0u64;
        let mut held = Vec::new();
        while let Some(part) = receiver.recv().await {
            matched += part.found.len() as u64;
            for i in part.found {
                found[i as usize] = true;
            }
            if part.kept.num_rows() > 0 {
                held.push(part.kept);
            }
            if matched > 0 {
                for kept in held.drain(..) {
                    sink.write(kept).await?;
                }
            }
        }
        Ok::<_, Error>(matched)
    };
    let (read, matched) = tokio::join!(reading, writing);
    read?;
    matched
}

/// Readers of one candidate file rewritten: one per core.
fn rewrite_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The rows of one decoded batch of a data file that survive a merge, and the batch rows whose
/// keys were found in it.
struct Filtered {
    kept: RecordBatch,
    found: Vec<u32>,
}

fn filter_out_keys(batch: &RecordBatch, keys: &BatchKeys) -> Result<Filtered> {
    let matches = keys.matches(&keys.probe(batch)?);
    if matches.is_empty() {
        return Ok(Filtered {
            kept: batch.clone(),
            found: Vec::new(),
        });
    }
    let mut keep = BooleanBufferBuilder::new(batch.num_rows());
    keep.append_n(batch.num_rows(), true);
    for &(row, _) in &matches {
        keep.set_bit(row as usize, false);
    }
    let mask = BooleanArray::new(keep.finish(), None);
    let kept = filter_record_batch(batch, &mask).context(|| "dropping replaced rows".into())?;
    let found = matches.into_iter().map(|(_, i)| i).collect();
    Ok(Filtered { kept, found })
}
