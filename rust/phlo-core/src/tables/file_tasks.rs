//! Reading chosen data files (not a whole snapshot) projected by Iceberg field id, so files
//! written before a column was renamed, added or dropped read in the table's current schema.
//! Deletes read the files a filter may touch; `changes` reads the files some snapshots added.

use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::stream::{self, BoxStream, StreamExt};
use iceberg::Runtime;
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::io::FileIO;
use iceberg::scan::FileScanTask;
use iceberg::spec::{DEFAULT_SCHEMA_NAME_MAPPING, DataFile, NameMapping, SchemaRef, TableMetadata};

use crate::error::{Context, Error, Result};

/// Rows per batch when a file is read on its own.
const BATCH_ROWS: usize = 64 * 1024;

/// A task reading `file` whole, its columns `field_ids` in `schema` (by id: a renamed column
/// gets its current name, a column the file lacks reads as nulls).
pub(crate) fn file_task(
    metadata: &TableMetadata,
    schema: &SchemaRef,
    file: &DataFile,
    field_ids: Vec<i32>,
) -> Result<FileScanTask> {
    Ok(FileScanTask {
        file_size_in_bytes: file.file_size_in_bytes(),
        start: 0,
        length: file.file_size_in_bytes(),
        record_count: Some(file.record_count()),
        data_file_path: file.file_path().to_string(),
        data_file_format: file.file_format(),
        schema: schema.clone(),
        project_field_ids: field_ids,
        predicate: None,
        deletes: vec![],
        // Without a spec the reader takes every column from the file, as iceberg-rust's own
        // scans do (a data file's spec id is not public).
        partition: None,
        partition_spec: None,
        name_mapping: name_mapping(metadata)?,
        case_sensitive: true,
    })
}

/// The table's name mapping (for files written without field ids, e.g. imported Parquet).
fn name_mapping(metadata: &TableMetadata) -> Result<Option<Arc<NameMapping>>> {
    metadata
        .properties()
        .get(DEFAULT_SCHEMA_NAME_MAPPING)
        .map(|raw| {
            serde_json::from_str::<NameMapping>(raw).map_err(|e| {
                Error::invalid(
                    format!("the table property {DEFAULT_SCHEMA_NAME_MAPPING} is not valid: {e}"),
                    "fix or remove the property",
                )
            })
        })
        .transpose()
        .map(|m| m.map(Arc::new))
}

/// The batches of one task, decoded on the thread that polls the stream.
pub(crate) fn read_task(
    io: &FileIO,
    task: FileScanTask,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    let path = task.data_file_path.clone();
    let runtime = Runtime::try_current().context(|| "finding the async runtime".into())?;
    let batches = ArrowReaderBuilder::new(io.clone(), runtime)
        .with_batch_size(BATCH_ROWS)
        .with_data_file_concurrency_limit(1)
        .build()
        .read(stream::iter([Ok(task)]).boxed())
        .context(|| format!("reading {path}"))?
        .stream();
    Ok(batches
        .map(move |batch| batch.context(|| format!("reading {path}")))
        .boxed())
}
