//! Changing a table's properties (`write.merge.mode`, manifest merging, snapshot retention…)
//! as one metadata-only commit: no snapshot, no data file touched.

use iceberg::io::FileIO;
use iceberg::spec::TableMetadataBuilder;

use super::LoadedTable;
use super::commit::commit_metadata;
use super::write::{DICTIONARY_SIZE_PROPERTY, parse_dictionary_page_bytes};
use crate::catalog::Catalog;
use crate::error::{Context, Error, Result};
use crate::merge::WriteMode;
use crate::merge::mode::{DELETE_MODE, MERGE_MODE};

/// Attempts while other writers keep committing.
const MAX_ATTEMPTS: u32 = 8;

/// Sets each property to its value, or removes it (`None`), in one commit on the table's ref
/// (retried on the new state when another writer commits first). A value phlo reads and cannot
/// understand (a write mode, a dictionary page size) is an `InvalidInput` and nothing changes. Returns whether anything
/// changed (setting what is already there commits nothing).
pub async fn set_properties(
    catalog: &Catalog,
    io: &FileIO,
    mut table: LoadedTable,
    updates: &[(String, Option<String>)],
) -> Result<bool> {
    let name = table.ident.to_string();
    for (key, value) in updates {
        let Some(value) = value else { continue };
        if [MERGE_MODE, DELETE_MODE].contains(&key.as_str()) {
            WriteMode::parse(value, &format!("table property {key}"))
                .map_err(|e| e.in_table(&name))?;
        } else if key == DICTIONARY_SIZE_PROPERTY {
            parse_dictionary_page_bytes(value).map_err(|e| e.in_table(&name))?;
        }
    }
    for _ in 0..MAX_ATTEMPTS {
        let current = table.metadata.properties();
        let set: Vec<(String, String)> = updates
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .filter(|(k, v)| current.get(k) != Some(v))
            .collect();
        let removed: Vec<String> = updates
            .iter()
            .filter(|(k, v)| v.is_none() && current.contains_key(k))
            .map(|(k, _)| k.clone())
            .collect();
        if set.is_empty() && removed.is_empty() {
            return Ok(false);
        }
        let next = TableMetadataBuilder::new_from_metadata(
            (*table.metadata).clone(),
            Some(table.metadata_location.clone()),
        )
        .set_properties(set.iter().cloned().collect())
        .and_then(|b| b.remove_properties(&removed))
        .and_then(|b| b.build())
        .context(|| format!("setting properties of {name}"))?
        .metadata;
        let keys: Vec<&str> = set
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(removed.iter().map(String::as_str))
            .collect();
        let message = format!("set properties of {name}: {}", keys.join(", "));
        if commit_metadata(catalog, io, &table, &next, &message).await? {
            return Ok(true);
        }
        table = LoadedTable::load(catalog, io, &table.ident, &table.ref_name).await?;
    }
    Err(Error::CommitConflict {
        table: name,
        message: "the table kept changing while its properties were set".into(),
    })
}
