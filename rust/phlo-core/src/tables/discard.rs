//! Removing what snapshots that never landed wrote: a transaction that raised, could not
//! commit, or re-applied its appends on another writer's head. Nothing else references those
//! files, so they go now instead of waiting for orphan removal (which a REST catalog does not
//! offer at all). Best effort: a file that cannot be deleted is only an orphan.
//!
//! A write (append, merge, delete, compaction) removes its data and delete files the same way,
//! by one set of rules kept in [`Uncommitted`]: every name it hands out is recorded before the
//! file is created; a write that fails removes them once nothing is writing any more, and so
//! does one dropped before its commit (cancelled), in the background; a commit whose outcome
//! is unknown keeps them (the table may reference them).

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use iceberg::io::FileIO;
use iceberg::spec::{DataFile, ManifestStatus, Snapshot, TableMetadata};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use super::commit::load_manifest_list;
use super::read_manifest;
use crate::catalog::{Catalog, Pointer};
use crate::error::{Error, Result};

/// Where one write records the data and delete files it names, finished or not. Every clone
/// (a file writer's location generator, a task writing files) is a writer that may still
/// create a file: removal waits until all of them are gone, so no file appears after it.
#[derive(Clone, Debug)]
pub struct WrittenFiles {
    shared: Arc<Shared>,
    /// Held while this clone lives; [`Uncommitted`] waits for every one to be dropped.
    _writing: watch::Receiver<()>,
}

#[derive(Debug, Default)]
struct Shared {
    paths: Mutex<Vec<String>>,
    /// The write's tasks, aborted when it is given up.
    tasks: Mutex<Vec<AbortHandle>>,
    /// Set by [`Uncommitted::committing`].
    committing: AtomicBool,
}

impl WrittenFiles {
    /// Records `path` before the file is created there.
    pub(crate) fn record(&self, path: &str) {
        lock(&self.shared.paths).push(path.to_string());
    }

    /// Every name handed out so far.
    pub fn paths(&self) -> Vec<String> {
        lock(&self.shared.paths).clone()
    }

    /// Runs `task` (which writes files of this write) on a task of its own, aborted if the
    /// write is given up before it ends.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        let writer = self.clone();
        let handle = tokio::spawn(async move {
            let _writer = writer;
            task.await
        });
        let mut tasks = lock(&self.shared.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle.abort_handle());
        handle
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A writer that panicked while recording left a valid list.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The files of one write that has not landed, and the rules for removing them. Until
/// [`Self::committing`], nothing can reference them: dropped (the write abandoned, its future
/// cancelled by a Ctrl-C in Python, a timeout or a failing sibling), it aborts the write's
/// tasks and removes the files in the background (`Drop` cannot wait). Once a commit starts
/// they may land: a drop keeps them, and [`Self::discard_after`] removes them only when the
/// error says the commit did not land.
pub struct Uncommitted {
    io: FileIO,
    /// `None` once removal has been taken over.
    files: Option<WrittenFiles>,
    /// Closed once every writer (clone of `files`) is gone.
    writers: watch::Sender<()>,
}

impl Uncommitted {
    pub fn new(io: &FileIO) -> Self {
        let (writers, writing) = watch::channel(());
        Self {
            io: io.clone(),
            files: Some(WrittenFiles {
                shared: Arc::default(),
                _writing: writing,
            }),
            writers,
        }
    }

    /// The list the write records its files into.
    pub fn files(&self) -> &WrittenFiles {
        self.files
            .as_ref()
            .expect("files are taken only by discard or drop")
    }

    /// The write's commit starts: its files may land, so a drop no longer removes them.
    pub(crate) fn committing(&self) {
        self.files()
            .shared
            .committing
            .store(true, Ordering::Release);
    }

    /// What the write's commit carries ([`super::commit::SnapshotChange::written_by`]), so that
    /// it can tell whether the write said [`Self::committing`] first.
    pub(crate) fn guard(&self) -> WriteGuard {
        WriteGuard(self.files().shared.clone())
    }

    /// Removes the files of a write that ended with `error` (after aborting its tasks and
    /// waiting for every writer to close), unless the commit may have landed
    /// (`CommitStateUnknown`: the table may reference them, so they are kept). The caller
    /// drops its own writers first.
    pub async fn discard_after(mut self, error: &Error) {
        let removal = self.removal();
        if !error.commit_may_have_landed() {
            removal.await;
        }
    }

    /// Takes the files over (a drop then does nothing): aborts the write's tasks, and returns
    /// the removal, which waits for the last writer before deleting.
    fn removal(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let files = self.files.take();
        let io = self.io.clone();
        let writers = self.writers.clone();
        let shared = files.as_ref().map(|f| f.shared.clone());
        if let Some(shared) = &shared {
            for task in lock(&shared.tasks).drain(..) {
                task.abort();
            }
        }
        drop(files);
        async move {
            writers.closed().await;
            let Some(shared) = shared else { return };
            let paths = std::mem::take(&mut *lock(&shared.paths));
            for path in paths {
                // A name whose file was never created has nothing to delete.
                let _ = io.delete(&path).await;
            }
        }
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        let Some(files) = &self.files else { return };
        if files.shared.committing.load(Ordering::Acquire) {
            return;
        }
        // Nothing named and no writer left but this one's own: nothing to remove.
        if self.writers.receiver_count() == 1 && self.files().paths().is_empty() {
            return;
        }
        let remove = self.removal();
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

/// The write a commit's files come from, as its [`Uncommitted`] sees it (not a writer: holding
/// it keeps no removal waiting).
#[derive(Clone)]
pub struct WriteGuard(Arc<Shared>);

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let committing = self.0.committing.load(Ordering::Acquire);
        f.debug_struct("WriteGuard")
            .field("committing", &committing)
            .finish()
    }
}

impl WriteGuard {
    /// Debug builds: panics, naming the first of `added` (the files the commit adds), when the
    /// write did not say [`Uncommitted::committing`]: its drop after the commit would delete
    /// files that landed.
    pub(crate) fn debug_assert_committing(&self, added: &[DataFile]) {
        if !cfg!(debug_assertions) || self.0.committing.load(Ordering::Acquire) {
            return;
        }
        let file = added.first().map_or("no file", |f| f.file_path());
        panic!(
            "committing {file} before its write called Uncommitted::committing(): the write's \
             drop would delete it once it landed"
        );
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

#[cfg(all(test, debug_assertions))]
mod tests {
    use std::collections::HashMap;
    use std::panic::AssertUnwindSafe;

    use arrow_schema::{DataType, Field, Schema as ArrowSchema};
    use futures::FutureExt;
    use iceberg::spec::{DataContentType, DataFileBuilder, DataFileFormat, Struct};

    use super::*;
    use crate::catalog::MAIN;
    use crate::tables::commit::{SnapshotChange, commit_append};

    fn data_file(path: &str) -> DataFile {
        DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path(path.into())
            .file_format(DataFileFormat::Parquet)
            .partition(Struct::empty())
            .record_count(1)
            .file_size_in_bytes(1)
            .build()
            .unwrap()
    }

    /// Through the commit: it checks before anything is written, and the table is unchanged.
    #[tokio::test]
    async fn a_commit_of_a_write_that_did_not_say_committing_fails_in_debug_builds() {
        let dir = tempfile::tempdir().unwrap();
        let lh = crate::Lakehouse::open(dir.path()).unwrap();
        lh.catalog().create_namespace("raw").unwrap();
        let schema = ArrowSchema::new(vec![Field::new("id", DataType::Int64, true)]);
        let created = lh.create_table("raw.t", &schema, &[], HashMap::new(), MAIN);
        created.await.unwrap();
        let table = lh.load_table("raw.t", MAIN).await.unwrap();
        let io = lh.io_for(&table).unwrap();
        let written = Uncommitted::new(&io);
        let path = format!("/nowhere/{}.parquet", uuid::Uuid::now_v7());
        written.files().record(&path);
        let change = SnapshotChange {
            branch: "main".into(),
            added_files: vec![data_file(&path)],
            written_by: Some(written.guard()),
            ..Default::default()
        };
        let commit = commit_append(lh.catalog(), &io, table, &change);
        let forgotten = AssertUnwindSafe(commit).catch_unwind().await;
        let message = *forgotten.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains(&path), "{message}");
        assert!(message.contains("Uncommitted::committing()"), "{message}");
        let after = lh.load_table("raw.t", MAIN).await.unwrap();
        assert_eq!(after.metadata.current_snapshot_id(), None);
        written.committing();
        let guard = change.written_by.as_ref().unwrap();
        guard.debug_assert_committing(&change.added_files);
    }
}
