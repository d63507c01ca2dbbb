//! Which live data files a merge must read: those whose partition and key range can hold a
//! key of the batch.

use std::collections::HashSet;

use arrow_array::RecordBatch;
use iceberg::spec::Struct;

use super::keys::BatchKeys;
use crate::error::{Context, Result};
use crate::tables::LoadedTable;
use crate::tables::deletes::FileToRead;
use crate::tables::promoted_partitions::promoted;
use crate::tables::write::partition_values;

/// The files of `live` that may hold a key of `batch` (`key_field`: the id of the first key
/// column, whose statistics prune by range). Partition pruning applies only when every
/// partition column is part of the key (a row can then only be replaced by a batch row of the
/// same partition), and only to files written under the table's current partition spec: a
/// file of an older spec has a partition tuple of another shape, which says nothing here.
pub(super) fn candidates(
    table: &LoadedTable,
    live: Vec<FileToRead>,
    batch: &RecordBatch,
    (keys, key_field): (&BatchKeys, Option<i32>),
    unique_key: &[String],
) -> Result<Vec<FileToRead>> {
    let partitions = match partition_columns_in_key(table, unique_key) {
        true => partition_values(&table.metadata, batch)?.map(HashSet::<Struct>::from_iter),
        false => None,
    };
    let spec = table.metadata.default_partition_spec();
    // Files from before a promotion of a partition column hold its narrow literal.
    let partition_type = (spec.partition_type(table.metadata.current_schema()))
        .context(|| format!("typing the partition values of {}", table.ident))?;
    let live: Vec<FileToRead> = live
        .into_iter()
        .filter(|f| match &partitions {
            Some(partitions) if f.data.spec_id == spec.spec_id() => {
                partitions.contains(&promoted(f.data.file.partition(), &partition_type))
            }
            _ => true,
        })
        .collect();
    let in_range = keys.may_be_in(live.iter().map(|f| &f.data.file), key_field);
    Ok(live
        .into_iter()
        .zip(in_range)
        .filter_map(|(file, in_range)| in_range.then_some(file))
        .collect())
}

fn partition_columns_in_key(table: &LoadedTable, key: &[String]) -> bool {
    let schema = table.metadata.current_schema();
    table
        .metadata
        .default_partition_spec()
        .fields()
        .iter()
        .all(|field| {
            schema
                .name_by_field_id(field.source_id)
                .is_some_and(|name| key.iter().any(|k| k == name))
        })
}
