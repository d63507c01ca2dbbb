//! Staging: Arrow batches → Parquet files on local disk, with phlo's metadata columns, Iceberg
//! field ids and zstd, encoded on as many threads as there are cores. Staged files are the
//! durable copy of a run's input until its commit succeeds.
//!
//! Metadata columns: `_phlo_row_id` (a ULID per row, monotonic within the call),
//! `_phlo_ingested_at` (one timestamp per call), `_phlo_partition_date`, `_phlo_run_id`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::{
    ArrayRef, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Encoding;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{Context, Error, Location, Result};
use crate::schema::{arrow_schema_of, cast_to_schema, iceberg_schema_from_arrow};

pub const ROW_ID: &str = "_phlo_row_id";
pub const INGESTED_AT: &str = "_phlo_ingested_at";
pub const PARTITION_DATE: &str = "_phlo_partition_date";
pub const RUN_ID: &str = "_phlo_run_id";

#[derive(Debug, Clone)]
pub struct StageOptions {
    pub run_id: String,
    /// `YYYY-MM-DD`, e.g. the Dagster partition being ingested.
    pub partition_date: Option<String>,
    pub rows_per_file: usize,
}

#[derive(Debug, Clone)]
pub struct StageResult {
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub bytes_written: u64,
    pub schema: SchemaRef,
}

/// Writes `batches` as Parquet files `{dir}/{run_id}-{n:05}.parquet`. Each file is written to a
/// temporary name and renamed when complete, so a staged file is never seen half-written.
pub fn stage(
    batches: impl IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
    input_schema: SchemaRef,
    dir: &Path,
    options: &StageOptions,
) -> Result<StageResult> {
    if let Some(field) = input_schema
        .fields()
        .iter()
        .find(|f| f.name().starts_with("_phlo_"))
    {
        return Err(Error::InvalidInput {
            message: "columns starting with _phlo_ are reserved for phlo's metadata".into(),
            at: Location {
                table: None,
                column: Some(field.name().clone()),
            },
            hint: "rename the column".into(),
        });
    }
    check_run_id(&options.run_id)?;
    if options.rows_per_file == 0 {
        return Err(Error::invalid(
            "rows_per_file is 0",
            "give at least 1 row per file",
        ));
    }
    let partition_date = options
        .partition_date
        .as_deref()
        .map(parse_date)
        .transpose()?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Storage {
        path: dir.display().to_string(),
        source,
    })?;
    let mut fields: Vec<Field> = input_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(metadata_fields());
    let target = arrow_schema_of(&iceberg_schema_from_arrow(&Schema::new(fields))?)?;
    let ulids = UlidGenerator::new();
    let ingested_at = chrono::Utc::now().timestamp_micros();
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    let mut writers: Vec<JoinHandle<Result<(PathBuf, u64)>>> = Vec::new();
    let mut result = StageResult {
        files: Vec::new(),
        rows: 0,
        bytes_written: 0,
        schema: target.clone(),
    };
    let mut file_number = 0;
    let mut flush = |chunk: Vec<RecordBatch>, writers: &mut Vec<_>, result: &mut StageResult| {
        // At most `parallelism` files are encoded at once: wait for the oldest first.
        if writers.len() >= parallelism {
            let (path, bytes) = join(writers.remove(0))?;
            result.files.push(path);
            result.bytes_written += bytes;
        }
        file_number += 1;
        let path = dir.join(format!("{}-{file_number:05}.parquet", options.run_id));
        let schema = target.clone();
        writers.push(std::thread::spawn(move || write_file(&path, schema, chunk)));
        Ok::<_, Error>(())
    };
    for batch in batches {
        let batch = batch.map_err(|source| Error::Arrow {
            context: "reading the input stream".into(),
            source,
        })?;
        if batch.num_rows() == 0 {
            continue;
        }
        let with_metadata = add_metadata(&batch, &ulids, ingested_at, partition_date, options)?;
        let staged = cast_to_schema(&with_metadata, &target, &[])?;
        result.rows += staged.num_rows() as u64;
        // Cut the batch so that every file gets exactly `rows_per_file` rows (the last fewer).
        let mut start = 0;
        while start < staged.num_rows() {
            let take = (options.rows_per_file - pending_rows).min(staged.num_rows() - start);
            pending.push(staged.slice(start, take));
            pending_rows += take;
            start += take;
            if pending_rows == options.rows_per_file {
                flush(std::mem::take(&mut pending), &mut writers, &mut result)?;
                pending_rows = 0;
            }
        }
    }
    if !pending.is_empty() {
        flush(pending, &mut writers, &mut result)?;
    }
    for writer in writers {
        let (path, bytes) = join(writer)?;
        result.files.push(path);
        result.bytes_written += bytes;
    }
    if result.rows == 0 {
        return Err(Error::EmptyInput {
            at: Location::default(),
        });
    }
    Ok(result)
}

/// The run id becomes part of file names: it must not reach outside the staging folder.
fn check_run_id(run_id: &str) -> Result<()> {
    let bad = run_id.is_empty()
        || run_id.len() > 200
        || run_id
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(Error::invalid(
            format!("run_id {run_id:?} cannot be part of a file name"),
            "use 1 to 200 characters without slashes or control characters (e.g. a UUID)",
        ));
    }
    Ok(())
}

fn join(handle: JoinHandle<Result<(PathBuf, u64)>>) -> Result<(PathBuf, u64)> {
    handle
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(ROW_ID, DataType::Utf8, false),
        Field::new(
            INGESTED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(PARTITION_DATE, DataType::Date32, true),
        Field::new(RUN_ID, DataType::Utf8, false),
    ]
}

fn add_metadata(
    batch: &RecordBatch,
    ulids: &UlidGenerator,
    ingested_at: i64,
    partition_date: Option<i32>,
    options: &StageOptions,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(ulids.take(n)));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from_value(ingested_at, n).with_timezone("UTC"),
    ));
    columns.push(match partition_date {
        Some(days) => Arc::new(Date32Array::from_value(days, n)),
        None => new_null_array(&DataType::Date32, n),
    });
    columns.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(options.run_id.as_str(), n),
    )));
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(metadata_fields());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .context(|| "adding phlo metadata columns".into())
}

fn write_file(path: &Path, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<(PathBuf, u64)> {
    let storage = |source| Error::Storage {
        path: path.display().to_string(),
        source,
    };
    let parquet = |e: parquet::errors::ParquetError| {
        Error::invalid(
            format!("writing {}: {e}", path.display()),
            "check the staging folder",
        )
    };
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(storage)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        // Row ids are distinct (a dictionary is built for nothing) and monotonic: consecutive
        // ids share most of their prefix, which DELTA_BYTE_ARRAY stores once.
        .set_column_dictionary_enabled(ColumnPath::from(ROW_ID), false)
        .set_column_encoding(ColumnPath::from(ROW_ID), Encoding::DELTA_BYTE_ARRAY)
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(parquet)?;
    for batch in &batches {
        writer.write(batch).map_err(parquet)?;
    }
    let file = writer.into_inner().map_err(parquet)?;
    file.sync_all().map_err(storage)?;
    let bytes = file.metadata().map_err(storage)?.len();
    std::fs::rename(&tmp, path).map_err(storage)?;
    Ok((path.to_path_buf(), bytes))
}

fn parse_date(text: &str) -> Result<i32> {
    let date =
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| Error::InvalidInput {
            message: format!("partition_date {text:?} is not a date"),
            at: Location {
                table: None,
                column: Some(PARTITION_DATE.into()),
            },
            hint: "write it as YYYY-MM-DD".into(),
        })?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    Ok((date - epoch).num_days() as i32)
}

/// Monotonic ULIDs: 48 bits of milliseconds, then 80 random bits incremented per row, so ids
/// sort in generation order within a call and stay unique across calls.
struct UlidGenerator {
    time_ms: u64,
    next: std::sync::atomic::AtomicU64,
    random_high: u16,
    random_low_base: u64,
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl UlidGenerator {
    fn new() -> Self {
        let random = uuid::Uuid::new_v4().as_u128();
        Self {
            time_ms: chrono::Utc::now().timestamp_millis() as u64,
            next: std::sync::atomic::AtomicU64::new(0),
            random_high: (random >> 64) as u16,
            // Leave headroom so increments never carry into the high bits.
            random_low_base: (random as u64) >> 1,
        }
    }

    /// The next `n` ids as one string array (one buffer, no allocation per id).
    fn take(&self, n: usize) -> StringArray {
        let first = self
            .next
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        let mut text = Vec::with_capacity(n * ULID_LEN);
        for i in first..first + n as u64 {
            let value = (u128::from(self.time_ms) << 80)
                | (u128::from(self.random_high) << 64)
                | u128::from(self.random_low_base + i);
            encode_ulid(value, &mut text);
        }
        let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(ULID_LEN, n));
        StringArray::new(offsets, text.into(), None)
    }
}

const ULID_LEN: usize = 26;

/// Appends the 26 Crockford base32 digits of a 128-bit ULID.
fn encode_ulid(value: u128, out: &mut Vec<u8>) {
    for i in 0..ULID_LEN {
        let shift = 125 - 5 * i as i32;
        let digit = if shift >= 0 {
            (value >> shift) & 0x1f
        } else {
            (value << -shift) & 0x1f
        };
        out.push(CROCKFORD[digit as usize]);
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Int64Array;
    use arrow_array::cast::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn input(n: i64) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from_iter_values(0..n))],
        )
        .unwrap()
    }

    #[test]
    fn stages_files_with_metadata_columns_and_field_ids() {
        let dir = tempfile::tempdir().unwrap();
        let options = StageOptions {
            run_id: "run1".into(),
            partition_date: Some("2024-01-02".into()),
            rows_per_file: 1000,
        };
        let batches = (0..5).map(|_| Ok(input(600)));
        let staged = stage(batches, input(0).schema(), dir.path(), &options).unwrap();
        assert_eq!(staged.rows, 3000);
        assert_eq!(staged.files.len(), 3);
        let mut ids = Vec::new();
        for path in &staged.files {
            assert!(
                path.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("run1-")
            );
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
                    .unwrap();
            let field = reader.schema().field_with_name(ROW_ID).unwrap().clone();
            assert!(field.metadata().contains_key("PARQUET:field_id"));
            for batch in reader.build().unwrap() {
                let batch = batch.unwrap();
                let dates = batch
                    .column_by_name(PARTITION_DATE)
                    .unwrap()
                    .as_primitive::<arrow_array::types::Date32Type>();
                assert!(dates.values().iter().all(|d| *d == 19_724));
                ids.extend(
                    batch
                        .column_by_name(ROW_ID)
                        .unwrap()
                        .as_string::<i32>()
                        .iter()
                        .map(|s| s.unwrap().to_string()),
                );
            }
        }
        assert_eq!(ids.len(), 3000);
        assert!(ids.iter().all(|id| id.len() == 26));
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3000, "row ids are unique");
        assert!(
            !dir.path()
                .read_dir()
                .unwrap()
                .any(|e| e.unwrap().path().extension().unwrap() == "tmp")
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = StageOptions {
            run_id: "r".into(),
            partition_date: Some("2024-13-01".into()),
            rows_per_file: 10,
        };
        let err = stage(vec![Ok(input(1))], input(0).schema(), dir.path(), &options).unwrap_err();
        assert_eq!(err.location().column.as_deref(), Some(PARTITION_DATE));
        let options = StageOptions {
            partition_date: None,
            ..options
        };
        let err = stage(vec![Ok(input(0))], input(0).schema(), dir.path(), &options).unwrap_err();
        assert_eq!(err.code(), "empty_input");
        let reserved = Arc::new(Schema::new(vec![Field::new(
            "_phlo_run_id",
            DataType::Utf8,
            true,
        )]));
        let err = stage(Vec::new(), reserved, dir.path(), &options).unwrap_err();
        assert_eq!(err.code(), "invalid_input");
    }

    #[test]
    fn ulids_are_crockford_and_ordered() {
        let text = |value| {
            let mut out = Vec::new();
            encode_ulid(value, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(0), "00000000000000000000000000");
        assert_eq!(text(u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        let generator = UlidGenerator::new();
        let ids = generator.take(100);
        let ids: Vec<&str> = ids.iter().map(|s| s.unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(generator.take(1).value(0) > ids[99]);
    }
}
