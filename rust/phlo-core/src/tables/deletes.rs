//! Delete files merge-on-read writes leave (phlo's own, see [`super::delete_writer`], or other
//! engines'): which apply to a data file, by the Iceberg spec's sequence-number and partition
//! rules, and which of its rows they delete.
//!
//! - A position delete (`file_path`, `pos`) applies to data files of the same or an earlier
//!   data sequence number; an equality delete (rows equal to a deleted row on its equality
//!   columns, null equal to null) to data files of an earlier one only.
//! - Either applies only within its partition (same spec and values), unless written with an
//!   unpartitioned spec (then to every partition).
//!
//! Each delete file is read once per scan however many data files it applies to, and the delete
//! files of one data file concurrently. Deleted positions become a sorted list per data file,
//! which the reader turns into the rows it skips ([`super::row_selection`]).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_row::{RowConverter, SortField};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, DataFile, DataFileFormat, TableMetadata};
use tokio::sync::OnceCell;

use super::LoadedTable;
use super::delete_writer::{POS_ID, position_delete_schema};
use super::manifests::LiveFile;
use super::promoted_partitions::same_partition;
use super::read::{ProjectedFile, Projection};
use crate::error::{Context, Error, Location, Result};

/// A data file with the delete files that apply to it.
#[derive(Debug, Clone)]
pub struct FileToRead {
    pub data: LiveFile,
    pub deletes: Vec<LiveFile>,
}

impl FileToRead {
    pub fn without_deletes(data: LiveFile) -> Self {
        Self {
            data,
            deletes: vec![],
        }
    }

    /// The delete files that name this data file as the only one they apply to (as phlo's
    /// merge-on-read writes them): they go when the data file goes.
    pub fn own_deletes(&self) -> impl Iterator<Item = &DataFile> + '_ {
        let path = self.data.file.file_path();
        self.deletes
            .iter()
            .filter(move |d| d.file.referenced_data_file().as_deref() == Some(path))
            .map(|d| &d.file)
    }

    /// Field ids of the columns its equality deletes compare.
    pub fn equality_ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.deletes
            .iter()
            .filter(|d| d.file.content_type() == DataContentType::EqualityDeletes)
            .flat_map(|d| d.file.equality_ids().unwrap_or_default())
    }
}

/// Pairs each data file with the delete files that apply to it.
pub fn attach(
    table: &LoadedTable,
    data: Vec<LiveFile>,
    deletes: Vec<LiveFile>,
) -> Result<Vec<FileToRead>> {
    if let Some(dv) = deletes
        .iter()
        .find(|d| d.file.file_format() != DataFileFormat::Parquet)
    {
        return Err(Error::InvalidInput {
            message: format!(
                "delete file {} is {}; phlo reads Parquet delete files only (not deletion \
                 vectors)",
                dv.file.file_path(),
                dv.file.file_format()
            ),
            at: Location {
                table: Some(table.ident.to_string()),
                column: None,
            },
            hint: "compact the table with the engine that wrote the deletes".into(),
        });
    }
    Ok(data
        .into_iter()
        .map(|data| {
            let deletes = deletes
                .iter()
                .filter(|d| applies(&table.metadata, &data, d))
                .cloned()
                .collect();
            FileToRead { data, deletes }
        })
        .collect())
}

/// The spec's rule for whether `delete` applies to `data`.
fn applies(metadata: &TableMetadata, data: &LiveFile, delete: &LiveFile) -> bool {
    let sequence = match delete.file.content_type() {
        DataContentType::PositionDeletes => {
            delete.sequence_number >= data.sequence_number
                && delete
                    .file
                    .referenced_data_file()
                    .is_none_or(|p| p == data.file.file_path())
        }
        DataContentType::EqualityDeletes => delete.sequence_number > data.sequence_number,
        DataContentType::Data => false,
    };
    let global = metadata
        .partition_spec_by_id(delete.spec_id)
        .is_some_and(|s| s.is_unpartitioned());
    sequence
        && (global
            || (delete.spec_id == data.spec_id
                && same_partition(delete.file.partition(), data.file.partition())))
}

/// The rows of one data file its delete files remove.
#[derive(Debug, Default)]
pub struct FileDeletes {
    /// Deleted row positions, ascending, each once.
    positions: Vec<i64>,
    equality: Vec<Arc<EqualityDeletes>>,
}

impl FileDeletes {
    /// Deletes of the rows at `positions` (ascending, each once) only.
    #[cfg(test)]
    pub(crate) fn of_positions(positions: Vec<i64>) -> Self {
        Self {
            positions,
            equality: Vec::new(),
        }
    }

    /// Every deleted position (ascending, each once).
    pub fn positions(&self) -> &[i64] {
        &self.positions
    }

    /// The positions deleted among the file's rows `rows` (ascending, each once).
    pub fn positions_in(&self, rows: Range<i64>) -> &[i64] {
        let start = self.positions.partition_point(|&p| p < rows.start);
        let end = start + self.positions[start..].partition_point(|&p| p < rows.end);
        &self.positions[start..end]
    }

    /// Whether rows are deleted by value (equality deletes): those can only be left out once
    /// decoded.
    pub fn by_value(&self) -> bool {
        !self.equality.is_empty()
    }

    /// Which rows of `batch` (read with a projection holding every equality column) survive
    /// the equality deletes; `None` when none apply.
    pub fn keep_by_value(&self, batch: &RecordBatch) -> Result<Option<BooleanArray>> {
        if self.equality.is_empty() {
            return Ok(None);
        }
        let mut keep = vec![true; batch.num_rows()];
        for equality in &self.equality {
            equality.mark(batch, &mut keep)?;
        }
        Ok(Some(BooleanArray::from(keep)))
    }
}

/// The deleted rows of one equality delete file, on its equality columns.
#[derive(Debug)]
struct EqualityDeletes {
    columns: Vec<String>,
    converter: RowConverter,
    rows: HashSet<Box<[u8]>>,
}

impl EqualityDeletes {
    /// Sets `keep` false for the rows of `batch` equal to a deleted row.
    fn mark(&self, batch: &RecordBatch, keep: &mut [bool]) -> Result<()> {
        let columns = self
            .columns
            .iter()
            .map(|c| {
                batch.column_by_name(c).cloned().ok_or_else(|| {
                    Error::invalid(
                        format!("column {c} of an equality delete was not read"),
                        "this is a bug; please report it",
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let encoded = self
            .converter
            .convert_columns(&columns)
            .context(|| "encoding rows for equality deletes".into())?;
        for (i, row) in encoded.iter().enumerate() {
            if keep[i] && self.rows.contains(row.as_ref()) {
                keep[i] = false;
            }
        }
        Ok(())
    }
}

/// Delete files one data file's deletes are read from at once.
const CONCURRENT_LOADS: usize = 8;

/// What one delete file holds, read once.
#[derive(Debug)]
enum Loaded {
    /// Deleted positions by data file path.
    Positions(HashMap<String, Vec<i64>>),
    Equality(Arc<EqualityDeletes>),
}

/// Reads the delete files of the data files of one scan (or merge, diff, compaction). A delete
/// file that may apply to several data files is read on first use and kept for the others; one
/// that names its only data file (as phlo's merge-on-read writes them) is read for it and not
/// kept, so the deletes held are those of the files being read, not of the whole table.
#[derive(Default)]
pub struct Loader {
    cells: Mutex<HashMap<String, Arc<OnceCell<Arc<Loaded>>>>>,
}

impl Loader {
    /// The deletes of `file`; `None` when no delete file applies. `read` is the projection
    /// the data file is read with (it holds every equality column). Its delete files are read
    /// concurrently.
    pub async fn for_file(
        &self,
        io: &FileIO,
        read: &Projection,
        file: &FileToRead,
    ) -> Result<Option<Arc<FileDeletes>>> {
        if file.deletes.is_empty() {
            return Ok(None);
        }
        let path = file.data.file.file_path();
        // Boxed: a stream of the bare futures is not `Send` for every lifetime, which the
        // scan's spawned tasks need.
        let loads: Vec<BoxFuture<'_, Result<Arc<Loaded>>>> = file
            .deletes
            .iter()
            .map(|delete| self.load(io, read, delete, path).boxed())
            .collect();
        let loaded: Vec<Arc<Loaded>> = futures::stream::iter(loads)
            .buffer_unordered(CONCURRENT_LOADS)
            .try_collect()
            .await?;
        let mut out = FileDeletes::default();
        for loaded in loaded {
            match loaded.as_ref() {
                Loaded::Positions(by_path) => {
                    if let Some(positions) = by_path.get(path) {
                        out.positions.extend(positions);
                    }
                }
                Loaded::Equality(equality) => out.equality.push(equality.clone()),
            }
        }
        // Each delete file's positions come ascending (as the spec has them written): a stable
        // sort finds those runs and merges them, linear per merge, where an unstable one sorts
        // from scratch (a data file with many merges' deletes has one run per merge).
        out.positions.sort();
        out.positions.dedup();
        Ok(Some(Arc::new(out)))
    }

    /// What `delete` holds, for the data file at `data_path`.
    async fn load(
        &self,
        io: &FileIO,
        read: &Projection,
        delete: &LiveFile,
        data_path: &str,
    ) -> Result<Arc<Loaded>> {
        let only = delete.file.referenced_data_file();
        if delete.file.content_type() == DataContentType::PositionDeletes
            && only.as_deref() == Some(data_path)
        {
            let positions = load_positions_of(io, delete).await?;
            return Ok(Arc::new(Loaded::Positions(HashMap::from([(
                data_path.to_string(),
                positions,
            )]))));
        }
        let cell = self
            .cells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(delete.file.file_path().to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| load(io, read, delete))
            .await
            .cloned()
    }
}

async fn load(io: &FileIO, read: &Projection, delete: &LiveFile) -> Result<Arc<Loaded>> {
    let loaded = match delete.file.content_type() {
        DataContentType::EqualityDeletes => {
            Loaded::Equality(Arc::new(load_equality(io, read, delete).await?))
        }
        _ => Loaded::Positions(load_positions(io, delete).await?),
    };
    Ok(Arc::new(loaded))
}

/// The positions of a position delete file that names the one data file it applies to: only
/// its `pos` column is read.
async fn load_positions_of(io: &FileIO, delete: &LiveFile) -> Result<Vec<i64>> {
    let projection = Projection::of_schema(&position_delete_schema()?)?.of_field_ids(&[POS_ID])?;
    let opened = ProjectedFile::open(io, &delete.file, &projection).await?;
    let mut batches = opened.batches()?;
    let mut out = Vec::new();
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let positions = int64s(&batch, 0, delete)?;
        out.extend(positions.iter().flatten());
    }
    Ok(out)
}

async fn load_positions(io: &FileIO, delete: &LiveFile) -> Result<HashMap<String, Vec<i64>>> {
    let schema = position_delete_schema()?;
    let projection = Projection::of_schema(&schema)?;
    let mut by_path: HashMap<String, Vec<i64>> = HashMap::new();
    let opened = ProjectedFile::open(io, &delete.file, &projection).await?;
    let mut batches = opened.batches()?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let (Some(paths), positions) = (
            batch.column(0).as_any().downcast_ref::<StringArray>(),
            int64s(&batch, 1, delete)?,
        ) else {
            return Err(wrong_types(delete));
        };
        // Rows are sorted by path (one path per file, as phlo writes them): the entry is
        // looked up once per run of a path, not once per row.
        let mut start = 0;
        while start < batch.num_rows() {
            let path = paths.is_valid(start).then(|| paths.value(start));
            let end = (start..batch.num_rows())
                .find(|&i| paths.is_valid(i).then(|| paths.value(i)) != path)
                .unwrap_or(batch.num_rows());
            if let Some(path) = path {
                let run = (start..end).filter(|&i| positions.is_valid(i));
                let entry = by_path.entry(path.to_string()).or_default();
                entry.extend(run.map(|i| positions.value(i)));
            }
            start = end;
        }
    }
    Ok(by_path)
}

/// Column `i` of a batch of a position delete file, which must be its `pos` column.
fn int64s<'a>(batch: &'a RecordBatch, i: usize, delete: &LiveFile) -> Result<&'a Int64Array> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| wrong_types(delete))
}

fn wrong_types(delete: &LiveFile) -> Error {
    Error::invalid(
        format!(
            "position delete file {} has columns of the wrong types",
            delete.file.file_path()
        ),
        "the file does not follow the Iceberg spec; rewrite the table",
    )
}

/// The error for equality deletes (of the file at `path`, when known) comparing field `id`,
/// which is not a top-level column of the schema read: dropped since, or nested in another.
pub fn equality_column_unread(id: i32, path: Option<&str>) -> Error {
    let file = path.map_or("a delete file".into(), |p| {
        format!("equality delete file {p}")
    });
    Error::invalid(
        format!("{file} compares column {id}, which is not a top-level column of the table schema"),
        "phlo applies equality deletes on top-level columns of the current schema: compact the \
         table with the engine that wrote the deletes (before dropping a column they use)",
    )
}

async fn load_equality(
    io: &FileIO,
    read: &Projection,
    delete: &LiveFile,
) -> Result<EqualityDeletes> {
    let ids = delete.file.equality_ids().unwrap_or_default();
    if let Some(&id) = ids.iter().find(|&&id| !read.reads(id)) {
        return Err(equality_column_unread(id, Some(delete.file.file_path())));
    }
    let projection = read.of_field_ids(&ids)?;
    let columns: Vec<String> = projection
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let converter = RowConverter::new(
        projection
            .schema()
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )
    .context(|| "encoding equality deletes".into())?;
    let mut rows = HashSet::new();
    let opened = ProjectedFile::open(io, &delete.file, &projection).await?;
    let mut batches = opened.batches()?;
    while let Some(batch) = batches.next().await {
        let encoded = converter
            .convert_columns(batch?.columns())
            .context(|| "encoding equality deletes".into())?;
        rows.extend(encoded.iter().map(|r| Box::<[u8]>::from(r.as_ref())));
    }
    Ok(EqualityDeletes {
        columns,
        converter,
        rows,
    })
}
