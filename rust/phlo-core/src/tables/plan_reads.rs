//! What a write's plan read of one version of a table (the branch head's manifest list and
//! manifests), kept for its commit, which would otherwise read the same files again: on object
//! storage every read is a request.
//!
//! Iceberg never rewrites these files in place (their names are unique), but the reuse is
//! still tied to the version the plan saw: a commit reuses them only while its base is the
//! metadata file they were read through, and the catalog's compare-and-swap on that location
//! (or a REST server's `assert-ref-snapshot-id`) proves that base current in the same step
//! that commits. A commit that lost a race to another writer reloads the table and reads the
//! new version's files afresh, as without a plan.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;

use super::LoadedTable;

/// The manifest list and manifests one plan read (empty: nothing to reuse).
#[derive(Debug, Default)]
pub struct PlanReads {
    /// The metadata file of the version they were read from.
    metadata_location: String,
    /// The branch head's manifest list: its path and bytes.
    list: Option<(String, Bytes)>,
    manifests: HashMap<String, Kept>,
    /// The files [`PlanReads::keep_for`] was given: the files a commit may remove without any
    /// manifest marked [`Kept::ListsNone`] being read.
    removable: HashSet<String>,
}

#[derive(Debug)]
enum Kept {
    /// The manifest's bytes, and hashes of the paths of the live files it lists.
    Bytes(Bytes, Vec<u64>),
    /// It lists none of the removable files (its bytes were dropped).
    ListsNone,
}

/// What a commit needs to do about one manifest of its base.
pub(crate) enum Reuse<'a> {
    /// Read it: the plan did not keep it.
    Read,
    /// Parse these bytes: the plan read them from it.
    Parse(&'a Bytes),
    /// Carry it over as it is: it lists none of the files the commit removes.
    Untouched,
}

impl PlanReads {
    pub(crate) fn new(table: &LoadedTable) -> Self {
        Self {
            metadata_location: table.metadata_location.clone(),
            ..Default::default()
        }
    }

    pub(crate) fn record_list(&mut self, path: &str, bytes: Bytes) {
        self.list = Some((path.to_string(), bytes));
    }

    /// Records a manifest's bytes and the paths of the live files it lists.
    pub(crate) fn record_manifest<'a>(
        &mut self,
        path: &str,
        bytes: Bytes,
        live: impl Iterator<Item = &'a str>,
    ) {
        let hashes = live.map(path_hash).collect();
        self.manifests
            .insert(path.to_string(), Kept::Bytes(bytes, hashes));
    }

    /// Keeps the bytes of only the manifests that list one of `removable` (the files the plan
    /// may remove, delete files included), so the plan holds no more than its commit rewrites;
    /// the others are remembered as listing none of them.
    pub fn keep_for<'a>(&mut self, removable: impl IntoIterator<Item = &'a str>) {
        self.removable = removable.into_iter().map(str::to_string).collect();
        let hashes: HashSet<u64> = self.removable.iter().map(|p| path_hash(p)).collect();
        for kept in self.manifests.values_mut() {
            if let Kept::Bytes(_, live) = kept
                && !live.iter().any(|h| hashes.contains(h))
            {
                *kept = Kept::ListsNone;
            }
        }
    }

    /// The bytes of manifest list `path` of `table`, if the plan read them from this version.
    pub(crate) fn list(&self, table: &LoadedTable, path: &str) -> Option<&Bytes> {
        match &self.list {
            Some((read, bytes)) if read == path && self.is_of(table) => Some(bytes),
            _ => None,
        }
    }

    /// What a commit on `table` removing `removed` does about manifest `path`.
    pub(crate) fn manifest(
        &self,
        table: &LoadedTable,
        path: &str,
        removed: &HashSet<&str>,
    ) -> Reuse<'_> {
        if !self.is_of(table) {
            return Reuse::Read;
        }
        match self.manifests.get(path) {
            Some(Kept::Bytes(bytes, _)) => Reuse::Parse(bytes),
            // Only what `keep_for` was told may be removed is known to be absent.
            Some(Kept::ListsNone) if removed.iter().all(|r| self.removable.contains(*r)) => {
                Reuse::Untouched
            }
            _ => Reuse::Read,
        }
    }

    fn is_of(&self, table: &LoadedTable) -> bool {
        !self.metadata_location.is_empty() && self.metadata_location == table.metadata_location
    }
}

fn path_hash(path: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish()
}
