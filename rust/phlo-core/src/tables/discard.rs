//! Removing what snapshots that never landed wrote: a transaction that raised, could not
//! commit, or re-applied its appends on another writer's head. Nothing else references those
//! files, so they go now instead of waiting for orphan removal (which a REST catalog does not
//! offer at all). Best effort: a file that cannot be deleted is only an orphan.
//!
//! A write that does not commit removes its data and delete files the same way: every name it
//! handed out is recorded in its [`WrittenFiles`] before the file is created, finished or not.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use iceberg::io::FileIO;
use iceberg::spec::{ManifestStatus, Snapshot, TableMetadata};

use super::commit::load_manifest_list;
use super::read_manifest;
use crate::catalog::{Catalog, Pointer};
use crate::error::{Error, Result};

/// The data and delete files one write (append, merge, delete, compaction) has named so far,
/// whether or not they were finished: nothing references them until its commit lands, so a
/// write that ends without committing removes them all. Clones share one list (the writers of
/// parallel files record into it).
#[derive(Clone, Debug, Default)]
pub struct WrittenFiles(Arc<Mutex<Vec<String>>>);

impl WrittenFiles {
    /// Records `path` before the file is created there.
    pub(crate) fn record(&self, path: &str) {
        self.paths_mut().push(path.to_string());
    }

    /// Every name handed out so far.
    pub fn paths(&self) -> Vec<String> {
        self.paths_mut().clone()
    }

    /// Removes the files of a write that ended with `error`, unless the commit may have landed
    /// (`CommitStateUnknown`: the table may reference them, so they are kept).
    pub async fn discard_after(&self, io: &FileIO, error: &Error) {
        if error.commit_may_have_landed() {
            return;
        }
        let paths = std::mem::take(&mut *self.paths_mut());
        for path in paths {
            // A name whose file was never created has nothing to delete.
            let _ = io.delete(&path).await;
        }
    }

    fn paths_mut(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A writer that panicked while recording left a valid list.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The files of a write that has not reached its commit. Dropped before then (the write was
/// abandoned, its future cancelled by a Ctrl-C in Python, or it failed), it removes them in
/// the background: nothing can reference them yet, and `Drop` cannot wait. Once a commit
/// starts, its files may land, so they are handed to it ([`Self::into_commit`]), and it
/// removes them itself only when it knows they did not.
pub struct Uncommitted {
    io: FileIO,
    files: WrittenFiles,
}

impl Uncommitted {
    pub(crate) fn new(io: &FileIO) -> Self {
        Self {
            io: io.clone(),
            files: WrittenFiles::default(),
        }
    }

    /// The list the write records its files into.
    pub(crate) fn files(&self) -> &WrittenFiles {
        &self.files
    }

    /// The files, for the commit to keep or remove: no longer removed on drop.
    pub(crate) fn into_commit(mut self) -> WrittenFiles {
        std::mem::take(&mut self.files)
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        let paths = std::mem::take(&mut *self.files.paths_mut());
        if paths.is_empty() {
            return;
        }
        let io = self.io.clone();
        let remove = async move {
            for path in paths {
                let _ = io.delete(&path).await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(remove)),
            // Dropped outside a runtime: a thread with one of its own removes them.
            Err(_) => drop(std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(remove);
                }
            })),
        }
    }
}

/// What to remove of a snapshot.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discard {
    /// Its manifest list, the manifests it added and the data and delete files it added.
    Everything,
    /// Its manifest list and the manifests it added: its data files live on in a re-applied
    /// snapshot that landed.
    ManifestsOnly,
}

/// Removes the files `snapshots` wrote (as `what` says); `metadata` is the table they belong
/// to (for the manifests' schemas and specs).
pub(crate) async fn discard_snapshots<'a>(
    io: &FileIO,
    metadata: &TableMetadata,
    snapshots: impl IntoIterator<Item = &'a Snapshot>,
    what: Discard,
) {
    for snapshot in snapshots {
        let id = snapshot.snapshot_id();
        let list = snapshot.manifest_list();
        let Ok(manifests) = load_manifest_list(io, metadata.format_version(), list).await else {
            continue;
        };
        for manifest in manifests.iter().filter(|m| m.added_snapshot_id == id) {
            if what == Discard::Everything
                && let Ok(loaded) = read_manifest(io, manifest, metadata).await
            {
                for entry in loaded.entries() {
                    if entry.status() == ManifestStatus::Added && entry.snapshot_id() == Some(id) {
                        let _ = io.delete(entry.data_file().file_path()).await;
                    }
                }
            }
            let _ = io.delete(&manifest.manifest_path).await;
        }
        let _ = io.delete(list).await;
    }
}

/// Deletes transaction branch `name` (an internal branch) and every file only it references:
/// what its tables' snapshots wrote since it forked (all of a table created on it) and the
/// metadata files its commits wrote. For a transaction that will not land: nothing else can
/// reference them, as no ref forks from a private branch.
pub async fn discard_branch(catalog: &Catalog, io: &FileIO, name: &str) -> Result<()> {
    let pointers: Vec<Pointer> = catalog
        .all_pointers()?
        .into_iter()
        .filter(|p| p.ref_name == name)
        .collect();
    catalog.delete_branch(name)?;
    for pointer in pointers {
        discard_pointer(io, &pointer).await;
    }
    Ok(())
}

/// Removes what the branch's commits to one table wrote beyond the pointer it forked from.
async fn discard_pointer(io: &FileIO, pointer: &Pointer) {
    let location = &pointer.metadata_location;
    if pointer.base_location.as_ref() == Some(location) {
        return;
    }
    let Ok(table) = TableMetadata::read_from(io, location).await else {
        return;
    };
    let base = match &pointer.base_location {
        None => None,
        Some(base) => match TableMetadata::read_from(io, base).await {
            Ok(metadata) => Some((base, metadata)),
            // Without the fork point there is no telling what is the branch's own.
            Err(_) => return,
        },
    };
    let mut kept: HashSet<&str> = HashSet::new();
    if let Some((base_location, base)) = &base {
        kept.insert(base_location);
        kept.extend(base.metadata_log().iter().map(|m| m.metadata_file.as_str()));
    }
    let known = |id: i64| {
        base.as_ref()
            .is_some_and(|(_, b)| b.snapshot_by_id(id).is_some())
    };
    let added: Vec<&Snapshot> = table
        .snapshots()
        .filter(|s| !known(s.snapshot_id()))
        .map(|s| s.as_ref())
        .collect();
    discard_snapshots(io, &table, added, Discard::Everything).await;
    let written = table
        .metadata_log()
        .iter()
        .map(|m| m.metadata_file.as_str());
    for file in written.chain([location.as_str()]) {
        if !kept.contains(file) {
            let _ = io.delete(file).await;
        }
    }
}
