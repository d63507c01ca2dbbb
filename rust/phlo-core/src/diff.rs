//! Row-level diff of one table between two refs. Data files both refs share, with the same
//! delete files applying, hold the same rows, so only the files live on one side alone are read:
//! the cost follows the change, not the table.

use std::collections::HashSet;

use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_select::concat::concat_batches;
use arrow_select::take::take_record_batch;
use hashbrown::HashTable;
use iceberg::io::FileIO;

use crate::catalog::MAIN;
use crate::error::{Context, Result};
use crate::keys::{KeyEncoder, key_arrays};
use crate::tables::deletes::{self, FileToRead};
use crate::tables::manifests::live_files;
use crate::tables::{LoadedTable, ProjectedFile, Projection};

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
    // Both sides are read as `to`'s schema sees them, columns matched by field id.
    let projection = Projection::new(&to.metadata, to.metadata.current_schema())?;
    let schema = projection.schema().clone();
    let (from_files, to_files) = (
        live_files(io, from, MAIN).await?,
        live_files(io, to, MAIN).await?,
    );
    let (from_rows, to_rows): (HashSet<_>, HashSet<_>) = (
        from_files.iter().map(same_rows).collect(),
        to_files.iter().map(same_rows).collect(),
    );
    let only = |files: &[FileToRead], other: &HashSet<(&str, Vec<&str>)>| -> Vec<FileToRead> {
        files
            .iter()
            .filter(|f| !other.contains(&same_rows(f)))
            .cloned()
            .collect()
    };
    let old = read_files(io, &only(&from_files, &to_rows), &projection).await?;
    let new = read_files(io, &only(&to_files, &from_rows), &projection).await?;

    // Direct keys read a null as "" or 0; rows without a key must not match those.
    let encoder = match [&old, &new]
        .iter()
        .any(|b| key_arrays(b, key).is_ok_and(|k| k.iter().any(|a| a.null_count() > 0)))
    {
        true => KeyEncoder::row_encoded(&new, key)?,
        false => KeyEncoder::new(&new, key)?,
    };
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

/// What makes a file's rows the same on both sides: the file, and the delete files applying.
fn same_rows(file: &FileToRead) -> (&str, Vec<&str>) {
    let mut deletes: Vec<&str> = file.deletes.iter().map(|d| d.file.file_path()).collect();
    deletes.sort_unstable();
    (file.data.file.file_path(), deletes)
}

async fn read_files(
    io: &FileIO,
    files: &[FileToRead],
    projection: &Projection,
) -> Result<RecordBatch> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let deletes = deletes::Loader::default();
    let mut batches = Vec::new();
    for file in files {
        let file_deletes = deletes.for_file(io, projection, file).await?;
        let parts = ProjectedFile::open(io, &file.data.file, projection)
            .await?
            .with_deletes(file_deletes)
            .read_parallel(workers, |reader| reader.collect::<Result<Vec<_>>>())
            .await?;
        batches.extend(parts.into_iter().flatten());
    }
    concat_batches(projection.schema(), &batches).context(|| "collecting changed rows".into())
}
