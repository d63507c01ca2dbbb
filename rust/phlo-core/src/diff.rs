//! Row-level diff of one table between two refs. Data files both refs share hold the same rows,
//! so only the files live on one side alone are read: the cost follows the change, not the
//! table.

use std::collections::HashSet;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_select::concat::concat_batches;
use arrow_select::take::take_record_batch;
use hashbrown::HashTable;
use iceberg::io::FileIO;
use iceberg::spec::DataFile;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::catalog::MAIN;
use crate::error::{Context, Error, Result};
use crate::iceberg::LoadedTable;
use crate::iceberg::commit::live_data_files;
use crate::keys::KeyEncoder;
use crate::schema::{arrow_schema_of, cast_to_schema};

/// Rows added, removed and changed (same key, other content) from one ref to the other, with
/// up to `sample` rows of each (as they are on the side that has them; changed: the new rows).
#[derive(Debug, Clone)]
pub struct RowDiff {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub added_sample: RecordBatch,
    pub removed_sample: RecordBatch,
    pub changed_sample: RecordBatch,
}

pub async fn diff_rows(
    io: &FileIO,
    from: &LoadedTable,
    to: &LoadedTable,
    key: &[String],
    sample: usize,
) -> Result<RowDiff> {
    let schema = arrow_schema_of(to.metadata.current_schema())?;
    let (from_files, to_files) = (
        live_data_files(io, from, MAIN).await?,
        live_data_files(io, to, MAIN).await?,
    );
    let from_paths: HashSet<&str> = from_files.iter().map(|f| f.file_path()).collect();
    let to_paths: HashSet<&str> = to_files.iter().map(|f| f.file_path()).collect();
    let only = |files: &[DataFile], other: &HashSet<&str>| -> Vec<String> {
        files
            .iter()
            .filter(|f| !other.contains(f.file_path()))
            .map(|f| f.file_path().to_string())
            .collect()
    };
    let old = read_files(io, &only(&from_files, &to_paths), &schema).await?;
    let new = read_files(io, &only(&to_files, &from_paths), &schema).await?;

    let encoder = KeyEncoder::new(&new, key)?;
    let (old_keys, new_keys) = (encoder.keys(&old)?, encoder.keys(&new)?);
    let mut index = HashTable::with_capacity(old_keys.len());
    for i in 0..old_keys.len() {
        index.insert_unique(old_keys.hash(i), i as u32, |&j| old_keys.hash(j as usize));
    }
    // Whole-row encodings decide whether a key's row changed.
    let converter = RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )
    .context(|| "encoding rows".into())?;
    let (old_rows, new_rows) = (
        converter
            .convert_columns(old.columns())
            .context(|| "encoding rows".into())?,
        converter
            .convert_columns(new.columns())
            .context(|| "encoding rows".into())?,
    );
    let mut matched_old = vec![false; old_keys.len()];
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for i in 0..new_keys.len() {
        let hit = index.find(new_keys.hash(i), |&j| {
            old_keys.same(j as usize, &new_keys, i)
        });
        match hit {
            None => added.push(i as u32),
            Some(&j) => {
                matched_old[j as usize] = true;
                if old_rows.row(j as usize) != new_rows.row(i) {
                    changed.push(i as u32);
                }
            }
        }
    }
    let removed: Vec<u32> = (0..old_keys.len() as u32)
        .filter(|i| !matched_old[*i as usize])
        .collect();
    let pick = |batch: &RecordBatch, rows: &[u32]| {
        take_record_batch(
            batch,
            &UInt32Array::from(rows[..rows.len().min(sample)].to_vec()),
        )
        .context(|| "sampling rows".into())
    };
    Ok(RowDiff {
        added: added.len() as u64,
        removed: removed.len() as u64,
        changed: changed.len() as u64,
        added_sample: pick(&new, &added)?,
        removed_sample: pick(&old, &removed)?,
        changed_sample: pick(&new, &changed)?,
    })
}

async fn read_files(
    io: &FileIO,
    paths: &[String],
    schema: &arrow_schema::SchemaRef,
) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    for path in paths {
        let bytes = crate::iceberg::read_bytes(io, path).await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| {
                Error::invalid(
                    format!("cannot read data file {path}: {e}"),
                    "the file may be corrupt",
                )
            })?;
        for batch in reader {
            let batch = batch.context(|| format!("decoding {path}"))?;
            let keep: Vec<usize> = (0..batch.num_columns())
                .filter(|i| {
                    schema
                        .field_with_name(batch.schema().field(*i).name())
                        .is_ok()
                })
                .collect();
            let batch = batch
                .project(&keep)
                .context(|| "projecting a data file".into())?;
            batches.push(cast_to_schema(&batch, schema)?);
        }
    }
    concat_batches(schema, &batches).context(|| "collecting changed rows".into())
}
