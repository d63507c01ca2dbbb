//! Which live data files a merge must read: those whose partition and key range can hold a
//! key of the batch.

use std::collections::HashSet;

use arrow_array::RecordBatch;
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, ManifestContentType, Struct};

use super::keys::BatchKeys;
use crate::error::{Context, Result};
use crate::tables::LoadedTable;
use crate::tables::commit::load_manifest_list;
use crate::tables::write::partition_values;

/// The files of `live` that may hold a key of `batch` (`key_field`: the id of the first key
/// column, whose statistics prune by range). Partition pruning applies only when every
/// partition column is part of the key (a row can then only be replaced by a batch row of the
/// same partition), and only to files written under the table's current partition spec: a
/// file of an older spec has a partition tuple of another shape, which says nothing here.
pub(super) async fn candidates(
    io: &FileIO,
    table: &LoadedTable,
    live: Vec<DataFile>,
    batch: &RecordBatch,
    (keys, key_field): (&BatchKeys, Option<i32>),
    unique_key: &[String],
) -> Result<Vec<DataFile>> {
    let partitions = match partition_columns_in_key(table, unique_key) {
        true => partition_values(&table.metadata, batch)?.map(HashSet::<Struct>::from_iter),
        false => None,
    };
    let current_spec = match (&partitions, table.metadata.partition_specs_iter().len()) {
        (Some(_), specs) if specs > 1 => Some(files_of_current_spec(io, table).await?),
        _ => None,
    };
    Ok(live
        .into_iter()
        .filter(|f| {
            let Some(partitions) = &partitions else {
                return true;
            };
            let of_current_spec = current_spec
                .as_ref()
                .is_none_or(|paths| paths.contains(f.file_path()));
            !of_current_spec || partitions.contains(f.partition())
        })
        .filter(|f| keys.may_be_in(f, key_field))
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

/// Paths of the live data files written under the table's current (default) partition spec.
/// A data file's spec is that of the manifest listing it.
async fn files_of_current_spec(io: &FileIO, table: &LoadedTable) -> Result<HashSet<String>> {
    let mut paths = HashSet::new();
    let Some(snapshot) = table.snapshot_for_ref(crate::catalog::MAIN) else {
        return Ok(paths);
    };
    let spec_id = table.metadata.default_partition_spec_id();
    for manifest in load_manifest_list(
        io,
        table.metadata.format_version(),
        snapshot.manifest_list(),
    )
    .await?
    {
        if manifest.content != ManifestContentType::Data || manifest.partition_spec_id != spec_id {
            continue;
        }
        let loaded = manifest
            .load_manifest(io)
            .await
            .context(|| "reading a manifest".into())?;
        paths.extend(
            loaded
                .entries()
                .iter()
                .filter(|e| e.is_alive())
                .map(|e| e.file_path().to_string()),
        );
    }
    Ok(paths)
}
