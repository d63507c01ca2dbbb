//! Scan planning (partition and min/max pruning by iceberg-rust) and streaming reads to Arrow.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use futures::SinkExt;
use futures::channel::mpsc;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use iceberg::Runtime;
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
        let columns = match &options.columns {
            Some(columns) => {
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
        let predicate = bind_filters(&options.filters, &schema)
            .map_err(|e| e.in_table(&table.ident.to_string()))?;
        let iceberg_table = Table::builder()
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
            .context(|| format!("opening {} for reading", table.ident))?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            Error::invalid(
                format!("no async runtime: {e}"),
                "plan scans inside the runtime",
            )
        })?;
        let Some(snapshot) = snapshot else {
            return Ok(Self {
                table: iceberg_table,
                tasks: vec![],
                schema: projected,
                snapshot_id: None,
                files_total: 0,
                files_scanned: 0,
                batch_size: options.batch_size,
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
        let files_total = snapshot
            .summary()
            .additional_properties
            .get("total-data-files")
            .and_then(|v| v.parse().ok())
            .unwrap_or(tasks.len());
        Ok(Self {
            table: iceberg_table,
            files_scanned: tasks.len(),
            tasks,
            schema: projected,
            snapshot_id: Some(snapshot.snapshot_id()),
            files_total,
            batch_size: options.batch_size,
            runtime,
        })
    }

    /// The data files left to read after pruning.
    pub fn data_file_paths(&self) -> impl Iterator<Item = &str> {
        self.tasks.iter().map(|t| t.data_file_path())
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
                loop {
                    let task = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some(task) = task else { break };
                    let file = stream::iter([Ok(task)]).boxed();
                    let mut batches = match reader.clone().read(file) {
                        Ok(result) => result.stream(),
                        Err(e) => {
                            let _ = sender
                                .send(Err(e).context(|| "starting the scan".into()))
                                .await;
                            return;
                        }
                    };
                    while let Some(batch) = batches.next().await {
                        let batch = batch.context(|| "reading data files".into());
                        let failed = batch.is_err();
                        // A closed channel means the consumer stopped reading: stop too.
                        if sender.send(batch).await.is_err() || failed {
                            return;
                        }
                    }
                }
            });
        }
        let schema = self.schema;
        Ok(receiver
            .map(move |batch| {
                // The reader may differ from the declared schema only in field metadata.
                RecordBatch::try_new(schema.clone(), batch?.columns().to_vec())
                    .context(|| "aligning a scanned batch with the table schema".into())
            })
            .boxed())
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
