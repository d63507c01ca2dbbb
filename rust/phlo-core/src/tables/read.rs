//! Reading a data file as a table schema sees it. Iceberg identifies columns by field id, not
//! by name: a renamed column keeps its id, a column dropped and added again gets a new one, and
//! a file written before a column existed lacks it. So a file's columns are matched to the
//! schema by id: renamed columns keep their values, columns the file lacks read as their
//! `initial-default` ([`super::column_defaults`]) or else as null, dropped columns are left
//! out, promoted types (int→long, float→double, wider decimals) are cast. Files written
//! without field ids are resolved by the table's name mapping (`schema.name-mapping.default`).
//! Every engine path that reads data files (scans, merge and delete rewrites, compaction, row
//! diff, changes) goes through here; rows removed by other engines' delete files
//! ([`super::deletes`]) are left out here too.
//!
//! Nested columns are matched by the id of their top-level column, and the fields inside them
//! by theirs too ([`nested`]).

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, ready};

use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, Int32Array, RecordBatch, RecordBatchOptions,
    new_null_array,
};
use arrow_cast::CastOptions;
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef as ArrowSchemaRef};
use arrow_select::filter::filter_record_batch;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{
    DEFAULT_SCHEMA_NAME_MAPPING, DataFile, DataFileFormat, MappedField, NameMapping, Schema,
    TableMetadata,
};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{PARQUET_FIELD_ID_META_KEY, ProjectionMask};

use super::chunk_strings::{PlainValues, chunk_range, judge_chunk_strings};
use super::column_defaults::{
    ColumnDefault, DefaultsUse, default_array, refuse_defaults, repeated,
};
use super::deletes::FileDeletes;
use super::delta_skips::{self, delta_chunks};
use super::dictionary_pages::{all_dictionary, dictionary_range, judge_dictionary};
use super::file_ranges::FileRanges;
use super::nested;
use super::row_selection::{self, Positions};
use crate::error::{Context, Error, Location, Result};
use crate::failpoint;
use crate::schema::arrow_schema_of;

/// Judges the pages of strings of one column chunk ([`ProjectedFile::judge_strings`]).
pub type PageJudge = Box<dyn FnMut(&PlainValues) -> bool + Send>;

/// Bytes (uncompressed) of one column's chunks of a file that [`ProjectedFile::judge_strings`]
/// reads whole: what it reads in vain when a value fails (the column is then scanned).
const PAGE_STRINGS_LIMIT: i64 = 64 << 20;

/// Rows per decoded batch (Parquet's own default of 1,024 makes per-batch overhead dominate).
const BATCH_ROWS: usize = 64 * 1024;

/// The columns to read, as fields of one table schema, and how to find them in any data file
/// of the table.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Field ids of the top-level columns read, in output order.
    field_ids: Vec<i32>,
    schema: ArrowSchemaRef,
    /// The table's name mapping, for files written without ids.
    name_mapping: Option<Arc<NameMapping>>,
    /// Each column's `initial-default` (one element of its Arrow type), which the rows of a
    /// file that lacks the column hold.
    defaults: Vec<Option<ArrayRef>>,
}

impl Projection {
    /// Every column of `schema` (a schema of the table `metadata` describes: usually its
    /// current one, or a snapshot's).
    pub fn new(metadata: &TableMetadata, schema: &Schema) -> Result<Self> {
        let columns: Vec<String> = schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        Self::select(metadata, schema, &columns)
    }

    /// Only `columns` of `schema`, in this order.
    pub fn select(metadata: &TableMetadata, schema: &Schema, columns: &[String]) -> Result<Self> {
        refuse_defaults(schema, DefaultsUse::Read)?;
        let full = arrow_schema_of(schema)?;
        let fields = schema.as_struct().fields();
        let mut field_ids = Vec::with_capacity(columns.len());
        let mut indices = Vec::with_capacity(columns.len());
        let mut defaults = Vec::with_capacity(columns.len());
        for column in columns {
            let index = fields
                .iter()
                .position(|f| &f.name == column)
                .ok_or_else(|| Error::InvalidInput {
                    message: format!("column {column} is not in the table"),
                    at: Location {
                        table: None,
                        column: Some(column.clone()),
                    },
                    hint: "select columns the table has (see table.schema)".into(),
                })?;
            field_ids.push(fields[index].id);
            indices.push(index);
            let to = full.field(index).data_type();
            defaults.push(default_array(
                &fields[index],
                ColumnDefault::Initial,
                Some(to),
            )?);
        }
        let schema = Arc::new(
            full.project(&indices)
                .context(|| "projecting columns".into())?,
        );
        Ok(Self {
            field_ids,
            schema,
            name_mapping: name_mapping(metadata)?,
            defaults,
        })
    }

    /// Every column of a schema that is not a table's (e.g. the spec's schema of position
    /// delete files). Files written without field ids (as some writers leave delete files)
    /// are matched by the schema's own column names.
    pub fn of_schema(schema: &Schema) -> Result<Self> {
        let fields = schema.as_struct().fields();
        let by_name = fields
            .iter()
            .map(|f| MappedField::new(Some(f.id), vec![f.name.clone()], vec![]))
            .collect();
        Ok(Self {
            field_ids: fields.iter().map(|f| f.id).collect(),
            schema: arrow_schema_of(schema)?,
            name_mapping: Some(Arc::new(NameMapping::new(by_name))),
            defaults: vec![None; fields.len()],
        })
    }

    /// Whether the column of field id `id` is read.
    pub fn reads(&self, id: i32) -> bool {
        self.field_ids.contains(&id)
    }

    /// The columns of this projection with the given field ids, in that order.
    pub fn of_field_ids(&self, ids: &[i32]) -> Result<Self> {
        let indices = ids
            .iter()
            .map(|id| {
                self.field_ids.iter().position(|f| f == id).ok_or_else(|| {
                    Error::invalid(
                        format!("field id {id} is not among the columns read"),
                        "this is a bug; please report it",
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            field_ids: ids.to_vec(),
            schema: Arc::new(
                self.schema
                    .project(&indices)
                    .context(|| "projecting columns".into())?,
            ),
            name_mapping: self.name_mapping.clone(),
            defaults: indices.iter().map(|&i| self.defaults[i].clone()).collect(),
        })
    }

    /// The same columns with every top-level string column except those of `plain` (field ids)
    /// read as an Arrow dictionary ([`string_dictionary`]).
    pub fn with_string_dictionaries(&self, plain: &[i32]) -> Self {
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .zip(&self.field_ids)
            .map(|(field, id)| match field.data_type() {
                DataType::Utf8 if !plain.contains(id) => {
                    field.as_ref().clone().with_data_type(string_dictionary())
                }
                _ => field.as_ref().clone(),
            })
            .collect();
        Self {
            field_ids: self.field_ids.clone(),
            schema: Arc::new(ArrowSchema::new_with_metadata(
                fields,
                self.schema.metadata().clone(),
            )),
            name_mapping: self.name_mapping.clone(),
            defaults: self.defaults.clone(),
        }
    }

    /// Only the first `n` columns.
    pub fn first(&self, n: usize) -> Result<Self> {
        self.of_field_ids(&self.field_ids[..n.min(self.field_ids.len())])
    }

    /// The schema of the first `n` columns.
    pub fn leading(&self, n: usize) -> Result<ArrowSchemaRef> {
        Ok(Arc::new(
            self.schema
                .project(&(0..n).collect::<Vec<_>>())
                .context(|| "projecting columns".into())?,
        ))
    }

    /// The Arrow schema of every batch read (with `PARQUET:field_id` metadata).
    pub fn schema(&self) -> &ArrowSchemaRef {
        &self.schema
    }
}

/// The table's name mapping.
fn name_mapping(metadata: &TableMetadata) -> Result<Option<Arc<NameMapping>>> {
    let Some(json) = metadata.properties().get(DEFAULT_SCHEMA_NAME_MAPPING) else {
        return Ok(None);
    };
    let mapping: NameMapping = serde_json::from_str(json).map_err(|e| {
        Error::invalid(
            format!("table property {DEFAULT_SCHEMA_NAME_MAPPING} is not a name mapping: {e}"),
            "fix or remove the property (see the Iceberg spec's column projection rules)",
        )
    })?;
    Ok(Some(Arc::new(mapping)))
}

/// Where one output column comes from.
#[derive(Debug, Clone)]
enum Source {
    /// Column `i` of the decoded batch, as it is.
    Same(usize),
    /// Column `i` of the decoded batch, cast to the schema's type (a promoted type).
    Cast(usize),
    /// The file does not have the column, which has no default: nulls.
    Missing,
    /// The file does not have the column: its `initial-default` (one element of the schema's
    /// type) in every row.
    Default(ArrayRef),
}

/// One data file, resolved against a [`Projection`]: its footer, which of its columns are
/// decoded and where each lands. Only the footer is held; rows are streamed row group by row
/// group (the projected column chunks of one row group are fetched at a time), so a reader
/// holds about one row group's compressed columns and one decoded batch, whatever the file's
/// size.
pub struct ProjectedFile {
    ranges: FileRanges,
    path: Arc<str>,
    /// What the file is, for messages: data, position delete or equality delete file.
    kind: &'static str,
    /// The footer as read (the file's own Arrow types).
    metadata: ArrowReaderMetadata,
    /// The footer rows are decoded with: string columns the projection reads as dictionaries,
    /// where every chunk of them is dictionary-encoded, requested as such.
    decoding: ArrowReaderMetadata,
    mask: ProjectionMask,
    sources: Arc<[Source]>,
    /// The file's top-level columns decoded, in order (`Source` positions index it).
    roots: Arc<[usize]>,
    schema: ArrowSchemaRef,
    batch_rows: usize,
    deletes: Option<Arc<FileDeletes>>,
    /// Whether readers report the file position of every row they yield.
    track_positions: bool,
    /// Runs of row groups whose column chunks are being read already ([`Self::read_ahead`]),
    /// each taken by the first stream of the same run.
    started: Mutex<Vec<(Vec<usize>, FileRanges)>>,
}

/// A data file's footer as read, with the source of its bytes: what opening the file costs,
/// done once for readers of several projections ([`ProjectedFile::of_footer`]).
#[derive(Clone)]
pub struct Footer {
    ranges: FileRanges,
    metadata: ArrowReaderMetadata,
}

impl Footer {
    /// Opens `file` and reads its footer (with the file's tail: one read).
    pub async fn read(io: &FileIO, file: &DataFile) -> Result<Self> {
        let path = file.file_path();
        if file.file_format() != DataFileFormat::Parquet {
            return Err(Error::invalid(
                format!(
                    "data file {path} is {}, phlo reads Parquet only",
                    file.file_format()
                ),
                "rewrite the table's data files as Parquet with the engine that wrote them",
            ));
        }
        // The manifest's size spares a stat of the file (a request on object stores).
        let mut ranges = FileRanges::open(io, path, file.file_size_in_bytes()).await?;
        let metadata = ArrowReaderMetadata::load_async(&mut ranges, ArrowReaderOptions::new())
            .await
            .map_err(|e| corrupt(path, e))?;
        Ok(Self { ranges, metadata })
    }
}

impl ProjectedFile {
    /// Reads the footer of `file` and resolves its columns against `projection`.
    pub async fn open(io: &FileIO, file: &DataFile, projection: &Projection) -> Result<Self> {
        Self::of_footer(Footer::read(io, file).await?, file, projection)
    }

    /// `file`, whose footer was read already, resolved against `projection`.
    pub fn of_footer(footer: Footer, file: &DataFile, projection: &Projection) -> Result<Self> {
        Self::resolve(
            footer.ranges,
            (file.file_path().into(), kind_of(file)),
            footer.metadata,
            projection,
        )
    }

    /// The same file (its footer not read again) resolved against another projection of its
    /// table.
    pub fn reproject(&self, projection: &Projection) -> Result<Self> {
        Ok(Self::resolve(
            self.ranges.clone(),
            (self.path.clone(), self.kind),
            self.metadata.clone(),
            projection,
        )?
        .with_batch_size(self.batch_rows)
        .with_deletes(self.deletes.clone())
        .with_positions(self.track_positions))
    }

    fn resolve(
        ranges: FileRanges,
        (path, kind): (Arc<str>, &'static str),
        metadata: ArrowReaderMetadata,
        projection: &Projection,
    ) -> Result<Self> {
        let metadata = match &projection.name_mapping {
            Some(mapping) => nested::with_mapped_ids(metadata, mapping),
            None => metadata,
        };
        let file_ids = file_field_ids(&metadata, (kind, &path), projection)?;
        let roots: Vec<usize> = file_ids
            .iter()
            .enumerate()
            .filter(|(_, id)| id.is_some_and(|id| projection.field_ids.contains(&id)))
            .map(|(i, _)| i)
            .collect();
        let file_fields = metadata.schema().fields();
        let sources = (projection.field_ids.iter())
            .zip(projection.schema.fields())
            .zip(&projection.defaults)
            .map(|((id, field), default)| {
                // Decoded columns keep the file's order. Should a file repeat an id (a name
                // mapping giving two of its columns' names to one field, as PyIceberg's leaves
                // after a column is renamed to a name another one had), the last column wins,
                // as in PyIceberg's reader: both read, and rewrite, the same values.
                let Some(position) = roots.iter().rposition(|&i| file_ids[i] == Some(*id)) else {
                    return match (default, field.is_nullable()) {
                        // Cast once here: the projection may read strings as dictionaries.
                        (Some(value), _) => arrow_cast::cast(value, field.data_type())
                            .map(Source::Default)
                            .context(|| format!("reading the default of column {}", field.name())),
                        (None, true) => Ok(Source::Missing),
                        (None, false) => Err(Error::schema(
                            format!("{kind} {path} lacks required column (field id {id})"),
                            Location {
                                table: None,
                                column: Some(field.name().clone()),
                            },
                            "the file does not belong to this table schema; make the column \
                             optional, or rewrite the file",
                        )),
                    };
                };
                let from = file_fields[roots[position]].data_type();
                match (
                    from == field.data_type(),
                    nested::can_align(from, field.data_type()),
                ) {
                    (true, _) => Ok(Source::Same(position)),
                    (false, true) => Ok(Source::Cast(position)),
                    (false, false) => Err(mismatch(&path, field.name(), from, field.data_type())),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let (decoding, sources) =
            with_file_dictionaries(&metadata, &roots, &projection.schema, sources);
        let mask = ProjectionMask::roots(metadata.parquet_schema(), roots.iter().copied());
        Ok(Self {
            ranges,
            path,
            kind,
            metadata,
            decoding,
            mask,
            sources,
            roots: roots.into(),
            schema: projection.schema.clone(),
            batch_rows: BATCH_ROWS,
            deletes: None,
            track_positions: false,
            started: Mutex::default(),
        })
    }

    /// Decodes batches of up to `rows` rows (fewer once deleted rows are left out).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_rows = rows;
        self
    }

    /// Leaves out the rows `deletes` remove (the projection must hold every column its
    /// equality deletes compare). Rows deleted by position are skipped by the Parquet reader
    /// (not decoded, where a run of them is long enough to skip), except in row groups it
    /// cannot skip in ([`super::delta_skips`]); rows deleted by value, and those, are filtered
    /// out once decoded.
    pub fn with_deletes(mut self, deletes: Option<Arc<FileDeletes>>) -> Self {
        self.deletes = deletes;
        self
    }

    /// Readers also report the position in the file of every row they yield
    /// ([`ProjectedReader::next_positioned`]).
    pub fn with_positions(mut self, track: bool) -> Self {
        self.track_positions = track;
        self
    }

    pub fn num_row_groups(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }

    /// For each column `at` (positions in the projection), whether a judge passes the strings
    /// each of its chunks (one per row group) can hold, when the file stores it as UTF-8
    /// strings: a chunk dictionary-encoded in every data page gives its dictionary, read from
    /// the dictionary page alone; any other chunk of plain and dictionary-encoded pages gives
    /// every string it holds, read from its pages without decoding rows
    /// ([`judge_chunk_strings`]), when the column's such chunks hold at most
    /// [`PAGE_STRINGS_LIMIT`] bytes. One request for them all (nearby ranges coalesced); chunks
    /// read whole are decoded on blocking threads, one each. `judges` makes each chunk's judge
    /// (given the column's position in `at`), which gets the chunk's pages of strings, one by
    /// one, where they were decompressed — so chunks are judged in parallel, each page dropped
    /// once judged. An empty list for a column the file lacks that has no default (its rows
    /// read as nulls); `None` for one with a default (its rows are left to the reader), or
    /// when a page does not decode.
    pub async fn judge_strings<F>(&self, at: &[usize], judges: F) -> Result<Vec<Option<Vec<bool>>>>
    where
        F: Fn(usize) -> PageJudge + Clone + Send + 'static,
    {
        let metadata = self.metadata.metadata();
        let chunks: Vec<Option<Vec<_>>> = at
            .iter()
            .map(|&at| match &self.sources[at] {
                Source::Missing => Some(vec![]),
                Source::Default(_) => None,
                &Source::Same(position) | &Source::Cast(position) => {
                    let leaf = self.string_leaf(self.roots[position])?;
                    let chunks = (metadata.row_groups().iter())
                        .map(|group| {
                            let chunk = group.column(leaf);
                            match dictionary_range(chunk) {
                                Some(range) => Some((chunk, range, false)),
                                None => chunk_range(chunk).map(|range| (chunk, range, true)),
                            }
                        })
                        .collect::<Option<Vec<_>>>()?;
                    let whole: i64 = (chunks.iter())
                        .filter(|(_, _, whole)| *whole)
                        .map(|(chunk, _, _)| chunk.uncompressed_size())
                        .sum();
                    (whole <= PAGE_STRINGS_LIMIT).then_some(chunks)
                }
            })
            .collect();
        let ranges: Vec<Range<u64>> = chunks
            .iter()
            .flatten()
            .flatten()
            .map(|(_, range, _)| range.clone())
            .collect();
        let mut fetched = match ranges.is_empty() {
            true => vec![],
            false => (self.ranges.clone())
                .get_byte_ranges(ranges)
                .await
                .map_err(|e| corrupt(&self.path, e))?,
        }
        .into_iter();
        let mut columns = Vec::with_capacity(chunks.len());
        for (position, column) in chunks.into_iter().enumerate() {
            let Some(column) = column else {
                columns.push(None);
                continue;
            };
            let decoding: Vec<_> = (column.into_iter())
                .zip(fetched.by_ref())
                .map(|((chunk, _, whole), bytes)| {
                    let (chunk, judges) = (chunk.clone(), judges.clone());
                    async move {
                        match whole {
                            false => judge_dictionary(&chunk, bytes, &mut judges(position)).ok(),
                            true => tokio::task::spawn_blocking(move || {
                                judge_chunk_strings(&chunk, bytes, &mut judges(position)).ok()
                            })
                            .await
                            .ok()
                            .flatten(),
                        }
                    }
                })
                .collect();
            // A page not decoded here leaves the column to the rows' reader, which reports
            // what is wrong with it.
            let decoded = futures::future::join_all(decoding).await;
            columns.push(decoded.into_iter().collect());
        }
        Ok(columns)
    }

    /// The one leaf of top-level column `root` when it stores UTF-8 strings.
    fn string_leaf(&self, root: usize) -> Option<usize> {
        let schema = self.metadata.parquet_schema();
        let leaves: Vec<usize> = (0..schema.num_columns())
            .filter(|&leaf| schema.get_column_root_idx(leaf) == root)
            .collect();
        let strings = matches!(
            self.metadata.schema().field(root).data_type(),
            DataType::Utf8 | DataType::LargeUtf8
        );
        match (strings, &leaves[..]) {
            (true, [leaf]) => Some(*leaf),
            _ => None,
        }
    }

    /// The batches of the whole file, in order, in the projection's schema.
    pub fn batches(&self) -> Result<ProjectedStream> {
        self.stream((0..self.num_row_groups()).collect())
    }

    /// Starts reading the column chunks [`Self::read_parallel`] with `parallelism` asks for
    /// first (each reader's read-ahead budget of them), so that a file opened while another is
    /// being read has its first row groups at hand when its turn comes instead of a round trip
    /// away. Memory: one more budget per reader, for one file ahead.
    pub fn read_ahead(self, parallelism: usize) -> Self {
        let started = (self.runs(parallelism).into_iter())
            .map(|run| {
                let row_groups: Vec<usize> = run.collect();
                let ranges =
                    (self.ranges).reading_ahead(self.metadata.metadata(), &self.mask, &row_groups);
                (row_groups, ranges)
            })
            .collect();
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = started;
        self
    }

    /// The batches of a contiguous, ascending run of row groups, in the projection's schema.
    pub fn stream(&self, row_groups: Vec<usize>) -> Result<ProjectedStream> {
        // The run's column chunks are read ahead of the decoder (file_ranges.rs), from
        // [`Self::read_ahead`] on when it started them.
        let started = {
            let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
            (started.iter().position(|(run, _)| *run == row_groups))
                .map(|i| started.swap_remove(i).1)
        };
        let ranges = started.unwrap_or_else(|| {
            (self.ranges).reading_ahead(self.metadata.metadata(), &self.mask, &row_groups)
        });
        // Position deletes count rows from the start of the file.
        let groups = self.metadata.metadata().row_groups();
        let first_row: i64 = groups[..row_groups.first().copied().unwrap_or(0)]
            .iter()
            .map(|g| g.num_rows())
            .sum();
        let rows = |g: usize| groups[g].num_rows();
        let end = first_row + row_groups.iter().map(|&g| rows(g)).sum::<i64>();
        let deleted = self
            .deletes
            .as_ref()
            .map_or(&[][..], |d| d.positions_in(first_row..end));
        // Without deleted positions the run is read as one; with them, row group by row group,
        // each with the selection of its rows (so a selection is never larger than a group).
        let mut pending = VecDeque::new();
        match deleted.is_empty() {
            true => pending.push_back(Segment {
                row_groups,
                rows: first_row..end,
            }),
            false => {
                let mut start = first_row;
                for group in row_groups {
                    let range = start..start + rows(group);
                    start = range.end;
                    pending.push_back(Segment {
                        row_groups: vec![group],
                        rows: range,
                    });
                }
            }
        }
        Ok(ProjectedStream {
            file: Segments {
                ranges,
                probe: self.ranges.clone(),
                metadata: self.decoding.clone(),
                mask: self.mask.clone(),
                batch_rows: self.batch_rows,
                pending,
            },
            inner: None,
            path: self.path.clone(),
            sources: self.sources.clone(),
            schema: self.schema.clone(),
            deletes: self.deletes.clone(),
            positions: self.track_positions.then(|| Positions::from(first_row)),
            last_positions: Vec::new(),
            decoded_whole: None,
            probing: None,
        })
    }

    /// Decodes the file on up to `parallelism` blocking threads, each running `work` over a
    /// reader of its own contiguous run of row groups. Results come back in row-group order.
    pub async fn read_parallel<T, F>(&self, parallelism: usize, work: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(ProjectedReader) -> Result<T> + Send + Sync + 'static,
    {
        let work = Arc::new(work);
        let runtime = tokio::runtime::Handle::current();
        let runs = self.runs(parallelism);
        let mut tasks = Vec::with_capacity(runs.len());
        for range in runs {
            let reader = ProjectedReader {
                stream: self.stream(range.collect())?,
                runtime: runtime.clone(),
            };
            let work = work.clone();
            tasks.push(tokio::task::spawn_blocking(move || work(reader)));
        }
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(
                task.await
                    .map_err(|e| Error::from_join(format!("reading {}", self.path), e))??,
            );
        }
        Ok(results)
    }

    /// The contiguous runs of row groups [`Self::read_parallel`] gives its readers.
    fn runs(&self, parallelism: usize) -> Vec<Range<usize>> {
        let groups = self.num_row_groups();
        let workers = parallelism.clamp(1, groups.max(1));
        let per_worker = groups.div_ceil(workers).max(1);
        (0..workers)
            .map(|worker| {
                (worker * per_worker).min(groups)..((worker + 1) * per_worker).min(groups)
            })
            .collect()
    }
}

/// Reads a whole data file as `projection` sees it, decoding its row groups on up to
/// `parallelism` threads.
pub async fn read_data_file(
    io: &FileIO,
    file: &DataFile,
    projection: &Projection,
    parallelism: usize,
) -> Result<Vec<RecordBatch>> {
    let parts = ProjectedFile::open(io, file, projection)
        .await?
        .read_parallel(parallelism, |reader| reader.collect::<Result<Vec<_>>>())
        .await?;
    Ok(parts.into_iter().flatten().collect())
}

/// What `file` is, as messages name it.
fn kind_of(file: &DataFile) -> &'static str {
    use iceberg::spec::DataContentType;
    match file.content_type() {
        DataContentType::Data => "data file",
        DataContentType::PositionDeletes => "position delete file",
        DataContentType::EqualityDeletes => "equality delete file",
    }
}

/// The field id of each top-level column of a file (its kind and path named): embedded by
/// the writer, or else from the table's name mapping.
fn file_field_ids(
    metadata: &ArrowReaderMetadata,
    (kind, path): (&str, &str),
    projection: &Projection,
) -> Result<Vec<Option<i32>>> {
    let fields = metadata.schema().fields();
    let embedded: Vec<Option<i32>> = fields
        .iter()
        .map(|f| {
            f.metadata()
                .get(PARQUET_FIELD_ID_META_KEY)
                .and_then(|id| id.parse().ok())
        })
        .collect();
    if embedded.iter().any(Option::is_some) || fields.is_empty() {
        return Ok(embedded);
    }
    match &projection.name_mapping {
        // Not one column of the file is in the mapping (ids are set from it when any is).
        Some(_) => Ok(embedded),
        None => Err(Error::schema(
            format!("{kind} {path} has no Iceberg field ids"),
            Location::default(),
            format!(
                "set the table property {DEFAULT_SCHEMA_NAME_MAPPING} to a name mapping of the \
                 table's columns (e.g. [{{\"field-id\": 1, \"names\": [\"id\"]}}, ...]) so \
                 its columns are matched by name, or rewrite the file with field ids"
            ),
        )),
    }
}

/// Batches of a run of row groups of one data file, in the projection's schema, as they are
/// decoded.
pub struct ProjectedStream {
    file: Segments,
    /// The reader of the segment being read.
    inner: Option<ParquetRecordBatchStream<FileRanges>>,
    path: Arc<str>,
    sources: Arc<[Source]>,
    schema: ArrowSchemaRef,
    deletes: Option<Arc<FileDeletes>>,
    /// Where the rows yielded are in the file, when tracked.
    positions: Option<Positions>,
    /// The positions of the rows of the last batch yielded, when tracked.
    last_positions: Vec<i64>,
    /// The file position of the next row decoded, while the segment being read is decoded
    /// whole (deleted rows included, left out once decoded; see [`super::delta_skips`]).
    decoded_whole: Option<i64>,
    /// The next segment while whether its rows can be skipped is being read.
    probing: Option<(Segment, BoxFuture<'static, bool>)>,
}

/// Row groups read one after another, each run by a reader of its own.
struct Segment {
    row_groups: Vec<usize>,
    /// Their rows' positions in the file.
    rows: Range<i64>,
}

/// What opens the reader of each segment of a [`ProjectedStream`].
struct Segments {
    ranges: FileRanges,
    /// The same file without read-ahead, for what is read before a segment's reader opens.
    probe: FileRanges,
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    batch_rows: usize,
    pending: VecDeque<Segment>,
}

impl ProjectedStream {
    /// The reader of the next segment with rows left after position deletes; `None` at the
    /// end. Pending while the miniblocks of a segment's delta-encoded chunks are read (where
    /// position deletes apply: whether its deleted rows can be skipped).
    fn poll_open(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<Option<ParquetRecordBatchStream<FileRanges>>>> {
        loop {
            if let Some((_, probe)) = self.probing.as_mut() {
                let skippable = ready!(probe.poll_unpin(cx));
                let Some((segment, _)) = self.probing.take() else {
                    return Poll::Ready(Ok(None));
                };
                return Poll::Ready(self.open(segment, !skippable).map(Some));
            }
            let Some(segment) = self.file.pending.pop_front() else {
                return Poll::Ready(Ok(None));
            };
            let deleted = self
                .deletes
                .as_ref()
                .map_or(0, |d| d.positions_in(segment.rows.clone()).len());
            if deleted as i64 == segment.rows.end - segment.rows.start {
                continue;
            }
            let metadata = self.file.metadata.metadata();
            let chunks = match deleted {
                0 => Vec::new(),
                _ => delta_chunks(metadata, &self.file.mask, &segment.row_groups),
            };
            if chunks.is_empty() {
                return Poll::Ready(self.open(segment, false).map(Some));
            }
            let probe = delta_skips::skippable(self.file.probe.clone(), chunks);
            self.probing = Some((segment, probe.boxed()));
        }
    }

    /// The reader of `segment`: skipping its rows deleted by position, or decoding them
    /// (`whole`) to leave them out afterwards.
    fn open(
        &mut self,
        segment: Segment,
        whole: bool,
    ) -> Result<ParquetRecordBatchStream<FileRanges>> {
        if whole {
            // Tests see which segments are decoded whole by arming this point.
            failpoint::hit("read.decode-whole")?;
        }
        let deleted = self
            .deletes
            .as_ref()
            .map_or(&[][..], |d| d.positions_in(segment.rows.clone()));
        self.decoded_whole = whole.then_some(segment.rows.start);
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.file.ranges.clone(),
            self.file.metadata.clone(),
        )
        .with_projection(self.file.mask.clone())
        .with_row_groups(segment.row_groups)
        .with_batch_size(self.file.batch_rows);
        let builder = match row_selection::skipping(segment.rows, deleted) {
            Some(selection) if !whole => builder.with_row_selection(selection),
            _ => builder,
        };
        builder.build().map_err(|e| corrupt(&self.path, e))
    }

    /// The batch in the projection's schema, without deleted rows (those deleted by position
    /// were not read, unless the segment is decoded whole).
    fn project(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let batch = self.align(batch)?;
        let deletes = self.deletes.as_deref();
        let batch = match (self.decoded_whole.as_mut(), deletes) {
            (Some(next), Some(deletes)) => {
                let rows = *next..*next + batch.num_rows() as i64;
                *next = rows.end;
                let keep = not_deleted(rows.clone(), deletes.positions_in(rows));
                filter_record_batch(&batch, &keep).context(|| "leaving out deleted rows".into())?
            }
            _ => batch,
        };
        if let Some(positions) = &mut self.positions {
            let deleted = deletes.map_or(&[][..], FileDeletes::positions);
            self.last_positions = positions.take(batch.num_rows(), deleted);
        }
        let Some(keep) = deletes
            .map(|d| d.keep_by_value(&batch))
            .transpose()?
            .flatten()
        else {
            return Ok(batch);
        };
        if self.positions.is_some() {
            self.last_positions = kept(&self.last_positions, &keep);
        }
        filter_record_batch(&batch, &keep).context(|| "leaving out deleted rows".into())
    }

    fn align(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let columns = self
            .sources
            .iter()
            .zip(self.schema.fields())
            .map(|(source, field)| match *source {
                Source::Same(i) => Ok(batch.column(i).clone()),
                Source::Default(ref value) => repeated(value, rows),
                Source::Cast(i) => own_dictionary(batch.column(i), field.data_type())
                    .unwrap_or_else(|| nested::align(batch.column(i), field.data_type(), &options))
                    .map_err(|e| {
                        Error::schema(
                            format!("cannot read a column of data file {}: {e}", self.path),
                            Location {
                                table: None,
                                column: Some(field.name().clone()),
                            },
                            "the file's values do not fit the column's type",
                        )
                    }),
                Source::Missing => Ok(new_null_array(field.data_type(), rows)),
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        // Nested fields may differ from the schema in names and field-id metadata only.
        let options = RecordBatchOptions::new()
            .with_row_count(Some(rows))
            .with_match_field_names(false);
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .context(|| format!("projecting data file {}", self.path))
    }
}

/// The Arrow type of a string column read as a dictionary: a column chunk stored
/// dictionary-encoded keeps the file's dictionary (shared by every batch decoded from it), so
/// a check of its distinct values need not see every row.
pub fn string_dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The decoding footer and sources of a file: a column read as a [`string_dictionary`] that
/// the file stores as strings (32- or 64-bit offsets), dictionary-encoded in every chunk, is
/// decoded as a dictionary
/// (`Same`); otherwise it stays a `Cast` ([`own_dictionary`]).
fn with_file_dictionaries(
    metadata: &ArrowReaderMetadata,
    roots: &[usize],
    targets: &ArrowSchemaRef,
    mut sources: Vec<Source>,
) -> (ArrowReaderMetadata, Arc<[Source]>) {
    let fields = metadata.schema().fields();
    let schema = metadata.parquet_schema();
    let wanted = string_dictionary();
    let mut decoded: Vec<Field> = fields.iter().map(|f| f.as_ref().clone()).collect();
    let mut changed = Vec::new();
    for (at, source) in sources.iter().enumerate() {
        let &Source::Cast(position) = source else {
            continue;
        };
        let root = roots[position];
        let leaves: Vec<usize> = (0..schema.num_columns())
            .filter(|&leaf| schema.get_column_root_idx(leaf) == root)
            .collect();
        if matches!(
            fields[root].data_type(),
            DataType::Utf8 | DataType::LargeUtf8
        ) && targets.field(at).data_type() == &wanted
            && let [leaf] = leaves[..]
            && dictionary_encoded(metadata, leaf)
        {
            decoded[root] = decoded[root].clone().with_data_type(wanted.clone());
            changed.push(at);
        }
    }
    if changed.is_empty() {
        return (metadata.clone(), sources.into());
    }
    let supplied = Arc::new(ArrowSchema::new_with_metadata(
        decoded,
        metadata.schema().metadata().clone(),
    ));
    let options = ArrowReaderOptions::new().with_schema(supplied);
    match ArrowReaderMetadata::try_new(metadata.metadata().clone(), options) {
        Ok(decoding) => {
            for at in changed {
                if let Source::Cast(position) = sources[at] {
                    sources[at] = Source::Same(position);
                }
            }
            (decoding, sources.into())
        }
        // The reader does not take the file's schema back (e.g. metadata it infers
        // differently): the columns are read as strings, as the file declares them.
        Err(_) => (metadata.clone(), sources.into()),
    }
}

/// Whether every data page of leaf column `leaf`, in every row group, is dictionary-encoded.
fn dictionary_encoded(metadata: &ArrowReaderMetadata, leaf: usize) -> bool {
    (metadata.metadata().row_groups().iter()).all(|group| all_dictionary(group.column(leaf)))
}

/// A string column as a dictionary of its own values, one key per row: no copy of the
/// strings, where a cast would hash every value. (Each batch then has a dictionary of its own.)
fn own_dictionary(
    array: &ArrayRef,
    to: &DataType,
) -> Option<std::result::Result<ArrayRef, arrow_schema::ArrowError>> {
    if to != &string_dictionary() {
        return None;
    }
    let values = match array.data_type() {
        DataType::Utf8 => array.clone(),
        // Written with 64-bit offsets (e.g. by Polars): narrowed first.
        DataType::LargeUtf8 => match arrow_cast::cast(array, &DataType::Utf8) {
            Ok(values) => values,
            Err(e) => return Some(Err(e)),
        },
        _ => return None,
    };
    let keys = Int32Array::new((0..array.len() as i32).collect(), array.nulls().cloned());
    Some(DictionaryArray::<Int32Type>::try_new(keys, values).map(|d| Arc::new(d) as ArrayRef))
}

/// Which rows of `rows` (file positions) are not among `deleted` (ascending, inside `rows`).
fn not_deleted(rows: Range<i64>, deleted: &[i64]) -> BooleanArray {
    let mut deleted = deleted.iter().peekable();
    rows.map(|row| deleted.next_if_eq(&&row).is_none())
        .collect()
}

/// The values of `values` where `keep` is true.
fn kept(values: &[i64], keep: &BooleanArray) -> Vec<i64> {
    values
        .iter()
        .zip(keep.values().iter())
        .filter_map(|(&v, k)| k.then_some(v))
        .collect()
}

impl Stream for ProjectedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.inner.is_none() {
                this.inner = match ready!(this.poll_open(cx)) {
                    Ok(Some(inner)) => Some(inner),
                    Ok(None) => return Poll::Ready(None),
                    Err(e) => return Poll::Ready(Some(Err(e))),
                };
            }
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(inner.poll_next_unpin(cx)) {
                Some(batch) => {
                    let batch = batch
                        .map_err(|e| corrupt(&this.path, e))
                        .and_then(|b| this.project(b));
                    return Poll::Ready(Some(batch));
                }
                None => this.inner = None,
            }
        }
    }
}

/// A [`ProjectedStream`] read from a blocking thread (one of `spawn_blocking`'s) as an
/// iterator: the thread waits for each row group's bytes (the runtime drives the I/O) and
/// decodes the batches itself.
pub struct ProjectedReader {
    stream: ProjectedStream,
    runtime: tokio::runtime::Handle,
}

impl ProjectedReader {
    /// The next batch with the position in the file of each of its rows (the file must have
    /// been opened [`ProjectedFile::with_positions`]).
    pub fn next_positioned(&mut self) -> Option<Result<(RecordBatch, Vec<i64>)>> {
        if self.stream.positions.is_none() {
            return Some(Err(Error::invalid(
                format!("row positions of {} were not tracked", self.stream.path),
                "this is a bug; please report it",
            )));
        }
        let batch = self.next()?;
        Some(batch.map(|b| (b, std::mem::take(&mut self.stream.last_positions))))
    }
}

impl Iterator for ProjectedReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.runtime.block_on(self.stream.next())
    }
}

fn corrupt(path: &str, e: parquet::errors::ParquetError) -> Error {
    Error::invalid(
        format!("cannot read data file {path}: {e}"),
        "the file may be corrupt",
    )
}

fn mismatch(path: &str, column: &str, from: &DataType, to: &DataType) -> Error {
    Error::schema(
        format!("data file {path} stores the column as {from}, which cannot be read as {to}"),
        Location {
            table: None,
            column: Some(column.into()),
        },
        "the file does not belong to this table schema; rewrite it",
    )
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Int64Array};
    use iceberg::spec::{
        DataContentType, DataFileBuilder, NestedField, PrimitiveType, Struct, Type,
    };
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Encoding;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// A data file at `path` of one column `id` (field id 1) holding 0..`rows`.
    fn ids_file(path: &std::path::Path, rows: i64, properties: WriterProperties) -> DataFile {
        let id = Field::new("id", DataType::Int64, true)
            .with_metadata([(PARQUET_FIELD_ID_META_KEY.to_string(), "1".to_string())].into());
        let schema = Arc::new(ArrowSchema::new(vec![id]));
        let values = Int64Array::from_iter_values(0..rows);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path(path.to_str().unwrap().into())
            .file_format(DataFileFormat::Parquet)
            .partition(Struct::empty())
            .record_count(rows as u64)
            .file_size_in_bytes(std::fs::metadata(path).unwrap().len())
            .build()
            .unwrap()
    }

    /// Rows deleted in DELTA_BINARY_PACKED chunks of 32-value miniblocks (arrow-rs's, as
    /// pyarrow's) are skipped, not decoded; batches stream none larger than the batch size.
    #[tokio::test]
    async fn rows_deleted_in_delta_encoded_chunks_arrow_rs_wrote_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let properties = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_encoding(Encoding::DELTA_BINARY_PACKED)
            .set_max_row_group_row_count(Some(400))
            .build();
        let file = ids_file(&dir.path().join("delta.parquet"), 1000, properties);
        let table = Schema::builder()
            .with_fields(vec![
                NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .unwrap();
        let projection = Projection::of_schema(&table).unwrap();
        let deleted: Vec<i64> = (0..1000)
            .filter(|p| p % 7 == 3 || (500..700).contains(p))
            .collect();
        let opened = ProjectedFile::open(&FileIO::new_with_fs(), &file, &projection)
            .await
            .unwrap()
            .with_batch_size(64)
            .with_deletes(Some(Arc::new(FileDeletes::of_positions(deleted.clone()))));
        let groups: Vec<usize> = (0..opened.num_row_groups()).collect();
        assert_eq!(groups.len(), 3);
        let delta = delta_chunks(opened.metadata.metadata(), &opened.mask, &groups);
        assert_eq!(delta.len(), 3);
        let mut batches = opened.batches().unwrap();
        let mut rows = Vec::new();
        while let Some(batch) = batches.next().await {
            let batch = batch.unwrap();
            assert_eq!(batches.decoded_whole, None);
            assert!(
                batch.num_rows() <= 64,
                "{} rows in one batch",
                batch.num_rows()
            );
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            rows.extend(ids.values().iter().copied());
        }
        let kept: Vec<i64> = (0..1000).filter(|p| !deleted.contains(p)).collect();
        assert_eq!(rows, kept);
    }

    /// A file written before columns with an `initial-default` were added reads the default in
    /// every row (a string column too when read as a dictionary); its statistics, which lack
    /// the columns, do not prune it for a filter on the default, which its rows match.
    #[tokio::test]
    async fn columns_a_file_predates_read_as_their_initial_default() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Date32Type, Decimal128Type, Int32Type};
        use iceberg::expr::{Bind, Reference};
        use iceberg::spec::{Datum, Literal, TableMetadataBuilder};

        use crate::tables::eval::{FileMatch, file_match, row_matches};

        let dir = tempfile::tempdir().unwrap();
        let properties = WriterProperties::builder().build();
        let file = ids_file(&dir.path().join("old.parquet"), 3, properties);
        let p = |t| Type::Primitive(t);
        let decimal = PrimitiveType::Decimal {
            precision: 9,
            scale: 2,
        };
        let table = Schema::builder()
            .with_fields(vec![
                NestedField::optional(1, "id", p(PrimitiveType::Long)).into(),
                NestedField::optional(2, "x", p(PrimitiveType::Int))
                    .with_initial_default(Literal::int(5))
                    .into(),
                NestedField::required(3, "s", p(PrimitiveType::String))
                    .with_initial_default(Literal::string("a"))
                    .into(),
                NestedField::optional(4, "d", p(decimal))
                    .with_initial_default(Literal::decimal(1234))
                    .into(),
                NestedField::optional(5, "day", p(PrimitiveType::Date))
                    .with_initial_default(Literal::date(19_000))
                    .into(),
                NestedField::optional(6, "n", p(PrimitiveType::Int)).into(),
            ])
            .build()
            .unwrap();
        let metadata = TableMetadataBuilder::new(
            table.clone(),
            iceberg::spec::PartitionSpec::unpartition_spec(),
            iceberg::spec::SortOrder::unsorted_order(),
            dir.path().to_str().unwrap().into(),
            iceberg::spec::FormatVersion::V2,
            Default::default(),
        )
        .unwrap()
        .build()
        .unwrap()
        .metadata;
        let projection = Projection::new(&metadata, &table).unwrap();
        for projection in [projection.clone(), projection.with_string_dictionaries(&[])] {
            let batches = read_data_file(&FileIO::new_with_fs(), &file, &projection, 1)
                .await
                .unwrap();
            let [batch] = &batches[..] else {
                panic!("{batches:?}")
            };
            assert_eq!(batch.schema(), *projection.schema());
            let x = batch.column(1).as_primitive::<Int32Type>();
            assert_eq!(x.iter().collect::<Vec<_>>(), vec![Some(5); 3]);
            let s = arrow_cast::cast(batch.column(2), &DataType::Utf8).unwrap();
            let s = s.as_string::<i32>();
            assert_eq!(s.iter().collect::<Vec<_>>(), vec![Some("a"); 3]);
            let d = batch.column(3).as_primitive::<Decimal128Type>();
            assert_eq!(d.iter().collect::<Vec<_>>(), vec![Some(1234); 3]);
            let day = batch.column(4).as_primitive::<Date32Type>();
            assert_eq!(day.iter().collect::<Vec<_>>(), vec![Some(19_000); 3]);
            assert_eq!(batch.column(5).null_count(), 3);
            let x_is_5 = Reference::new("x")
                .equal_to(Datum::int(5))
                .bind(Arc::new(table.clone()), true)
                .unwrap();
            assert_ne!(file_match(&x_is_5, &file, None), FileMatch::Never);
            assert_eq!(row_matches(&x_is_5, batch).unwrap().true_count(), 3);
        }
    }
}
