//! Removing files under table locations that nothing reachable references.

use std::path::{Path, PathBuf};

use iceberg::io::FileIO;

use super::OrphanResult;
use super::reachable::reachable_files;
use crate::catalog::Catalog;
use crate::error::{Error, Result};

/// Lists (and unless `dry_run`, deletes) the files under every table's location that nothing
/// reachable from any ref references and that were last modified before `older_than_ms` (so a
/// write still in progress keeps its files). Snapshots of table-level refs (tags and branches
/// in the table metadata, e.g. made by PyIceberg) are reachable like any other.
pub async fn remove_orphan_files(
    catalog: &Catalog,
    io: &FileIO,
    older_than_ms: i64,
    dry_run: bool,
) -> Result<OrphanResult> {
    let reachable = reachable_files(io, &catalog.all_pointers()?).await?;
    let mut result = OrphanResult {
        deleted: !dry_run,
        ..Default::default()
    };
    let mut locations: Vec<&String> = reachable.locations.iter().collect();
    locations.sort();
    for location in locations {
        let Some(dir) = location.strip_prefix("file://") else {
            return Err(Error::invalid(
                format!("cannot list files under {location}"),
                "orphan removal supports the local warehouse (file://) for now",
            ));
        };
        for (path, modified_ms, size) in list_files(Path::new(dir))? {
            let uri = format!("file://{}", path.display());
            if modified_ms >= older_than_ms || reachable.files.contains(&uri) {
                continue;
            }
            if !dry_run {
                std::fs::remove_file(&path).map_err(|source| Error::Storage {
                    path: path.display().to_string(),
                    source,
                })?;
            }
            result.files.push(uri);
            result.bytes += size;
        }
    }
    result.files.sort();
    Ok(result)
}

/// Files below `dir` (recursively) with their modification time (ms) and size.
fn list_files(dir: &Path) -> Result<Vec<(PathBuf, i64, u64)>> {
    let storage = |source| Error::Storage {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(storage(e)),
    };
    for entry in entries {
        let entry = entry.map_err(storage)?;
        let meta = entry.metadata().map_err(storage)?;
        if meta.is_dir() {
            files.extend(list_files(&entry.path())?);
        } else if meta.is_file() {
            let modified = meta.modified().map_err(storage)?;
            let ms = chrono::DateTime::<chrono::Utc>::from(modified).timestamp_millis();
            files.push((entry.path(), ms, meta.len()));
        }
    }
    Ok(files)
}
