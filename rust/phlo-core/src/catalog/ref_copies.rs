//! Copies of the metadata files phlo's refs point at (docs/branches.md, "Old metadata
//! files"). Java and PyIceberg honour `write.metadata.delete-after-commit.enabled`
//! by deleting the metadata files that fall out of `main`'s `metadata-log`; they do not know
//! phlo's branches and tags, which point at such files (a ref forked from `main`, a branch
//! merged into it by fast-forward). So before a ref starts using a file `main`'s log may list,
//! phlo writes a copy next to it, `<file>.phlo-ref`, which no log ever lists, and a read of a
//! metadata file that is gone falls back to its copy (`tables::metadata_cache`). The pointers
//! keep naming the original: fork points, diffs and fast-forwards compare the same names as
//! before. Orphan removal keeps a copy while a ref points at its original; phlo's own cleanup
//! of a log deletes a copy with its original.
//!
//! Copies are written whole or not at all ([`write_whole`]) and before the catalog change that
//! needs them, so a crash in between leaves an unused copy (an orphan), not a ref without one.
//! The exception: tables the source ref committed while a ref was created from it get their
//! copies just after (their files are the source's current ones then, which no log drops
//! before several more commits). Transactions' internal branches get none: they live for one
//! write.

use std::collections::HashSet;

use futures::future::try_join_all;
use iceberg::io::FileIO;

use super::pointers;
use super::refs::RefKind;
use crate::catalog::Catalog;
use crate::error::{Context, Error, Result};
use crate::storage::local_path;

const SUFFIX: &str = ".phlo-ref";

/// Copies written at once (object stores answer each request slowly, in parallel well).
const CONCURRENCY: usize = 16;

/// Where the copy of metadata file `location` is.
pub fn copy_of(location: &str) -> String {
    format!("{location}{SUFFIX}")
}

/// Creates ref `name` from `from` ([`Catalog::create_ref`]) with a copy of every metadata
/// file it points at.
pub async fn create_ref(
    catalog: &Catalog,
    io: &FileIO,
    name: &str,
    kind: RefKind,
    from: &str,
) -> Result<()> {
    if catalog.rest().is_some() {
        return catalog.create_ref(name, kind, from);
    }
    let before = catalog.metadata_files_of(from)?;
    keep(io, &before).await?;
    catalog.create_ref(name, kind, from)?;
    // Tables `from` committed meanwhile: their new files are its current ones, so no log
    // drops them before these copies are written.
    let before: HashSet<&String> = before.iter().collect();
    let moved: Vec<String> = (catalog.metadata_files_of(name)?.into_iter())
        .filter(|f| !before.contains(f))
        .collect();
    keep(io, &moved).await
}

/// Writes the copies of `locations` that do not exist yet. A file already gone (deleted before
/// phlo copied it, e.g. by an engine that ran before this version of phlo) is skipped: there
/// is nothing left to keep.
pub async fn keep(io: &FileIO, locations: &[String]) -> Result<()> {
    let unique: HashSet<&String> = locations.iter().collect();
    for chunk in unique.into_iter().collect::<Vec<_>>().chunks(CONCURRENCY) {
        try_join_all(chunk.iter().map(|location| keep_one(io, location))).await?;
    }
    Ok(())
}

/// Copies `location` unless a copy of its size is there (a copy cut short by a crash has
/// fewer bytes, and is written again).
async fn keep_one(io: &FileIO, location: &str) -> Result<()> {
    let copy = copy_of(location);
    let opened = |path: &str| io.new_input(path).context(|| format!("opening {path}"));
    let copied = opened(&copy)?.metadata().await.ok().map(|m| m.size);
    let original = opened(location)?;
    let size = match original.metadata().await {
        Ok(metadata) => metadata.size,
        Err(_)
            if !io
                .exists(location)
                .await
                .context(|| format!("checking {location}"))? =>
        {
            return Ok(());
        }
        Err(e) => return Err(e).context(|| format!("reading {location}")),
    };
    if copied == Some(size) {
        return Ok(());
    }
    let bytes = original
        .read()
        .await
        .context(|| format!("reading {location}"))?;
    write_whole(io, &copy, bytes).await
}

/// Writes `bytes` to `path` whole or not at all. An object store's PUT is that already. A
/// local file is written under a temporary name, synced and renamed: written in place, a crash
/// (or another process's `keep` truncating it to write it again) could leave a copy cut short
/// under its name after the catalog change that relies on it — and nothing writes it again
/// unless a ref is made from its original once more.
async fn write_whole(io: &FileIO, path: &str, bytes: bytes::Bytes) -> Result<()> {
    let Some(local) = local_path(path).map(String::from) else {
        return (io.new_output(path).context(|| format!("creating {path}"))?)
            .write(bytes)
            .await
            .context(|| format!("writing {path}"));
    };
    let temporary = format!("{local}.{}.tmp", uuid::Uuid::now_v7());
    let written = tokio::task::spawn_blocking(move || {
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &local)?;
            // Its new name reaches the disk before the catalog change that relies on it.
            crate::storage::durable::note_entry(std::path::Path::new(&local));
            Ok(())
        };
        let result = write();
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result
    })
    .await;
    let failed = |source| Error::Storage {
        path: path.to_string(),
        source,
    };
    written
        .map_err(|e| failed(std::io::Error::other(e)))?
        .map_err(failed)
}

impl Catalog {
    /// The metadata files ref `name` points at (none if there is no such ref). A new ref's
    /// fork points are these too.
    fn metadata_files_of(&self, name: &str) -> Result<Vec<String>> {
        let listed = self.read(|db| pointers::list(db, name))?;
        Ok(listed.into_iter().map(|(_, location)| location).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::storage::Storage;
    use crate::tables::metadata_cache::{read_metadata, test_metadata};

    #[tokio::test]
    async fn a_copy_is_written_once_and_read_when_its_original_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let root = format!("file://{}", dir.path().display());
        let storage = Storage::open(&root, &HashMap::new()).await.unwrap();
        let io = storage.file_io();
        let location = format!("{root}/m1.metadata.json");
        let metadata = test_metadata::one_long_column();
        let json = serde_json::to_vec(&metadata).unwrap();
        io.new_output(&location)
            .unwrap()
            .write(json.clone().into())
            .await
            .unwrap();
        let gone = format!("{root}/m0.metadata.json");
        keep(io, &[location.clone(), location.clone(), gone.clone()])
            .await
            .unwrap();
        assert!(
            !io.exists(&copy_of(&gone)).await.unwrap(),
            "nothing to copy"
        );
        let copy = dir.path().join("m1.metadata.json.phlo-ref");
        let written = std::fs::metadata(&copy).unwrap().modified().unwrap();
        keep(io, std::slice::from_ref(&location)).await.unwrap();
        let again = std::fs::metadata(&copy).unwrap().modified().unwrap();
        assert_eq!(written, again, "an existing copy is not written again");
        std::fs::write(&copy, b"{\"cut short").unwrap();
        // A file still linked to the old copy (as a crash or a concurrent `keep` would see it
        // mid-write) keeps its bytes: the copy is replaced whole (renamed over), not truncated
        // in place, and no temporary file is left.
        let old = dir.path().join("old");
        std::fs::hard_link(&copy, &old).unwrap();
        keep(io, std::slice::from_ref(&location)).await.unwrap();
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            json,
            "a copy cut short is written again"
        );
        assert_eq!(std::fs::read(&old).unwrap(), b"{\"cut short");
        std::fs::remove_file(old).unwrap();
        let mut names: Vec<String> = (std::fs::read_dir(dir.path()).unwrap())
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["m1.metadata.json", "m1.metadata.json.phlo-ref"]);

        io.delete(&location).await.unwrap();
        let read = read_metadata(io, &location, String::new).await.unwrap();
        assert_eq!(read.uuid(), metadata.uuid());
        std::fs::remove_file(copy).unwrap();
        let err = read_metadata(io, &location, String::new).await.unwrap_err();
        assert_eq!(err.code(), "storage", "{err}");
    }
}
