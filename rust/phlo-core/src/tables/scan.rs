//! Scan planning (partition and min/max pruning by iceberg-rust) and streaming reads to Arrow.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use futures::FutureExt;
use futures::SinkExt;
use futures::channel::mpsc;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use iceberg::Runtime;
use iceberg::arrow::ArrowReader;
use iceberg::io::FileIO;
use iceberg::scan::FileScanTask;
use iceberg::spec::{SchemaRef, SnapshotRef};
use iceberg::table::Table;

use super::filter::{Filter, bind_filters};
use super::table::LoadedTable;
use crate::catalog::MAIN;
use crate::error::{Context, Error, Location, Result};
use crate::schema::arrow_schema_of;

/// Rows per scanned batch unless the caller asks otherwise (Parquet's own default of 1,024
/// makes per-batch overhead dominate large reads).
const DEFAULT_BATCH_ROWS: usize = 64 * 1024;

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
    table: Table,
    tasks: Vec<FileScanTask>,
    schema: ArrowSchemaRef,
    pub snapshot_id: Option<i64>,
    pub files_total: usize,
    pub files_scanned: usize,
    batch_size: Option<usize>,
    /// Where each output column is in the batches read, which come in table order (see
    /// `read_in_table_order`); `None` when that is the output order.
    reorder: Option<Vec<usize>>,
    /// The runtime the plan was made on; files are decoded on its worker threads.
    runtime: tokio::runtime::Handle,
}

impl ScanPlan {
    pub async fn plan(io: &FileIO, table: &LoadedTable, options: &ScanOptions) -> Result<Self> {
        let snapshot = pick_snapshot(table, options)?;
        let schema: SchemaRef = match &snapshot {
            Some(s) => s
                .schema(&table.metadata)
                .context(|| format!("reading the schema of snapshot {}", s.snapshot_id()))?,
            None => table.metadata.current_schema().clone(),
        };
        if options.batch_size == Some(0) {
            return Err(Error::InvalidInput {
                message: "batch_size is 0".into(),
                at: Location {
                    table: Some(table.ident.to_string()),
                    column: None,
                },
                hint: "give a batch size of at least 1 row, or leave it out".into(),
            });
        }
        let columns = match &options.columns {
            Some(columns) => {
                check_selection(columns).map_err(|e| e.in_table(&table.ident.to_string()))?;
                for column in columns {
                    if schema.field_by_name(column).is_none() {
                        return Err(Error::InvalidInput {
                            message: format!("column {column} is not in the table"),
                            at: Location {
                                table: Some(table.ident.to_string()),
                                column: Some(column.clone()),
                            },
                            hint: "select columns the table has (see table.schema)".into(),
                        });
                    }
                }
                columns.clone()
            }
            None => schema
                .as_struct()
                .fields()
                .iter()
                .map(|f| f.name.clone())
                .collect(),
        };
        let full = arrow_schema_of(&schema)?;
        let projected = Arc::new(
            full.project(
                &columns
                    .iter()
                    .map(|c| full.index_of(c))
                    .collect::<Result<Vec<_>, _>>()
                    .context(|| "projecting columns".into())?,
            )
            .context(|| "projecting columns".into())?,
        );
        let (columns, reorder) = read_in_table_order(&full, columns)?;
        let predicate = bind_filters(&options.filters, &schema)
            .map_err(|e| e.in_table(&table.ident.to_string()))?;
        let iceberg_table = reader_table(io, table)?;
        let runtime = current_runtime()?;
        let Some(snapshot) = snapshot else {
            return Ok(Self {
                table: iceberg_table,
                tasks: vec![],
                schema: projected,
                snapshot_id: None,
                files_total: 0,
                files_scanned: 0,
                batch_size: options.batch_size,
                reorder,
                runtime,
            });
        };
        let mut builder = iceberg_table
            .scan()
            .snapshot_id(snapshot.snapshot_id())
            .select(columns);
        if let Some(predicate) = predicate {
            builder = builder.with_filter(predicate);
        }
        let tasks: Vec<FileScanTask> = builder
            .build()
            .context(|| format!("planning a scan of {}", table.ident))?
            .plan_files()
            .await
            .context(|| format!("planning a scan of {}", table.ident))?
            .try_collect()
            .await
            .context(|| format!("planning a scan of {}", table.ident))?;
        let files_total = files_in(&snapshot).unwrap_or(tasks.len());
        Ok(Self {
            table: iceberg_table,
            files_scanned: tasks.len(),
            tasks,
            schema: projected,
            snapshot_id: Some(snapshot.snapshot_id()),
            files_total,
            batch_size: options.batch_size,
            reorder,
            runtime,
        })
    }

    /// A plan that reads exactly `tasks` (files chosen by the caller, e.g. those some snapshots
    /// added) as batches of `schema`; `snapshot` is the one reported as read.
    pub(crate) fn of_tasks(
        io: &FileIO,
        table: &LoadedTable,
        tasks: Vec<FileScanTask>,
        schema: ArrowSchemaRef,
        snapshot: Option<&SnapshotRef>,
        batch_size: Option<usize>,
    ) -> Result<Self> {
        Ok(Self {
            table: reader_table(io, table)?,
            files_total: snapshot.and_then(files_in).unwrap_or(tasks.len()),
            files_scanned: tasks.len(),
            tasks,
            schema,
            snapshot_id: snapshot.map(|s| s.snapshot_id()),
            batch_size,
            reorder: None,
            runtime: current_runtime()?,
        })
    }

    /// The data files left to read after pruning.
    pub fn data_file_paths(&self) -> impl Iterator<Item = &str> {
        self.tasks.iter().map(|t| t.data_file_path())
    }

    /// The data files left to read after pruning, each with how many delete files apply to
    /// it (written by other engines: phlo writes copy-on-write) and whether it is Parquet.
    pub fn data_files(&self) -> impl Iterator<Item = (&str, usize, bool)> {
        self.tasks.iter().map(|t| {
            let parquet = t.data_file_format == iceberg::spec::DataFileFormat::Parquet;
            (t.data_file_path(), t.deletes.len(), parquet)
        })
    }

    /// The Arrow schema every batch of the stream has.
    pub fn schema(&self) -> ArrowSchemaRef {
        self.schema.clone()
    }

    /// Reads the planned files as a stream of batches with exactly `schema()`. Files are read
    /// and decoded by one task per core on the runtime's workers (iceberg-rust's reader decodes
    /// on whichever thread polls it, which would be the consumer's alone); batches arrive in
    /// no particular order, through a small bounded channel.
    pub fn into_stream(self) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let reader = self
            .table
            .reader_builder()
            .with_batch_size(self.batch_size.unwrap_or(DEFAULT_BATCH_ROWS))
            .with_data_file_concurrency_limit(1)
            .build();
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(self.tasks.len().max(1));
        let queue = Arc::new(Mutex::new(VecDeque::from(self.tasks)));
        let (sender, receiver) = mpsc::channel::<Result<RecordBatch>>(workers * 2);
        for _ in 0..workers {
            let (reader, queue, mut sender) = (reader.clone(), queue.clone(), sender.clone());
            self.runtime.spawn(async move {
                // A panic would end the task silently and the stream would just be shorter:
                // it is sent on as an error instead.
                let work = AssertUnwindSafe(read_files(reader, queue, sender.clone()));
                if let Err(panic) = work.catch_unwind().await {
                    let failed = Error::from_panic("reading data files", panic.as_ref());
                    let _ = sender.send(Err(failed)).await;
                }
            });
        }
        let (schema, reorder) = (self.schema, self.reorder);
        Ok(receiver
            .map(move |batch| {
                // The reader may differ from the declared schema only in field metadata.
                let batch = batch?;
                let columns = match &reorder {
                    Some(order) => order.iter().map(|&i| batch.column(i).clone()).collect(),
                    None => batch.columns().to_vec(),
                };
                RecordBatch::try_new(schema.clone(), columns)
                    .context(|| "aligning a scanned batch with the table schema".into())
            })
            .boxed())
    }
}

/// The selected columns in table order, and where each selected column is among them.
/// iceberg-rust 0.10's reader decodes a file's columns in the file's order and, when their
/// types line up position by position with the selection, only renames them
/// (`RecordBatchTransformer::compare_schemas`): a selection of same-typed columns in another
/// order (`["b", "a"]`) would come back with the values swapped. Read in table order — the
/// order files are written in — and reorder here.
fn read_in_table_order(
    table: &arrow_schema::Schema,
    columns: Vec<String>,
) -> Result<(Vec<String>, Option<Vec<usize>>)> {
    let mut positions = columns
        .iter()
        .map(|c| table.index_of(c))
        .collect::<Result<Vec<_>, _>>()
        .context(|| "projecting columns".into())?;
    if positions.is_sorted() {
        return Ok((columns, None));
    }
    let requested = positions.clone();
    positions.sort_unstable();
    let order = requested
        .iter()
        .map(|p| positions.binary_search(p).unwrap_or_default())
        .collect();
    let read = positions
        .iter()
        .map(|&p| table.field(p).name().clone())
        .collect();
    Ok((read, Some(order)))
}

/// The table as iceberg-rust's reader wants it (read-only).
fn reader_table(io: &FileIO, table: &LoadedTable) -> Result<Table> {
    Table::builder()
        .metadata(table.metadata.clone())
        .metadata_location(table.metadata_location.clone())
        .identifier(
            iceberg::TableIdent::from_strs(
                table
                    .ident
                    .namespace
                    .split('.')
                    .chain([table.ident.name.as_str()]),
            )
            .context(|| "naming the table".into())?,
        )
        .file_io(io.clone())
        .readonly(true)
        .runtime(Runtime::try_current().context(|| "finding the async runtime".into())?)
        .build()
        .context(|| format!("opening {} for reading", table.ident))
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

/// One scan worker: reads files from `queue` until it is empty, the consumer hangs up or a
/// file fails (the error is the last thing sent).
async fn read_files(
    reader: ArrowReader,
    queue: Arc<Mutex<VecDeque<FileScanTask>>>,
    mut sender: mpsc::Sender<Result<RecordBatch>>,
) {
    loop {
        let task = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        let Some(task) = task else { break };
        let path = task.data_file_path.clone();
        let file = stream::iter([Ok(task)]).boxed();
        let mut batches = match reader.clone().read(file) {
            Ok(result) => result.stream(),
            Err(e) => {
                let _ = sender
                    .send(Err(e).context(|| format!("starting to read data file {path}")))
                    .await;
                return;
            }
        };
        while let Some(batch) = batches.next().await {
            let batch = batch.context(|| format!("reading data file {path}"));
            let failed = batch.is_err();
            // A closed channel means the consumer stopped reading: stop too.
            if sender.send(batch).await.is_err() || failed {
                return;
            }
        }
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

/// The last snapshot of the table's history committed at or before `as_of` (ms); `None` for a
/// table without snapshots.
pub fn snapshot_at(table: &LoadedTable, as_of: i64) -> Result<Option<SnapshotRef>> {
    let name = table.ident.to_string();
    let Some(head) = table.snapshot_for_ref(MAIN).cloned() else {
        return Ok(None);
    };
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
    Err(Error::InvalidInput {
        message: "the table has no snapshot at or before the requested time".into(),
        at: Location {
            table: Some(name),
            column: None,
        },
        hint: "pick a later time; table.history() lists snapshot times".into(),
    })
}
