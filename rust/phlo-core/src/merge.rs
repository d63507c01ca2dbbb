//! The upsert engine. A merge replaces, as one atomic overwrite snapshot, every table row whose
//! unique key appears in the batch, and adds the batch's rows:
//!
//! 1. plan: only data files whose key range (column min/max) can hold a batch key are read;
//! 2. rewrite: each candidate file is read on its own and, if it holds batch keys, written again
//!    without those rows (files without matches are left alone);
//! 3. write the batch's rows; 4. commit once (copy-on-write, readable by every engine).
//!
//! Memory is bounded by the batch plus one data file, not by the table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Int32Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_row::{OwnedRow, RowConverter, SortField};
use arrow_schema::{DataType, SchemaRef as ArrowSchemaRef};
use arrow_select::filter::filter_record_batch;
use hashbrown::HashSet;
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::catalog::SqliteCatalog;
use crate::dedupe::{DedupeMethod, dedupe, encode};
use crate::error::{Context, Error, Location, Result};
use crate::iceberg::LoadedTable;
use crate::iceberg::commit::{
    ConcurrentChanges, SnapshotChange, commit, commit_append, live_data_files,
};
use crate::iceberg::write::DataFileSink;
use crate::schema::cast_to_schema;

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
    pub branch: String,
    pub properties: HashMap<String, String>,
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
    pub files_added: u64,
    pub files_removed: u64,
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

/// Merges `batch` (already cast to the table schema) into `table`. On error, the files this
/// merge wrote are returned for removal by the caller via `written`.
pub async fn merge(
    catalog: &SqliteCatalog,
    io: &FileIO,
    table: LoadedTable,
    batch: RecordBatch,
    options: &MergeOptions,
    written: &mut Vec<String>,
) -> Result<MergeResult> {
    let name = table.ident.to_string();
    let mut phases = Phases::new();
    check_keys(&batch, &options.unique_key).map_err(|e| e.in_table(&name))?;
    let (batch, duplicates_dropped) = match options.dedupe {
        Some(method) => {
            let deduped = dedupe(
                &batch,
                &options.unique_key,
                method,
                options.order_by.as_deref(),
            )
            .map_err(|e| e.in_table(&name))?;
            (deduped.batch, deduped.duplicates_dropped)
        }
        None => (batch, 0),
    };
    phases.end("dedupe");
    let mut result = MergeResult {
        duplicates_dropped,
        ..Default::default()
    };
    let keys = match options.strategy {
        MergeStrategy::Merge => Some(BatchKeys::new(&batch, &options.unique_key)?),
        MergeStrategy::Append => None,
    };
    let key_field = table
        .metadata
        .current_schema()
        .field_by_name(&options.unique_key[0])
        .map(|f| f.id);
    let prefix = uuid::Uuid::now_v7().to_string();
    let mut sink = DataFileSink::new(io, &table.metadata, &prefix)?;

    let change =
        match &keys {
            None => {
                sink.write(batch.clone()).await?;
                let files = sink.finish().await?;
                written.extend(files.iter().map(|f| f.file_path().to_string()));
                phases.end("write");
                result.rows_inserted = batch.num_rows() as u64;
                SnapshotChange {
                    branch: options.branch.clone(),
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
                    at: Location { table: Some(name), column: Some(options.unique_key.join(", ")) },
                    hint: "set merge_config={\"deduplication_method\": \"last\"} (or first/hash), \
                           or fix the duplicates upstream"
                        .into(),
                });
                }
                let live = live_data_files(io, &table, &options.branch).await?;
                let candidates: Vec<DataFile> = live
                    .into_iter()
                    .filter(|f| keys.may_be_in(f, key_field))
                    .collect();
                phases.end("plan");
                result.files_scanned = candidates.len() as u64;
                let target = crate::schema::arrow_schema_of(table.metadata.current_schema())?;
                let mut removed = Vec::new();
                let mut matched_keys: HashSet<OwnedRow> = HashSet::new();
                let mut rows_removed = 0u64;
                for file in candidates {
                    let kept =
                        rewrite_without_keys(io, &file, &target, keys, &mut matched_keys).await?;
                    if let Some((kept, matched)) = kept {
                        rows_removed += matched;
                        for part in kept {
                            sink.write(part).await?;
                        }
                        removed.push(file);
                    }
                }
                phases.end("rewrite");
                sink.write(batch.clone()).await?;
                let files = sink.finish().await?;
                written.extend(files.iter().map(|f| f.file_path().to_string()));
                phases.end("write");
                result.rows_updated = matched_keys.len() as u64;
                result.rows_deleted = rows_removed - result.rows_updated;
                result.rows_inserted = batch.num_rows() as u64 - result.rows_updated;
                result.files_removed = removed.len() as u64;
                SnapshotChange {
                    branch: options.branch.clone(),
                    added_files: files,
                    removed_files: removed,
                    ..Default::default()
                }
            }
        };
    result.files_added = change.added_files.len() as u64;
    result.bytes_written = change
        .added_files
        .iter()
        .map(|f| f.file_size_in_bytes())
        .sum();
    let mut change = change;
    change.properties = options.properties.clone();
    change.properties.extend(summary_metrics(&result));

    let outcome = match keys {
        None => commit_append(catalog, io, table, &change).await?,
        Some(keys) => {
            // A concurrent write that may hold keys of this batch would leave duplicates (a
            // lost update); any other concurrent write is safe to commit over.
            let validate = move |concurrent: &ConcurrentChanges<'_>| match concurrent
                .added_files
                .iter()
                .find(|f| keys.may_be_in(f, key_field))
            {
                Some(file) => Err(Error::CommitConflict {
                    table: name.clone(),
                    message: format!(
                        "a concurrent write added {} whose keys may overlap this merge's",
                        file.file_path()
                    ),
                }),
                None => Ok(()),
            };
            commit(catalog, io, table, &change, &validate).await?
        }
    };
    phases.end("commit");
    result.snapshot_id = outcome.snapshot_id;
    result.commit_retries = outcome.retries;
    result.timings = phases.done;
    Ok(result)
}

fn check_keys(batch: &RecordBatch, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::invalid(
            "unique_key is empty",
            "name the column(s) that identify a row",
        ));
    }
    key_arrays(batch, keys).map(|_| ())
}

fn key_arrays(batch: &RecordBatch, keys: &[String]) -> Result<Vec<ArrayRef>> {
    keys.iter()
        .map(|key| {
            batch.column_by_name(key).cloned().ok_or_else(|| {
                Error::schema(
                    "unique key column is not in the table",
                    Location {
                        table: None,
                        column: Some(key.clone()),
                    },
                    "set unique_key to columns of the table",
                )
            })
        })
        .collect()
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

/// The batch's keys: full (composite) keys for membership, and the first key column's sorted
/// values for range pruning against file statistics.
struct BatchKeys {
    names: Vec<String>,
    converter: RowConverter,
    members: HashSet<Vec<u8>>,
    first: RowConverter,
    first_type: DataType,
    first_sorted: Vec<Vec<u8>>,
}

impl BatchKeys {
    fn new(batch: &RecordBatch, key: &[String]) -> Result<Self> {
        let arrays = key_arrays(batch, key)?;
        let converter = RowConverter::new(
            arrays
                .iter()
                .map(|a| SortField::new(a.data_type().clone()))
                .collect(),
        )
        .context(|| "encoding keys".into())?;
        let rows = converter
            .convert_columns(&arrays)
            .context(|| "encoding keys".into())?;
        let members: HashSet<Vec<u8>> = rows.iter().map(|r| r.as_ref().to_vec()).collect();
        let first_type = arrays[0].data_type().clone();
        let first = RowConverter::new(vec![SortField::new(first_type.clone())])
            .context(|| "encoding keys".into())?;
        let first_rows = encode(batch, &key[..1])?;
        let mut first_sorted: Vec<Vec<u8>> =
            first_rows.iter().map(|r| r.as_ref().to_vec()).collect();
        first_sorted.sort_unstable();
        first_sorted.dedup();
        Ok(Self {
            names: key.to_vec(),
            converter,
            members,
            first,
            first_type,
            first_sorted,
        })
    }

    fn distinct(&self) -> usize {
        self.members.len()
    }

    /// Whether `file` may hold one of the keys: false only when the first key column's
    /// min/max statistics prove no batch key falls in the file's range.
    fn may_be_in(&self, file: &DataFile, field_id: Option<i32>) -> bool {
        let Some(id) = field_id else { return true };
        let (Some(lower), Some(upper)) =
            (file.lower_bounds().get(&id), file.upper_bounds().get(&id))
        else {
            return true;
        };
        let (Some(lower), Some(upper)) = (self.encode_bound(lower), self.encode_bound(upper))
        else {
            return true;
        };
        let start = self
            .first_sorted
            .partition_point(|k| k.as_slice() < lower.as_slice());
        self.first_sorted
            .get(start)
            .is_some_and(|k| k.as_slice() <= upper.as_slice())
    }

    /// A statistics bound as the row encoding of the key column's type (`None` if the type is
    /// not one phlo prunes on: then the file is always read).
    fn encode_bound(&self, bound: &Datum) -> Option<Vec<u8>> {
        let array: ArrayRef = match (bound.literal(), &self.first_type) {
            (PrimitiveLiteral::Long(v), DataType::Int64) => Arc::new(Int64Array::from(vec![*v])),
            (PrimitiveLiteral::Int(v), DataType::Int32) => Arc::new(Int32Array::from(vec![*v])),
            (PrimitiveLiteral::Int(v), DataType::Date32) => Arc::new(Date32Array::from(vec![*v])),
            (PrimitiveLiteral::String(v), DataType::Utf8) => {
                Arc::new(StringArray::from(vec![v.as_str()]))
            }
            (PrimitiveLiteral::Binary(v), DataType::Binary) => {
                Arc::new(BinaryArray::from(vec![v.as_slice()]))
            }
            (PrimitiveLiteral::Long(v), DataType::Timestamp(_, tz)) => {
                Arc::new(TimestampMicrosecondArray::from(vec![*v]).with_timezone_opt(tz.clone()))
            }
            (PrimitiveLiteral::Int128(v), DataType::Decimal128(p, s)) => Arc::new(
                Decimal128Array::from(vec![*v])
                    .with_precision_and_scale(*p, *s)
                    .ok()?,
            ),
            _ => return None,
        };
        let rows = self.first.convert_columns(&[array]).ok()?;
        Some(rows.row(0).as_ref().to_vec())
    }
}

/// Reads one data file and, if it holds batch keys, returns its other rows (to be written
/// again) and how many rows matched; `None` when nothing matched (the file stays as it is).
async fn rewrite_without_keys(
    io: &FileIO,
    file: &DataFile,
    target: &ArrowSchemaRef,
    keys: &BatchKeys,
    matched_keys: &mut HashSet<OwnedRow>,
) -> Result<Option<(Vec<RecordBatch>, u64)>> {
    let path = file.file_path();
    let bytes = io
        .new_input(path)
        .context(|| format!("opening {path}"))?
        .read()
        .await
        .context(|| format!("reading {path}"))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|e| {
            Error::invalid(
                format!("cannot read data file {path}: {e}"),
                "the file may be corrupt",
            )
        })?;
    let mut kept = Vec::new();
    let mut matched = 0u64;
    for batch in reader {
        let batch = batch.context(|| format!("decoding {path}"))?;
        let batch = cast_to_schema(&known_columns(&batch, target)?, target)?;
        let key_columns = key_arrays(&batch, &keys.names)?;
        let rows = keys
            .converter
            .convert_columns(&key_columns)
            .context(|| "encoding keys".into())?;
        let mask: BooleanArray = rows
            .iter()
            .map(|row| {
                let hit = keys.members.contains(row.as_ref());
                if hit {
                    matched += 1;
                    matched_keys.insert(row.owned());
                }
                Some(!hit)
            })
            .collect();
        kept.push(filter_record_batch(&batch, &mask).context(|| "dropping replaced rows".into())?);
    }
    if matched == 0 {
        return Ok(None);
    }
    Ok(Some((
        kept.into_iter().filter(|b| b.num_rows() > 0).collect(),
        matched,
    )))
}

/// The columns of a data file that the table still has (a file written before a column was
/// dropped carries it; the rewrite leaves it out).
fn known_columns(batch: &RecordBatch, target: &ArrowSchemaRef) -> Result<RecordBatch> {
    let keep: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| target.field_with_name(f.name()).is_ok())
        .map(|(i, _)| i)
        .collect();
    batch
        .project(&keep)
        .context(|| "projecting a data file onto the table schema".into())
}
