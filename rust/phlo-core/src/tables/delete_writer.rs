//! Position-delete files, as merge-on-read writes leave them: one Parquet file per data file
//! (so `referenced_data_file` names it, readers skip the file for every other data file, and a
//! conflict or compaction knows exactly which data file it belongs to), with the spec's
//! columns `file_path` and `pos` under their reserved field ids, sorted by position, in the
//! data file's partition.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, NestedField, PrimitiveType, Schema, Type,
};
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::LoadedTable;
use super::discard::WrittenFiles;
use super::manifests::LiveFile;
use crate::error::{Context, Error, Result};
use crate::schema::arrow_schema_of;

/// Rows handed to the Parquet writer at a time.
const CHUNK_ROWS: usize = 64 * 1024;

/// Field ids the spec reserves for a position delete file's columns.
pub(crate) const FILE_PATH_ID: i32 = 2147483546;
pub(crate) const POS_ID: i32 = 2147483545;

/// The schema of a position delete file (without the optional `row` column).
pub(crate) fn position_delete_schema() -> Result<Schema> {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(
                FILE_PATH_ID,
                "file_path",
                Type::Primitive(PrimitiveType::String),
            )
            .into(),
            NestedField::required(POS_ID, "pos", Type::Primitive(PrimitiveType::Long)).into(),
        ])
        .build()
        .context(|| "describing a position delete file".into())
}

/// Writes the delete file marking `positions` (ascending, each once) of `data` deleted, named
/// after `file_prefix` under the table's data folder (the name recorded in `written` first).
/// Not committed: the caller adds it to a snapshot (or removes it on failure).
pub async fn write_position_deletes(
    io: &FileIO,
    table: &LoadedTable,
    data: &LiveFile,
    positions: &[i64],
    (file_prefix, written): (&str, &WrittenFiles),
) -> Result<DataFile> {
    if positions.is_empty() || positions.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::internal(
            "writing position deletes",
            "positions must be ascending and distinct",
        ));
    }
    let schema = Arc::new(position_delete_schema()?);
    let arrow = arrow_schema_of(&schema)?;
    let target = data.file.file_path();
    // The path column is built once for a chunk of rows and sliced, not repeated per position.
    let chunk = positions.len().min(CHUNK_ROWS);
    let paths = StringArray::from_iter_values(std::iter::repeat_n(target, chunk));
    let path = format!(
        "{}/data/{file_prefix}-deletes-{}.parquet",
        table.metadata.location(),
        uuid::Uuid::now_v7()
    );
    written.record(&path);
    let output = io
        .new_output(&path)
        .context(|| format!("creating {path}"))?;
    // The path repeats on every row: dictionary-encoded it costs next to nothing. Positions
    // are distinct: a dictionary of them would only be built to be abandoned.
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_column_dictionary_enabled(ColumnPath::from("pos"), false)
        .build();
    let mut writer = ParquetWriterBuilder::new(props, schema)
        .build(output)
        .await
        .context(|| format!("opening {path}"))?;
    for positions in positions.chunks(CHUNK_ROWS) {
        let batch = RecordBatch::try_new(
            arrow.clone(),
            vec![
                Arc::new(paths.slice(0, positions.len())),
                Arc::new(Int64Array::from(positions.to_vec())),
            ],
        )
        .context(|| "building position deletes".into())?;
        writer
            .write(&batch)
            .await
            .context(|| format!("writing {path}"))?;
    }
    let mut built = writer.close().await.context(|| format!("closing {path}"))?;
    let mut builder = built.pop().ok_or_else(|| {
        Error::internal("writing position deletes", "the writer reported no file")
    })?;
    builder
        .content(DataContentType::PositionDeletes)
        .file_format(DataFileFormat::Parquet)
        .partition(data.file.partition().clone())
        .partition_spec_id(data.spec_id)
        .referenced_data_file(Some(target.to_string()));
    builder
        .build()
        .map_err(|e| Error::internal("describing a position delete file", e.to_string()))
}
