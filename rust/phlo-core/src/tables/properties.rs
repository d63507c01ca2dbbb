//! Changing a table's properties (`write.merge.mode`, manifest merging, snapshot retention…)
//! as one metadata-only commit: no snapshot, no data file touched.

use iceberg::io::FileIO;
use iceberg::spec::{FormatVersion, TableMetadataBuilder, TableProperties};

use super::LoadedTable;
use super::commit::commit_metadata;
use super::write::{BYTE_PROPERTIES, parse_byte_property};
use crate::catalog::Catalog;
use crate::error::{Context, Error, Result};
use crate::merge::WriteMode;
use crate::merge::mode::{DELETE_MODE, MERGE_MODE};

/// Attempts while other writers keep committing.
const MAX_ATTEMPTS: u32 = 8;

/// Sets each property to its value, or removes it (`None`), in one commit on the table's ref
/// (retried on the new state when another writer commits first). A value phlo reads and cannot
/// understand (a write mode, a byte count) is an `InvalidInput` and nothing changes. Returns whether anything
/// changed (setting what is already there commits nothing). The reserved `format-version`
/// upgrades a format v1 table to v2 (what phlo writes) and is not stored.
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
        } else if BYTE_PROPERTIES.contains(&key.as_str()) {
            parse_byte_property(key, value).map_err(|e| e.in_table(&name))?;
        }
    }
    let version = format_version(updates, &table)?;
    let updates: Vec<(String, Option<String>)> = (updates.iter())
        .filter(|(k, _)| k != TableProperties::PROPERTY_FORMAT_VERSION)
        .cloned()
        .collect();
    for _ in 0..MAX_ATTEMPTS {
        let upgrade = version.filter(|v| *v > table.metadata.format_version());
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
        if set.is_empty() && removed.is_empty() && upgrade.is_none() {
            return Ok(false);
        }
        let builder = TableMetadataBuilder::new_from_metadata(
            (*table.metadata).clone(),
            Some(table.metadata_location.clone()),
        );
        let next = match upgrade {
            Some(version) => builder.upgrade_format_version(version),
            None => Ok(builder),
        }
        .and_then(|b| b.set_properties(set.iter().cloned().collect()))
        .and_then(|b| b.remove_properties(&removed))
        .and_then(|b| b.build())
        .context(|| format!("setting properties of {name}"))?
        .metadata;
        let keys: Vec<&str> = (upgrade.map(|_| TableProperties::PROPERTY_FORMAT_VERSION))
            .into_iter()
            .chain(set.iter().map(|(k, _)| k.as_str()))
            .chain(removed.iter().map(String::as_str))
            .collect();
        let message = format!("set properties of {name}: {}", keys.join(", "));
        if commit_metadata(catalog, io, &table, &next, &message).await? {
            return Ok(true);
        }
        table = LoadedTable::load(catalog, io, &table.ident, &table.ref_name).await?;
    }
    Err(Error::conflict(
        name,
        "the table kept changing while its properties were set",
    ))
}

/// The format version `updates` ask for: only 2, the version phlo writes (a v1 table is
/// upgraded; a v2 table stays); anything else is refused before anything changes.
fn format_version(
    updates: &[(String, Option<String>)],
    table: &LoadedTable,
) -> Result<Option<FormatVersion>> {
    let Some((_, value)) =
        (updates.iter()).find(|(k, _)| k == TableProperties::PROPERTY_FORMAT_VERSION)
    else {
        return Ok(None);
    };
    let current = table.metadata.format_version();
    match value.as_deref() {
        Some("2") if current <= FormatVersion::V2 => Ok(Some(FormatVersion::V2)),
        _ => Err(Error::invalid(
            format!(
                "table {} uses Iceberg format {current}; format-version can only be set to 2",
                table.ident
            ),
            "set format-version to 2 to upgrade a v1 table (upgrades cannot be undone); \
             phlo writes format v2 only",
        )),
    }
}
