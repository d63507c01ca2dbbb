//! Files of a phlo ref that another engine's orphan removal deleted (docs/branches.md, "Other
//! engines' orphan removal"). Java's `deleteOrphanFiles` and Spark's `remove_orphan_files` keep
//! what the table's metadata in the catalog — `main`'s — reaches; a branch's or tag's own files
//! and the `.phlo-ref` copies are unknown to them, so they go. phlo cannot prevent that; a read
//! or merge of such a ref fails with a `StorageError` that names the ref and the way out, and a
//! merge never moves its target onto files that are gone.

use iceberg::io::FileIO;

use super::{Catalog, MAIN};
use crate::error::{Context, Error, Result};

/// `error` as a failure of ref `ref_name`: a file missing on a ref other than `main` gets the
/// likely cause and the way out; other errors, and `main`'s, are left as they are.
pub fn on_ref(error: Error, ref_name: &str) -> Error {
    match error {
        Error::Storage { path, source }
            if ref_name != MAIN && source.kind() == std::io::ErrorKind::NotFound =>
        {
            let message = format!(
                "{source} — a file of phlo ref {ref_name}. Another engine's orphan removal \
                 (Java's deleteOrphanFiles, Spark's remove_orphan_files) deletes the files of \
                 phlo's branches and tags that main does not reach, as it does not know them; \
                 what the ref held there is lost. For a branch: lh.delete_branch({ref_name:?}), \
                 lh.create_branch({ref_name:?}) from main, and re-run its writes. Keep phlo's \
                 files out of that removal, or remove orphans with phlo maintain only \
                 (docs/branches.md)"
            );
            Error::Storage {
                path,
                source: std::io::Error::new(source.kind(), message),
            }
        }
        other => other,
    }
}

/// Fails, as [`on_ref`] says, when ref `ref_name`'s metadata file `location` (which a merge
/// is about to make its target point at: a fast-forward moves pointers only, reading nothing)
/// or its head snapshot's manifest list is gone. The file itself, not a `.phlo-ref` copy:
/// other engines read the target's pointer as it is.
pub async fn require_head(
    catalog: &Catalog,
    io: &FileIO,
    ref_name: &str,
    location: &str,
) -> Result<()> {
    require_file(io, ref_name, location, || {
        format!("the metadata file {ref_name} points at")
    })
    .await?;
    let metadata = (catalog.metadata_cache())
        .read(io, location, || {
            format!("reading the metadata of {ref_name} at {location}")
        })
        .await
        .map_err(|e| on_ref(e, ref_name))?;
    match metadata.current_snapshot() {
        Some(head) => {
            require_file(io, ref_name, head.manifest_list(), || {
                format!("the manifest list of snapshot {}", head.snapshot_id())
            })
            .await
        }
        None => Ok(()),
    }
}

async fn require_file(
    io: &FileIO,
    ref_name: &str,
    path: &str,
    what: impl FnOnce() -> String,
) -> Result<()> {
    if io
        .exists(path)
        .await
        .context(|| format!("checking {path}"))?
    {
        return Ok(());
    }
    let missing = Error::Storage {
        path: path.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} is gone", what())),
    };
    Err(on_ref(missing, ref_name))
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;

    fn storage(kind: ErrorKind) -> Error {
        Error::Storage {
            path: "/w/raw.db/t/data/f.parquet".into(),
            source: std::io::Error::new(kind, "reading f.parquet"),
        }
    }

    #[test]
    fn a_file_missing_on_a_branch_names_the_branch_and_the_way_out() {
        let err = on_ref(storage(ErrorKind::NotFound), "dev");
        assert_eq!(err.code(), "storage");
        let message = err.to_string();
        assert!(message.contains("/w/raw.db/t/data/f.parquet"), "{message}");
        assert!(message.contains("phlo ref dev"), "{message}");
        assert!(message.contains("lh.delete_branch(\"dev\")"), "{message}");
        // main's files are every engine's: nothing about refs; other failures are left alone.
        let main = on_ref(storage(ErrorKind::NotFound), MAIN).to_string();
        assert!(!main.contains("phlo ref"), "{main}");
        let denied = on_ref(storage(ErrorKind::PermissionDenied), "dev").to_string();
        assert!(!denied.contains("phlo ref"), "{denied}");
    }
}
