//! Deleting the rows that match a filter, copy-on-write, as one snapshot on a branch:
//!
//! Copy-on-write unless the write mode (table property `write.delete.mode`, or the call's
//! `write_mode`; see [`crate::merge::mode`]) says otherwise: merge-on-read reads the filter's
//! columns of each undecided file and marks the matching rows in a position-delete file beside
//! it (one `delete` snapshot); `auto` decides per file. A file every live row of which matches
//! is dropped in any mode.
//!
//! 1. plan: every live data file is judged by its statistics and the identity partition values
//!    of the spec it was written with ([`crate::tables::eval`]): a file no row of which can
//!    match is left alone, a file every row of which matches is dropped without being read;
//! 2. each remaining file is read, first only the filter's columns to count its matches; a file
//!    where some but not all rows match is then decoded again whole and written without them;
//! 3. commit once (`delete` when files are only dropped, `overwrite` when some were rewritten),
//!    refused when a concurrent write added files that may hold matching rows.
//!
//! A delete that matches nothing commits nothing. Files are streamed a row group at a time:
//! memory is about a row group and the writers' buffers, whatever the files' sizes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_arith::boolean::not;
use arrow_array::Array;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use arrow_select::filter::filter_record_batch;
use futures::StreamExt;
use iceberg::expr::{Bind, BoundPredicate};
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, DataFile, SchemaRef};

use crate::catalog::log::MESSAGE_PROPERTY;
use crate::catalog::{Catalog, MAIN, RefKind};
use crate::error::{Context, Error, Location, Result};
use crate::failpoint;
use crate::merge::WriteMode;
use crate::merge::mode::DELETE_MODE;
use crate::merge::positions::{self, Matcher};
use crate::schema::cast_to_schema;
use crate::tables::LoadedTable;
use crate::tables::commit::{ConcurrentChanges, SnapshotChange, commit_planned};
use crate::tables::delete_writer::write_position_deletes;
use crate::tables::deletes::{self, FileToRead};
use crate::tables::discard::{Uncommitted, WrittenFiles};
use crate::tables::eval::{FileMatch, file_match, referenced_field_ids, row_matches};
use crate::tables::filter::{Filter, bind_filters};
use crate::tables::manifests::live_files_for_commit;
use crate::tables::plan_reads::PlanReads;
use crate::tables::write::DataFileSink;
use crate::tables::{ProjectedFile, Projection};

/// What a delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteResult {
    /// The snapshot committed; `None` when no row matched (nothing was committed).
    pub snapshot_id: Option<i64>,
    pub rows_deleted: u64,
    /// Data files read: those whose statistics could not decide.
    pub files_scanned: u64,
    pub files_removed: u64,
    /// Files written with the surviving rows of partly matching files.
    pub files_added: u64,
    /// Position-delete files written (merge-on-read).
    pub delete_files_added: u64,
    pub bytes_written: u64,
    pub commit_retries: u32,
}

/// A delete whose files are written but not yet committed (see [`commit_delete`]). Dropped
/// without being committed, it removes the files it wrote (in the background).
pub struct DeletePlan {
    table: LoadedTable,
    predicate: BoundPredicate,
    change: SnapshotChange,
    result: DeleteResult,
    /// What planning read of the table, for the commit to reuse.
    reads: PlanReads,
    /// Every file the plan wrote (or began), removed if it does not commit.
    written: Uncommitted,
}

impl DeletePlan {
    /// What the delete will do if it commits (`snapshot_id` still `None`).
    pub fn result(&self) -> &DeleteResult {
        &self.result
    }
}

/// Plans the deletion of the rows of `table` (loaded from a branch) matching every filter,
/// writing the rewritten files. A bad filter or a tag is an `InvalidInput` error and nothing
/// is written. `properties` go into the snapshot summary; `phlo.message` (the log's message)
/// defaults to the filter.
pub async fn plan_delete(
    catalog: &Catalog,
    io: &FileIO,
    table: LoadedTable,
    filters: &[Filter],
    mut properties: HashMap<String, String>,
    write_mode: Option<WriteMode>,
) -> Result<DeletePlan> {
    let name = table.ident.to_string();
    let at = || Location {
        table: Some(name.clone()),
        column: None,
    };
    if catalog.ref_kind(&table.ref_name)? == Some(RefKind::Tag) {
        return Err(Error::InvalidInput {
            message: format!("{} is a tag", table.ref_name),
            at: at(),
            hint: "tags are immutable: delete on a branch".into(),
        });
    }
    let schema = table.metadata.current_schema().clone();
    let Some(unbound) = bind_filters(filters, &schema).map_err(|e| e.in_table(&name))? else {
        return Err(Error::InvalidInput {
            message: "delete needs a filter".into(),
            at: at(),
            hint: "pass filter=(column, op, value) or a list of them; to empty the table, drop \
                   and create it again"
                .into(),
        });
    };
    properties
        .entry(MESSAGE_PROPERTY.to_string())
        .or_insert_with(|| format!("delete from {name} where {unbound}"));
    let predicate = unbound
        .bind(schema.clone(), true)
        .context(|| format!("binding the filter to {name}"))?;
    let mode = WriteMode::resolve(&table, DELETE_MODE, write_mode)?;
    let (live, mut reads) = live_files_for_commit(io, &table, MAIN).await?;
    let prefix = uuid::Uuid::now_v7().to_string();
    // Dropped by a cancellation from here on, it removes what was written.
    let written = Uncommitted::new(io);
    let mut sink = DataFileSink::new(io, &table.metadata, &prefix, written.files())?;
    let mut chosen = Chosen::default();
    let planned = choose_files(
        io,
        (&table, &schema, mode),
        &predicate,
        live,
        (&mut sink, (&prefix, written.files())),
        &mut chosen,
    )
    .await;
    let added = sink.finish().await;
    drop(sink);
    let Chosen {
        mut result,
        removed,
        delete_files,
    } = chosen;
    let added = match (planned, added) {
        (Ok(()), Ok(added)) => added,
        (planned, added) => {
            let error = planned
                .and(added)
                .err()
                .unwrap_or_else(|| Error::internal("deleting rows", "a failure went unreported"));
            written.discard_after(&error).await;
            return Err(error);
        }
    };
    // The commit removes only these: it needs no more of what planning read.
    reads.keep_for(removed.iter().map(|f| f.file_path()));
    result.files_removed = removed
        .iter()
        .filter(|f| f.content_type() == DataContentType::Data)
        .count() as u64;
    result.files_added = added.len() as u64;
    result.delete_files_added = delete_files.len() as u64;
    let added: Vec<DataFile> = added.into_iter().chain(delete_files).collect();
    result.bytes_written = added.iter().map(|f| f.file_size_in_bytes()).sum();
    properties.insert("phlo.rows-deleted".into(), result.rows_deleted.to_string());
    Ok(DeletePlan {
        table,
        predicate,
        change: SnapshotChange {
            branch: MAIN.to_string(),
            added_files: added,
            removed_files: removed,
            properties,
            ..Default::default()
        },
        result,
        reads,
        written,
    })
}

/// Commits a planned delete (nothing when it matched no row). A concurrent write that added
/// files which may hold matching rows is a `CommitConflict` (those rows would survive the
/// delete unseen); the plan's files are removed on any error but `CommitStateUnknown`.
pub async fn commit_delete(
    catalog: &Catalog,
    io: &FileIO,
    plan: DeletePlan,
) -> Result<DeleteResult> {
    // A plan dropped here removes its files.
    failpoint::hit("delete.before-commit")?;
    let DeletePlan {
        table,
        predicate,
        change,
        mut result,
        reads,
        written,
    } = plan;
    if change.removed_files.is_empty() && change.added_files.is_empty() {
        return Ok(result);
    }
    // From here the files may land: they are removed only when the commit surely did not.
    let change = SnapshotChange {
        written_by: Some(written.guard()),
        ..change
    };
    written.committing();
    let name = table.ident.to_string();
    // Judged by column statistics only: the concurrent writer may have used a newer spec.
    let validate = |concurrent: &ConcurrentChanges<'_>| match concurrent
        .added_files
        .iter()
        .find(|f| file_match(&predicate, f, None) != FileMatch::Never)
    {
        Some(file) => Err(Error::conflict(
            name.clone(),
            format!(
                "a concurrent write added {}, which may hold rows this delete removes",
                file.file_path()
            ),
        )),
        None => Ok(()),
    };
    match commit_planned(catalog, io, table, &change, &validate, &reads).await {
        Ok(outcome) => {
            result.snapshot_id = Some(outcome.snapshot_id);
            result.commit_retries = outcome.retries;
            Ok(result)
        }
        Err(e) => {
            written.discard_after(&e).await;
            Err(e)
        }
    }
}

/// What a delete removes so far.
#[derive(Default)]
struct Chosen {
    result: DeleteResult,
    /// Data files dropped or rewritten, with the delete files that pointed into them alone.
    removed: Vec<DataFile>,
    /// Position-delete files written (merge-on-read).
    delete_files: Vec<DataFile>,
}

impl Chosen {
    fn remove(&mut self, file: FileToRead) {
        self.removed.extend(file.own_deletes().cloned());
        self.removed.push(file.data.file);
    }
}

/// Judges every live file: drops those every row of which matches, and writes the surviving
/// rows of partly matching ones into `sink` (copy-on-write) or their matching positions into
/// position-delete files (merge-on-read), as `mode` says per file.
async fn choose_files(
    io: &FileIO,
    (table, schema, mode): (&LoadedTable, &SchemaRef, WriteMode),
    predicate: &BoundPredicate,
    live: Vec<FileToRead>,
    (sink, files): (&mut DataFileSink, (&str, &WrittenFiles)),
    chosen: &mut Chosen,
) -> Result<()> {
    let filter_ids = referenced_field_ids(predicate);
    let all = Projection::new(&table.metadata, schema)?;
    let filter_columns = all.of_field_ids(&filter_ids)?;
    let target = all.schema().clone();
    let deletes = deletes::Loader::default();
    let current_spec = table.metadata.default_partition_spec_id();
    for live in live {
        let spec = table.metadata.partition_spec_by_id(live.data.spec_id);
        let file = &live.data.file;
        // With delete files applying, the rows left are known only by reading them.
        let judged = match file_match(predicate, file, spec.map(|s| s.as_ref())) {
            FileMatch::Always if !live.deletes.is_empty() => FileMatch::Maybe,
            judged => judged,
        };
        match judged {
            FileMatch::Never => continue,
            FileMatch::Always => {
                chosen.result.rows_deleted += file.record_count();
                chosen.remove(live);
                continue;
            }
            FileMatch::Maybe => chosen.result.files_scanned += 1,
        }
        // Positions are written only in the current spec (a delete file takes its data
        // file's partition, which the manifest describes by the current spec).
        if mode != WriteMode::CopyOnWrite && live.data.spec_id == current_spec {
            let found = positions::find(
                io,
                &live,
                (&all, &filter_ids),
                &deletes,
                filter_matcher(predicate.clone()),
            )
            .await?;
            let matched = found.positions.len() as u64;
            chosen.result.rows_deleted += matched;
            if matched == 0 {
                continue;
            }
            if matched < found.live_rows
                && !mode.rewrites(matched, found.live_rows, file.record_count())
            {
                let delete =
                    write_position_deletes(io, table, &live.data, &found.positions, files).await?;
                chosen.delete_files.push(delete);
                continue;
            }
            if matched < found.live_rows {
                let file_deletes = deletes.for_file(io, &all, &live).await?;
                let whole = ProjectedFile::open(io, file, &all)
                    .await?
                    .with_deletes(file_deletes);
                rewrite_without_matches(&whole, predicate, &target, sink).await?;
            }
            chosen.remove(live);
            continue;
        }
        // Equality deletes compare columns the filter may not read.
        let first = match live.deletes.is_empty() {
            true => &filter_columns,
            false => &all,
        };
        let file_deletes = deletes.for_file(io, &all, &live).await?;
        let opened = ProjectedFile::open(io, file, first)
            .await?
            .with_deletes(file_deletes);
        let (mut matched, mut rows) = (0u64, 0u64);
        let mut batches = opened.batches()?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            matched += row_matches(predicate, &batch)?.true_count() as u64;
        }
        if matched == 0 {
            continue;
        }
        if matched < rows {
            let whole = opened.reproject(&all)?;
            rewrite_without_matches(&whole, predicate, &target, sink).await?;
        }
        chosen.result.rows_deleted += matched;
        chosen.remove(live);
    }
    Ok(())
}

/// Matches the rows `predicate` holds for (not those where it is null).
fn filter_matcher(predicate: BoundPredicate) -> Matcher {
    Arc::new(move |batch| {
        let matches = row_matches(&predicate, batch)?;
        Ok((0..matches.len())
            .filter(|&row| matches.is_valid(row) && matches.value(row))
            .map(|row| (row as u32, 0))
            .collect())
    })
}

/// Streams one file into `sink` without the rows matching `predicate`.
async fn rewrite_without_matches(
    file: &ProjectedFile,
    predicate: &BoundPredicate,
    target: &ArrowSchemaRef,
    sink: &mut DataFileSink,
) -> Result<()> {
    let mut batches = file.batches()?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let keep = not(&row_matches(predicate, &batch)?).context(|| "inverting a mask".into())?;
        let kept = filter_record_batch(&batch, &keep).context(|| "dropping rows".into())?;
        // Every column is read: no default is left to apply.
        sink.write(cast_to_schema(&kept, target, &[])?).await?;
    }
    Ok(())
}
