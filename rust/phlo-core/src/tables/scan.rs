//! Scans: the snapshot to read and the schema to read it with, pruning of manifests by their
//! partition summaries ([`super::manifest_filter`]) and of data files by their
//! statistics and partition values, and streaming the rows to Arrow through the one reader of
//! data files ([`super::read`], columns matched by Iceberg field id).

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use arrow_select::filter::filter_record_batch;
use futures::FutureExt;
use futures::SinkExt;
use futures::channel::mpsc;
use futures::stream::{BoxStream, StreamExt};
use iceberg::expr::{Bind, BoundPredicate};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, FormatVersion, Schema, SchemaRef, SnapshotLog, SnapshotRef, TableMetadata,
};
use tokio::sync::Notify;

use super::eval::{FileMatch, file_match, referenced_field_ids, row_matches};
use super::filter::bind_filters;
use super::manifests::{LiveFile, ManifestsRead, snapshot_files_matching};
use super::read::{Footer, PageJudge, ProjectedFile, Projection};
use super::table::LoadedTable;
use super::{Filter, deletes};
use crate::catalog::{MAIN, swept};
use crate::error::{Context, Error, Location, Result};

/// Rows per scanned batch unless the caller asks otherwise (Parquet's own default of 1,024
/// makes per-batch overhead dominate large reads).
const DEFAULT_BATCH_ROWS: usize = 64 * 1024;
/// Footers read before the scan kept for it, at most (each holds up to 1 MiB of its file's
/// tail); the footers of further files are read again by the scan.
const FOOTERS_KEPT: usize = 64;
/// Files whose dictionary pages are read at once.
const DICTIONARY_FILES_AT_ONCE: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Columns to read, in this order; `None` reads all.
    pub columns: Option<Vec<String>>,
    /// ANDed row filters.
    pub filters: Vec<Filter>,
    /// Read this snapshot instead of the ref's head.
    pub snapshot_id: Option<i64>,
    /// Read the ref as it was at this time (ms since epoch): the last snapshot at or before it.
    pub as_of_ms: Option<i64>,
    /// The catalog branch or tag to read (`main` when `None`).
    pub ref_name: Option<String>,
    pub batch_size: Option<usize>,
}

/// A planned scan: the data files left after pruning, and how many the snapshot has in all.
pub struct ScanPlan {
    io: FileIO,
    files: Vec<deletes::FileToRead>,
    /// What is read of each file: the selected columns first, then those only the filter or
    /// equality deletes need.
    read: Projection,
    /// Checked on every row read (pruning only skips files none of whose rows can match).
    predicate: Option<Arc<BoundPredicate>>,
    schema: ArrowSchemaRef,
    pub snapshot_id: Option<i64>,
    pub files_total: usize,
    pub files_scanned: usize,
    /// The snapshot's data manifests, and how many planning read (the others were skipped by
    /// their partition summaries).
    pub manifests: ManifestsRead,
    batch_size: usize,
    /// The runtime the plan was made on; files are decoded on its worker threads.
    runtime: tokio::runtime::Handle,
    /// The table's metadata (partition specs), for [`Self::file_metadata`].
    metadata: Arc<TableMetadata>,
    /// The Iceberg schema the files are read with, for [`Self::select`].
    table_schema: SchemaRef,
    /// Whether string columns are read as dictionaries ([`Self::with_string_dictionaries`]),
    /// kept by [`Self::select`].
    string_dictionaries: bool,
    /// Footers read before the scan ([`Self::judge_dictionaries`]), shared with the plans
    /// [`Self::select`] makes, taken by the scan.
    footers: Arc<Footers>,
    /// The catalog ref the table was loaded from: a missing file names it ([`swept::on_ref`]).
    ref_name: Arc<str>,
}

/// Data file footers read ahead of a scan (or being read), by path, for the scan to take
/// instead of reading them again: a scan opening a file whose footer is being read waits for
/// that read.
#[derive(Default)]
struct Footers(Mutex<HashMap<String, Arc<FooterCell>>>);

type FooterCell = tokio::sync::OnceCell<Footer>;

impl Footers {
    /// The cell of `path`'s footer, kept for the scan while few are.
    fn cell(&self, path: &str) -> Arc<FooterCell> {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = kept.get(path) {
            return cell.clone();
        }
        let cell = Arc::new(FooterCell::new());
        if kept.len() < FOOTERS_KEPT {
            kept.insert(path.to_string(), cell.clone());
        }
        cell
    }

    fn take(&self, path: &str) -> Option<Arc<FooterCell>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path)
    }
}

impl ScanPlan {
    pub async fn plan(io: &FileIO, table: &LoadedTable, options: &ScanOptions) -> Result<Self> {
        let name = table.ident.to_string();
        let snapshot = pick_snapshot(table, options)?;
        let schema = read_schema(table, snapshot.as_ref(), options)?;
        if options.batch_size == Some(0) {
            return Err(Error::InvalidInput {
                message: "batch_size is 0".into(),
                at: Location {
                    table: Some(name),
                    column: None,
                },
                hint: "give a batch size of at least 1 row, or leave it out".into(),
            });
        }
        let columns = match &options.columns {
            Some(columns) => {
                check_selection(columns).map_err(|e| e.in_table(&name))?;
                columns.clone()
            }
            None => schema
                .as_struct()
                .fields()
                .iter()
                .map(|f| f.name.clone())
                .collect(),
        };
        let predicate = bind_filters(&options.filters, &schema)
            .map_err(|e| e.in_table(&name))?
            .map(|p| p.bind(schema.clone(), true))
            .transpose()
            .context(|| format!("binding the filter to {name}"))?;
        let (live, total, manifests) = match &snapshot {
            Some(snapshot) => {
                let (files, manifests) =
                    snapshot_files_matching(io, table, snapshot, predicate.as_ref())
                        .await
                        .map_err(|e| swept::on_ref(e, &table.ref_name))?;
                let total = files.data.len() + manifests.files_skipped;
                let kept = prune(table, files.data, predicate.as_ref());
                (
                    deletes::attach(table, kept, files.deletes)?,
                    total,
                    manifests,
                )
            }
            None => (vec![], 0, ManifestsRead::default()),
        };
        let read = read_projection(
            &table.metadata,
            &schema,
            &columns,
            predicate.as_ref(),
            &live,
        )
        .map_err(|e| e.in_table(&name))?;
        Ok(Self {
            io: io.clone(),
            files_scanned: live.len(),
            files: live,
            schema: read.leading(columns.len())?,
            read,
            predicate: predicate.map(Arc::new),
            snapshot_id: snapshot.map(|s| s.snapshot_id()),
            files_total: total,
            manifests,
            batch_size: options.batch_size.unwrap_or(DEFAULT_BATCH_ROWS),
            runtime: current_runtime()?,
            metadata: table.metadata.clone(),
            table_schema: schema,
            string_dictionaries: false,
            footers: Arc::default(),
            ref_name: table.ref_name.as_str().into(),
        })
    }

    /// The same plan (snapshot, files, filter) reading only `columns`, in this order: a
    /// narrower read after a first look at the files' metadata, without planning again (which
    /// would read the manifests again, and might see a newer snapshot).
    pub fn select(&self, columns: &[String]) -> Result<Self> {
        check_selection(columns)?;
        let read = read_projection(
            &self.metadata,
            &self.table_schema,
            columns,
            self.predicate.as_deref(),
            &self.files,
        )?;
        let narrowed = Self {
            io: self.io.clone(),
            files: self.files.clone(),
            schema: read.leading(columns.len())?,
            read,
            predicate: self.predicate.clone(),
            snapshot_id: self.snapshot_id,
            files_total: self.files_total,
            files_scanned: self.files_scanned,
            manifests: self.manifests,
            batch_size: self.batch_size,
            runtime: self.runtime.clone(),
            metadata: self.metadata.clone(),
            table_schema: self.table_schema.clone(),
            string_dictionaries: false,
            footers: self.footers.clone(),
            ref_name: self.ref_name.clone(),
        };
        match self.string_dictionaries {
            true => narrowed.with_string_dictionaries(),
            false => Ok(narrowed),
        }
    }

    /// A plan that reads exactly `files` (chosen by the caller, e.g. those some snapshots
    /// added) whole, in `schema`; `snapshot` is the one reported as read.
    pub(crate) fn of_files(
        io: &FileIO,
        table: &LoadedTable,
        files: Vec<LiveFile>,
        schema: &Schema,
        snapshot: Option<&SnapshotRef>,
        batch_size: Option<usize>,
    ) -> Result<Self> {
        let read = Projection::new(&table.metadata, schema)?;
        Ok(Self {
            io: io.clone(),
            files_total: snapshot.and_then(files_in).unwrap_or(files.len()),
            files_scanned: files.len(),
            files: files
                .into_iter()
                .map(deletes::FileToRead::without_deletes)
                .collect(),
            schema: read.schema().clone(),
            read,
            predicate: None,
            snapshot_id: snapshot.map(|s| s.snapshot_id()),
            manifests: ManifestsRead::default(),
            batch_size: batch_size.unwrap_or(DEFAULT_BATCH_ROWS),
            runtime: current_runtime()?,
            metadata: table.metadata.clone(),
            table_schema: Arc::new(schema.clone()),
            string_dictionaries: false,
            footers: Arc::default(),
            ref_name: table.ref_name.as_str().into(),
        })
    }

    /// Reads every selected string column the filter does not compare as an Arrow dictionary
    /// ([`super::read::string_dictionary`]): chunks a file stores dictionary-encoded keep the
    /// file's dictionary (no string is copied; consumers can judge each distinct value once),
    /// other chunks become a dictionary of their own values, one key per row.
    pub fn with_string_dictionaries(mut self) -> Result<Self> {
        let compared = needed_ids(self.predicate.as_deref(), &self.files);
        self.read = self.read.with_string_dictionaries(&compared);
        self.schema = self.read.leading(self.schema.fields().len())?;
        self.string_dictionaries = true;
        Ok(self)
    }

    /// The data files left to read after pruning.
    pub fn data_file_paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.data.file.file_path())
    }

    /// The data files left to read after pruning, each with how many delete files apply to
    /// it (written by other engines: phlo writes copy-on-write) and whether it is Parquet.
    pub fn data_files(&self) -> impl Iterator<Item = (&str, usize, bool)> {
        self.files.iter().map(|f| {
            let parquet = f.data.file.file_format() == iceberg::spec::DataFileFormat::Parquet;
            (f.data.file.file_path(), f.deletes.len(), parquet)
        })
    }

    /// The data files left to read as their manifests describe them (row count, column
    /// statistics), each with how many delete files apply to it and whether its statistics
    /// prove that every one of its rows matches the filter: for answers taken from metadata
    /// instead of rows (quality checks).
    pub fn file_metadata(&self) -> impl Iterator<Item = (&DataFile, usize, bool)> {
        self.files.iter().map(|f| {
            let whole = every_row_matches(self.predicate.as_deref(), &self.metadata, &f.data);
            (&f.data.file, f.deletes.len(), whole)
        })
    }

    /// For each data file to read (several at once, in no particular order), whether the
    /// judges `judges` makes pass every chunk of each of `columns` (string columns of the
    /// table) as its pages alone give it ([`ProjectedFile::judge_strings`]; false for a column
    /// whose pages are not read so). `judges` gets the column's position in `columns` and makes
    /// one chunk's judge, which gets its pages of strings on the thread that decoded them. Each
    /// file is read by a task of its own on the runtime's workers, as the scan's files are.
    /// Footers read here are shared with the scan of this plan or one [`Self::select`] makes
    /// from it, even while being read: a file's footer is read once either way.
    pub fn judge_dictionaries<J>(
        &self,
        columns: &[String],
        judges: J,
    ) -> Result<BoxStream<'static, Result<Vec<bool>>>>
    where
        J: Fn(usize) -> PageJudge + Send + Sync + 'static,
    {
        let projection = Projection::select(&self.metadata, &self.table_schema, columns)?;
        let at: Vec<usize> = (0..columns.len()).collect();
        let judges = Arc::new(judges);
        let tasks: Vec<_> = (self.files.iter())
            .map(|file| {
                let (projection, at, judges) = (projection.clone(), at.clone(), judges.clone());
                let io = self.io.clone();
                let data = file.data.file.clone();
                // Registered now, so that the scan, opening the file meanwhile, waits for
                // this read instead of reading the footer again.
                let footer = self.footers.cell(data.file_path());
                let runtime = self.runtime.clone();
                async move {
                    let path = data.file_path().to_string();
                    let read = async move {
                        let footer = footer.get_or_try_init(|| Footer::read(&io, &data)).await?;
                        let opened = ProjectedFile::of_footer(footer.clone(), &data, &projection)?;
                        let judged = opened.judge_strings(&at, move |c| judges(c)).await?;
                        Ok(judged
                            .into_iter()
                            .map(|chunks| chunks.is_some_and(|c| c.into_iter().all(|p| p)))
                            .collect())
                    };
                    runtime.spawn(read).await.map_err(|e| {
                        Error::from_join(format!("judging the dictionaries of {path}"), e)
                    })?
                }
            })
            .collect();
        Ok(futures::stream::iter(tasks)
            .buffer_unordered(DICTIONARY_FILES_AT_ONCE)
            .boxed())
    }

    /// The Arrow schema every batch of the stream has.
    pub fn schema(&self) -> ArrowSchemaRef {
        self.schema.clone()
    }

    /// Reads the planned files as a stream of batches with exactly `schema()`. Files are read
    /// and decoded by one task per core on the runtime's workers, row group by row group: the
    /// worker that opens a file leaves its other row groups to whichever worker is free, so
    /// one file of several row groups is decoded on every core. Batches arrive in no particular
    /// order, through a small bounded channel.
    pub fn into_stream(self) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shared = Arc::new(Worker {
            io: self.io,
            queue: Mutex::new(Queue {
                parts: self
                    .files
                    .into_iter()
                    .map(|f| Part::File(Box::new(f)))
                    .collect(),
                opening: 0,
            }),
            opened: Notify::new(),
            deletes: deletes::Loader::default(),
            selected: self.read.first(self.schema.fields().len())?,
            read: self.read,
            metadata: self.metadata,
            footers: self.footers,
            predicate: self.predicate,
            schema: self.schema,
            batch_size: self.batch_size,
        });
        let (sender, receiver) = mpsc::channel::<Result<RecordBatch>>(workers * 2);
        for _ in 0..workers {
            let (shared, mut sender) = (shared.clone(), sender.clone());
            self.runtime.spawn(async move {
                // A panic would end the task silently and the stream would just be shorter:
                // it is sent on as an error instead.
                let work = AssertUnwindSafe(shared.read_parts(sender.clone()));
                if let Err(panic) = work.catch_unwind().await {
                    let failed = Error::from_panic("reading data files", panic.as_ref());
                    let _ = sender.send(Err(failed)).await;
                }
            });
        }
        let ref_name = self.ref_name;
        Ok(receiver
            .map(move |read| read.map_err(|e| swept::on_ref(e, &ref_name)))
            .boxed())
    }
}

/// The schema a scan reads with. Iceberg reads a ref's head with the table's current schema
/// (a column renamed or added since the last write shows under its new name) and a snapshot
/// picked by id or time with the schema it was written with.
fn read_schema(
    table: &LoadedTable,
    snapshot: Option<&SnapshotRef>,
    options: &ScanOptions,
) -> Result<SchemaRef> {
    let time_travel = options.snapshot_id.is_some() || options.as_of_ms.is_some();
    match snapshot {
        Some(s) if time_travel => s
            .schema(&table.metadata)
            .context(|| format!("reading the schema of snapshot {}", s.snapshot_id())),
        _ => Ok(table.metadata.current_schema().clone()),
    }
}

/// The files some row may match `predicate` in, judged by their statistics and (in the spec
/// each was written with) identity partition values.
fn prune(
    table: &LoadedTable,
    files: Vec<LiveFile>,
    predicate: Option<&BoundPredicate>,
) -> Vec<LiveFile> {
    let Some(predicate) = predicate else {
        return files;
    };
    files
        .into_iter()
        .filter(|f| {
            let spec = table.metadata.partition_spec_by_id(f.spec_id);
            file_match(predicate, &f.file, spec.map(|s| s.as_ref())) != FileMatch::Never
        })
        .collect()
}

/// Whether `file`'s statistics or (identity) partition values prove that every one of its
/// rows matches `predicate`.
fn every_row_matches(
    predicate: Option<&BoundPredicate>,
    metadata: &TableMetadata,
    file: &LiveFile,
) -> bool {
    predicate.is_none_or(|p| {
        let spec = metadata.partition_spec_by_id(file.spec_id);
        file_match(p, &file.file, spec.map(|s| s.as_ref())) == FileMatch::Always
    })
}

/// The columns the filter and the files' equality deletes compare (field ids).
fn needed_ids(predicate: Option<&BoundPredicate>, files: &[deletes::FileToRead]) -> Vec<i32> {
    let mut needed = predicate.map(referenced_field_ids).unwrap_or_default();
    needed.extend(files.iter().flat_map(|f| f.equality_ids()));
    needed
}

/// The columns read of every file: `columns`, then those the filter and the files' equality
/// deletes compare not among them.
fn read_projection(
    metadata: &TableMetadata,
    schema: &Schema,
    columns: &[String],
    predicate: Option<&BoundPredicate>,
    files: &[deletes::FileToRead],
) -> Result<Projection> {
    let mut read = columns.to_vec();
    for id in needed_ids(predicate, files) {
        // Filters compare top-level columns (binding refuses others): an id that is not one is
        // an equality delete's.
        let field = schema.as_struct().field_by_id(id).ok_or_else(|| {
            let delete = (files.iter().flat_map(|f| &f.deletes))
                .find(|d| d.file.equality_ids().unwrap_or_default().contains(&id));
            deletes::equality_column_unread(id, delete.map(|d| d.file.file_path()))
        })?;
        if !read.contains(&field.name) {
            read.push(field.name.clone());
        }
    }
    Projection::select(metadata, schema, &read)
}

fn current_runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|e| {
        Error::invalid(
            format!("no async runtime: {e}"),
            "plan scans inside the runtime",
        )
    })
}

/// How many data files the snapshot has, from its summary.
fn files_in(snapshot: &SnapshotRef) -> Option<usize> {
    snapshot
        .summary()
        .additional_properties
        .get("total-data-files")
        .and_then(|v| v.parse().ok())
}

/// What the scan's workers share: the work left and how to do it.
struct Worker {
    io: FileIO,
    queue: Mutex<Queue>,
    /// Signalled when a worker has opened a file (its row groups are queued) or failed to.
    opened: Notify,
    deletes: deletes::Loader,
    read: Projection,
    /// Only the selected columns: what is read of a file all of whose rows match the filter
    /// (by its partition values or statistics) and that no equality delete applies to.
    selected: Projection,
    /// Partition specs, to judge files against the filter.
    metadata: Arc<TableMetadata>,
    /// Footers read before the scan.
    footers: Arc<Footers>,
    predicate: Option<Arc<BoundPredicate>>,
    schema: ArrowSchemaRef,
    batch_size: usize,
}

/// The work left: files not opened yet, and row groups of files opened.
struct Queue {
    /// Row groups first (a file opened is read to its end before another is opened, so at
    /// most one file per worker is held open).
    parts: VecDeque<Part>,
    /// Files being opened: their row groups are still to come.
    opening: usize,
}

enum Part {
    /// Boxed: a file and its deletes' descriptions are large, a row group small.
    File(Box<deletes::FileToRead>),
    RowGroup(Arc<OpenedFile>, usize),
}

/// A data file opened for the scan: its footer and deletes, shared by the workers reading
/// its row groups.
struct OpenedFile {
    file: ProjectedFile,
    /// Whether its rows are checked against the filter (not when its partition values or
    /// statistics prove every row matches).
    filtered: bool,
}

/// What a worker takes from the queue.
enum Next {
    Part(Part),
    /// Nothing queued, but a file being opened will queue its row groups.
    Wait,
    Done,
}

impl Worker {
    /// Reads parts from the queue until no work is left, the consumer hangs up or a part
    /// fails (the error is the last thing sent).
    async fn read_parts(self: Arc<Self>, mut sender: mpsc::Sender<Result<RecordBatch>>) {
        loop {
            // Registered before the queue is looked at, so a file opened in between wakes it.
            let opened = self.opened.notified();
            let read = match self.next() {
                Next::Done => return,
                Next::Wait => {
                    opened.await;
                    continue;
                }
                Next::Part(Part::File(file)) => self.open_file(&file, &mut sender).await,
                Next::Part(Part::RowGroup(file, group)) => {
                    self.read_row_group(&file, group, &mut sender).await
                }
            };
            if let Err(e) = read {
                let _ = sender.send(Err(e)).await;
                return;
            }
            if sender.is_closed() {
                return;
            }
        }
    }

    fn next(&self) -> Next {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        match queue.parts.pop_front() {
            Some(part) => {
                if matches!(part, Part::File(_)) {
                    queue.opening += 1;
                }
                Next::Part(part)
            }
            None if queue.opening > 0 => Next::Wait,
            None => Next::Done,
        }
    }

    /// Opens a data file (its footer, its delete files), queues its row groups but the first
    /// for the other workers, and reads the first.
    async fn open_file(
        &self,
        file: &deletes::FileToRead,
        sender: &mut mpsc::Sender<Result<RecordBatch>>,
    ) -> Result<()> {
        // Whatever happens here (an error, a panic), waiting workers learn this file is done.
        let opening = Opening(self);
        let opened = Arc::new(self.open(file).await?);
        let groups = opened.file.num_row_groups();
        {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            for group in (1..groups).rev() {
                queue
                    .parts
                    .push_front(Part::RowGroup(opened.clone(), group));
            }
        }
        drop(opening);
        match groups {
            0 => Ok(()),
            _ => self.read_row_group(&opened, 0, sender).await,
        }
    }

    async fn open(&self, file: &deletes::FileToRead) -> Result<OpenedFile> {
        // A file whose every row matches needs no row filter, nor the columns it compares.
        let filtered = (self.predicate.as_deref())
            .is_some_and(|p| !every_row_matches(Some(p), &self.metadata, &file.data));
        let projection = match !filtered && file.equality_ids().next().is_none() {
            true => &self.selected,
            false => &self.read,
        };
        let data = &file.data.file;
        let footer = self.footers.take(data.file_path());
        let opening = async {
            match footer {
                Some(cell) => {
                    let footer = cell.get_or_try_init(|| Footer::read(&self.io, data));
                    ProjectedFile::of_footer(footer.await?.clone(), data, projection)
                }
                None => ProjectedFile::open(&self.io, data, projection).await,
            }
        };
        // The data file's footer is read while its delete files are.
        let (deletes, opened) =
            futures::try_join!(self.deletes.for_file(&self.io, &self.read, file), opening)?;
        Ok(OpenedFile {
            file: opened
                .with_batch_size(self.batch_size)
                .with_deletes(deletes),
            filtered,
        })
    }

    /// Sends the rows of one row group that are not deleted and match the filter.
    async fn read_row_group(
        &self,
        opened: &OpenedFile,
        group: usize,
        sender: &mut mpsc::Sender<Result<RecordBatch>>,
    ) -> Result<()> {
        let filter = self.predicate.as_deref().filter(|_| opened.filtered);
        let mut batches = opened.file.stream(vec![group])?;
        let width = self.schema.fields().len();
        while let Some(batch) = batches.next().await {
            let mut batch = batch?;
            if let Some(predicate) = filter {
                let mask = row_matches(predicate, &batch)?;
                batch = filter_record_batch(&batch, &mask).context(|| "filtering rows".into())?;
            }
            if batch.num_rows() == 0 {
                continue;
            }
            let batch =
                RecordBatch::try_new(self.schema.clone(), batch.columns()[..width].to_vec())
                    .context(|| "selecting the scanned columns".into())?;
            // A closed channel means the consumer stopped reading: stop too.
            if sender.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A file being opened: dropped once its row groups are queued (or it failed), waking the
/// workers waiting for them.
struct Opening<'a>(&'a Worker);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.opening -= 1;
        drop(queue);
        self.0.opened.notify_waiters();
    }
}

/// A selection names at least one column, each once.
fn check_selection(columns: &[String]) -> Result<()> {
    if columns.is_empty() {
        return Err(Error::invalid(
            "no columns selected",
            "name at least one column, or leave columns out to read them all",
        ));
    }
    let mut seen = HashSet::new();
    match columns.iter().find(|c| !seen.insert(c.as_str())) {
        Some(twice) => Err(Error::InvalidInput {
            message: format!("column {twice} is selected twice"),
            at: Location {
                table: None,
                column: Some(twice.clone()),
            },
            hint: "select each column once".into(),
        }),
        None => Ok(()),
    }
}

fn pick_snapshot(table: &LoadedTable, options: &ScanOptions) -> Result<Option<SnapshotRef>> {
    let name = table.ident.to_string();
    if let Some(id) = options.snapshot_id {
        return table
            .metadata
            .snapshot_by_id(id)
            .cloned()
            .map(Some)
            .ok_or_else(|| Error::InvalidInput {
                message: format!("snapshot {id} does not exist"),
                at: Location {
                    table: Some(name),
                    column: None,
                },
                hint: "pick a snapshot id from table.history()".into(),
            });
    }
    // The catalog ref was chosen when the table was loaded; inside its metadata the current
    // state is Iceberg's `main` branch.
    match options.as_of_ms {
        Some(as_of) => snapshot_at(table, as_of),
        None => Ok(table.snapshot_for_ref(MAIN).cloned()),
    }
}

/// The snapshot that was the table's current one at `as_of` (ms); `None` for a table without
/// snapshots. Iceberg's answer is the snapshot log's (as PyIceberg's and Java's time travel
/// read it): after another engine's rollback, the head's ancestors are not what the table held
/// then. A log that does not end at the head (a writer that keeps none) is not trusted: the
/// head's ancestry is walked instead.
pub fn snapshot_at(table: &LoadedTable, as_of: i64) -> Result<Option<SnapshotRef>> {
    let name = table.ident.to_string();
    let Some(head) = table.snapshot_for_ref(MAIN).cloned() else {
        return Ok(None);
    };
    let log = table.metadata.history();
    if log
        .last()
        .is_some_and(|e| e.snapshot_id == head.snapshot_id())
    {
        if let Some(at) = log.iter().rposition(|e| e.timestamp_ms <= as_of) {
            let id = log[at].snapshot_id;
            let expired = match table.metadata.snapshot_by_id(id) {
                None => format!("snapshot {id}, the table's current one then, was expired"),
                Some(_)
                    if log
                        .get(at + 1)
                        .is_some_and(|n| expired_between(table, &log[at], n)) =>
                {
                    format!(
                        "the table's current snapshot then was expired (another engine's \
                         expiry removed it from the snapshot log, which now shows snapshot \
                         {id} instead)"
                    )
                }
                Some(snapshot) => return Ok(Some(snapshot.clone())),
            };
            return Err(Error::InvalidInput {
                message: expired,
                at: Location {
                    table: Some(name),
                    column: None,
                },
                hint: "time travel reaches back only to retained snapshots; pick a later \
                       time (table.history() lists snapshot times)"
                    .into(),
            });
        }
        return Err(no_snapshot_then(name));
    }
    // Walk the ref's ancestry back to the last snapshot committed at or before `as_of`.
    let mut current = Some(head);
    while let Some(snapshot) = current {
        if snapshot.timestamp_ms() <= as_of {
            return Ok(Some(snapshot));
        }
        current = snapshot
            .parent_snapshot_id()
            .and_then(|id| table.metadata.snapshot_by_id(id).cloned());
    }
    Err(no_snapshot_then(name))
}

/// Whether log entries between `entry` and the next one, `next`, may have been removed with
/// their expired snapshots: PyIceberg's expiry drops the entries of the snapshots it expires
/// (Java's and iceberg-rust's drop all entries before such a one instead), leaving a gap in
/// which `entry`'s snapshot seems current when an expired one was. The sign: `next` is a
/// snapshot committed after `entry` (not a rollback to an older one) whose parent is not
/// `entry`'s snapshot and is gone, or was cleared (as PyIceberg's expiry clears the parent id
/// of what it expires' children). A cleared parent looks like a new lineage's root (a replace
/// of the table: Java's `REPLACE TABLE`, PyIceberg's removal of `main` before a write), which
/// is no gap; from format version 2 on, sequence numbers tell them apart.
fn expired_between(table: &LoadedTable, entry: &SnapshotLog, next: &SnapshotLog) -> bool {
    let Some(snapshot) = table.metadata.snapshot_by_id(next.snapshot_id) else {
        return true;
    };
    let parent = snapshot.parent_snapshot_id();
    snapshot.timestamp_ms() > entry.timestamp_ms
        && parent != Some(entry.snapshot_id)
        && match parent {
            Some(p) => table.metadata.snapshot_by_id(p).is_none(),
            None => !none_expired_between(table, entry.snapshot_id, snapshot),
        }
}

/// Whether every sequence number between snapshot `from`'s and `to`'s is a retained snapshot's
/// (of any table-level ref): then no snapshot committed in between was expired, as each commit
/// takes the next number. Version 1 tables number nothing, so this cannot be told there.
fn none_expired_between(table: &LoadedTable, from: i64, to: &SnapshotRef) -> bool {
    let Some(from) = table.metadata.snapshot_by_id(from) else {
        return false;
    };
    let (low, high) = (from.sequence_number(), to.sequence_number());
    if table.metadata.format_version() == FormatVersion::V1 || high <= low {
        return false;
    }
    let retained: HashSet<i64> = (table.metadata.snapshots())
        .map(|s| s.sequence_number())
        .filter(|n| (low + 1..high).contains(n))
        .collect();
    retained.len() as i64 == high - low - 1
}

fn no_snapshot_then(name: String) -> Error {
    Error::InvalidInput {
        message: "the table has no snapshot at or before the requested time".into(),
        at: Location {
            table: Some(name),
            column: None,
        },
        hint: "pick a later time; table.history() lists snapshot times".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableIdent;

    /// A table whose snapshots (id, parent, ms) are `snapshots` and whose snapshot log is `log`
    /// (id, ms); the last snapshot of the log is the head.
    fn table(snapshots: &[(i64, Option<i64>, i64)], log: &[(i64, i64)]) -> LoadedTable {
        let snapshots: Vec<_> = (snapshots.iter())
            .map(|&(id, parent, ms)| {
                serde_json::json!({
                    "snapshot-id": id, "parent-snapshot-id": parent, "sequence-number": id,
                    "timestamp-ms": ms, "manifest-list": format!("file:///t/{id}.avro"),
                    "summary": {"operation": "append"}, "schema-id": 0
                })
            })
            .collect();
        let head = log.last().unwrap().0;
        let metadata = serde_json::json!({
            "format-version": 2, "table-uuid": "01a22e1a-9aa7-72e7-86fb-17b4034a985d",
            "location": "file:///t", "last-sequence-number": 9, "last-updated-ms": 9000,
            "last-column-id": 1, "current-schema-id": 0,
            "schemas": [{"schema-id": 0, "type": "struct", "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]}],
            "default-spec-id": 0, "partition-specs": [{"spec-id": 0, "fields": []}],
            "last-partition-id": 999, "default-sort-order-id": 0,
            "sort-orders": [{"order-id": 0, "fields": []}],
            "current-snapshot-id": head, "snapshots": snapshots,
            "refs": {"main": {"snapshot-id": head, "type": "branch"}},
            "snapshot-log": log.iter()
                .map(|&(id, ms)| serde_json::json!({"snapshot-id": id, "timestamp-ms": ms}))
                .collect::<Vec<_>>(),
        });
        let metadata: TableMetadata = serde_json::from_value(metadata).unwrap();
        let ident = TableIdent::parse("raw.t").unwrap();
        LoadedTable::read_now(&ident, MAIN, Arc::new(metadata), "file:///t/m.json".into())
    }

    fn at(table: &LoadedTable, ms: i64) -> Result<i64> {
        Ok(snapshot_at(table, ms)?.unwrap().snapshot_id())
    }

    /// PyIceberg's expiry of snapshot 2 (snapshot 1 kept, e.g. by a tag) drops 2's log entry and
    /// 3's parent id: a time at which 2 was current is refused, not read as snapshot 1.
    #[test]
    fn a_time_whose_snapshot_pyiceberg_expired_is_refused_not_read_as_an_older_one() {
        let intact = table(
            &[(1, None, 1000), (2, Some(1), 2000), (3, Some(2), 3000)],
            &[(1, 1000), (2, 2000), (3, 3000)],
        );
        assert_eq!(at(&intact, 1500).unwrap(), 1);
        assert_eq!(at(&intact, 2500).unwrap(), 2);
        let expired = table(&[(1, None, 1000), (3, None, 3000)], &[(1, 1000), (3, 3000)]);
        let err = at(&expired, 2500).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        assert_eq!(at(&expired, 3500).unwrap(), 3);
        // A rollback to an older snapshot is not a gap.
        let rolled_back = table(
            &[(1, None, 1000), (2, Some(1), 2000)],
            &[(1, 1000), (2, 2000), (1, 2500)],
        );
        assert_eq!(at(&rolled_back, 2200).unwrap(), 2);
        assert_eq!(at(&rolled_back, 2600).unwrap(), 1);
    }

    /// A replace of the table (Java's `REPLACE TABLE`, PyIceberg's removal of `main` before an
    /// append) starts a new lineage: snapshot 3 has no parent, yet nothing was expired — every
    /// sequence number from 1 to 3 is a retained snapshot's — so a time before 3 reads 2, as
    /// PyIceberg's and Java's time travel do.
    #[test]
    fn a_new_lineage_is_not_mistaken_for_an_expiry_gap() {
        let replaced = table(
            &[(1, None, 1000), (2, Some(1), 2000), (3, None, 3000)],
            &[(1, 1000), (2, 2000), (3, 3000)],
        );
        assert_eq!(at(&replaced, 2500).unwrap(), 2);
        assert_eq!(at(&replaced, 3500).unwrap(), 3);
        // Snapshot 3 (of another table-level ref) is retained: nothing in between was expired.
        let beside = table(
            &[
                (1, None, 1000),
                (2, Some(1), 2000),
                (3, Some(2), 2100),
                (4, None, 3000),
            ],
            &[(1, 1000), (2, 2000), (4, 3000)],
        );
        assert_eq!(at(&beside, 2500).unwrap(), 2);
        // With it expired, it may have been main's then.
        let expired = table(
            &[(1, None, 1000), (2, Some(1), 2000), (4, None, 3000)],
            &[(1, 1000), (2, 2000), (4, 3000)],
        );
        assert!(
            at(&expired, 2500)
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        assert_eq!(at(&expired, 1500).unwrap(), 1);
    }
}
