//! A local warehouse's files survive a power loss once a commit lands. A commit makes new
//! files reachable (data and delete files, manifests, the manifest list, the metadata file),
//! then moves the catalog's pointer; after a crash the pointer must not lead to a file, or a
//! directory entry, that never reached the disk.
//!
//! - Every file is synced as it is finished: when its writer closes, or after a one-shot write
//!   (iceberg's own local storage syncs neither the latter nor any directory).
//! - Each directory that got a new entry (a file, or a folder created for one) is remembered,
//!   and [`sync_new_entries`] syncs each of them once, just before a SQL catalog commits a
//!   change: the catalog's pointer never moves ahead of the entries it leads to.
//!
//! Directories are remembered process-wide, as the file system is: a commit also syncs the
//! entries of writes still under way (a directory sync is cheap, a missed one loses data). An
//! object store needs none of this: an S3 PUT is durable when it returns.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use bytes::Bytes;
use futures::stream::BoxStream;
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, LocalFsStorage,
    OutputFile, Storage as FileStorage, StorageConfig, StorageFactory,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// iceberg's file IO on a local warehouse, its files written by [`DurableLocalStorage`].
pub(super) fn file_io() -> FileIO {
    FileIOBuilder::new(Arc::new(DurableLocalStorageFactory)).build()
}

/// Builds [`DurableLocalStorage`].
#[derive(Debug, Serialize, Deserialize)]
struct DurableLocalStorageFactory;

#[typetag::serde(name = "PhloDurableLocalStorageFactory")]
impl StorageFactory for DurableLocalStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn FileStorage>> {
        Ok(Arc::new(DurableLocalStorage::default()))
    }
}

/// iceberg's local storage (reads, deletes go to it), except that files are written by phlo:
/// synced, and their directories remembered for [`sync_new_entries`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DurableLocalStorage {
    files: LocalFsStorage,
}

#[async_trait::async_trait]
#[typetag::serde(name = "PhloDurableLocalStorage")]
impl FileStorage for DurableLocalStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        self.files.exists(path).await
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        self.files.metadata(path).await
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        self.files.read(path).await
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        self.files.reader(path).await
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let path = local_path(path);
        let file = create(&path).map_err(|e| failure("writing", &path, e))?;
        sync(file, path, Some(bs)).await
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let path = local_path(path);
        let file = create(&path).map_err(|e| failure("creating", &path, e))?;
        Ok(Box::new(SyncedFile {
            file: Some(file),
            path,
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        self.files.delete(path).await
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        self.files.delete_prefix(path).await
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        self.files.delete_stream(paths).await
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// A file being written; synced when it closes.
struct SyncedFile {
    file: Option<std::fs::File>,
    path: PathBuf,
}

#[async_trait::async_trait]
impl FileWrite for SyncedFile {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let file = self.file.as_mut().ok_or_else(|| closed(&self.path))?;
        file.write_all(&bs)
            .map_err(|e| failure("writing", &self.path, e))
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let file = self.file.take().ok_or_else(|| closed(&self.path))?;
        sync(file, self.path.clone(), None).await
    }
}

/// Writes `bytes` (if any) to `file` and syncs it, on the blocking pool: a sync waits for the
/// disk, which would hold up every task of the runtime's thread.
async fn sync(file: std::fs::File, path: PathBuf, bytes: Option<Bytes>) -> iceberg::Result<()> {
    let synced = tokio::task::spawn_blocking(move || {
        let mut file = file;
        if let Some(bytes) = bytes {
            file.write_all(&bytes)?;
        }
        file.sync_all()
    })
    .await;
    synced
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(|e| failure("syncing", &path, e))?;
    #[cfg(test)]
    log::record(log::Event::FileSynced(path));
    Ok(())
}

/// Creates (truncates) the file at `path`, its folder first when missing; both new entries
/// are remembered for [`sync_new_entries`].
fn create(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    let file = std::fs::File::create(path)?;
    note_entry(path);
    Ok(file)
}

/// Remembers that file `path`, written (synced) by phlo without this storage, e.g. renamed
/// into place, is a new entry of its folder.
pub(crate) fn note_entry(path: &Path) {
    #[cfg(test)]
    log::record(log::Event::Created(path.to_path_buf()));
    if let Some(dir) = path.parent() {
        pending().note(dir);
    }
}

/// Creates folder `dir` and its missing ancestors, remembering each one's parent (which got
/// an entry). The whole check-and-create runs under the lock of the remembered folders: a
/// writer that finds `dir` already there then knows its parent is remembered (or synced), so
/// its own commit cannot move ahead of the entry another writer just made.
pub(crate) fn create_dirs(dir: &Path) -> std::io::Result<()> {
    let mut pending = pending();
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = (dir.ancestors())
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    std::fs::create_dir_all(dir)?;
    for created in missing {
        #[cfg(test)]
        log::record(log::Event::Created(created.to_path_buf()));
        match created.parent() {
            // A relative path's first folder is an entry of the working directory.
            Some(parent) if parent.as_os_str().is_empty() => pending.note(Path::new(".")),
            Some(parent) => pending.note(parent),
            None => {}
        }
    }
    Ok(())
}

/// Syncs every folder that got a new entry since it was last synced, each once: a SQL
/// catalog runs this before each change it commits, so that the pointer it moves never leads
/// to a file whose name a crash could lose. Nothing to do (one lock) when no local file was
/// written.
pub(crate) fn sync_new_entries() -> Result<()> {
    let dirs: Vec<(PathBuf, u64)> = {
        let pending = pending();
        if pending.dirs.is_empty() {
            return Ok(());
        }
        pending
            .dirs
            .iter()
            .map(|(dir, at)| (dir.clone(), *at))
            .collect()
    };
    // Concurrently: each sync may flush the disk's cache, and flushes in flight together are
    // merged into one by the kernel (200 new partition folders synced in turn took ~0.5 s).
    let threads = dirs.len().min(DIR_SYNCS_AT_ONCE);
    let chunk = dirs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let running: Vec<_> = (dirs.chunks(chunk))
            .map(|some| scope.spawn(move || some.iter().try_for_each(|(dir, _)| sync_dir(dir))))
            .collect();
        running
            .into_iter()
            .try_for_each(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
    })?;
    pending().forget(&dirs);
    Ok(())
}

/// Folder syncs [`sync_new_entries`] runs at once.
const DIR_SYNCS_AT_ONCE: usize = 16;

/// Syncs folder `dir`; one gone meanwhile (its table purged) has no entry left to keep.
fn sync_dir(dir: &Path) -> Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => {
            #[cfg(test)]
            log::record(log::Event::DirSynced(dir.to_path_buf()));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Storage {
            path: dir.display().to_string(),
            source,
        }),
    }
}

/// Folders with entries not yet synced, each with when its last entry was noted: a folder
/// that gets another entry while a sync of it runs stays remembered for the next one.
#[derive(Default)]
struct Pending {
    dirs: HashMap<PathBuf, u64>,
    notes: u64,
}

impl Pending {
    fn note(&mut self, dir: &Path) {
        self.notes += 1;
        match self.dirs.get_mut(dir) {
            Some(at) => *at = self.notes,
            None => {
                self.dirs.insert(dir.to_path_buf(), self.notes);
            }
        }
    }

    /// Forgets the folders `synced` unless they got an entry since.
    fn forget(&mut self, synced: &[(PathBuf, u64)]) {
        for (dir, at) in synced {
            if self.dirs.get(dir) == Some(at) {
                self.dirs.remove(dir);
            }
        }
    }
}

fn pending() -> MutexGuard<'static, Pending> {
    static PENDING: LazyLock<Mutex<Pending>> = LazyLock::new(Mutex::default);
    // A panic while holding it leaves the map whole: every step is a single insert or remove.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The local path of a `file:` URI (as iceberg's local storage reads it: `file:///p`,
/// `file:/p` and a bare `/p` all name `/p`).
fn local_path(uri: &str) -> PathBuf {
    let path = super::local_path(uri).unwrap_or(uri);
    Path::new("/").join(path.trim_start_matches('/'))
}

fn failure(doing: &str, path: &Path, error: std::io::Error) -> iceberg::Error {
    iceberg::Error::new(
        iceberg::ErrorKind::Unexpected,
        format!("{doing} {}: {error}", path.display()),
    )
    .with_source(error)
}

fn closed(path: &Path) -> iceberg::Error {
    iceberg::Error::new(
        iceberg::ErrorKind::Unexpected,
        format!("{} was written after it was closed", path.display()),
    )
}

#[cfg(test)]
mod tests;

/// What the durability tests observe: the syncs, and the catalog pointer moves, in order.
#[cfg(test)]
pub(crate) mod log {
    use std::path::PathBuf;
    use std::sync::Mutex;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Event {
        /// A file or folder was created (its name is an entry of its parent).
        Created(PathBuf),
        FileSynced(PathBuf),
        DirSynced(PathBuf),
        /// A catalog transaction set a table's pointer to this metadata file.
        PointerMoved(String),
    }

    static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());

    pub(crate) fn record(event: Event) {
        EVENTS.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }

    /// Every event so far (of every test in the process: filter by path).
    pub(crate) fn events() -> Vec<Event> {
        EVENTS.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
