//! Parsed metadata files by location. A metadata file is never rewritten in place (each commit
//! writes a new one, its name unique), so what was read from a location stays true of it: a
//! table load only has to ask the catalog where the table's metadata is, and reads the file only
//! when it is new to this process. Another writer's commit moves the pointer to a new location,
//! which misses. On object storage this saves a request and a parse per load (a `Table` handle
//! loads the table, and so does each write through it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;

use super::unsupported_types;
use crate::error::{Error, Result};

/// Metadata files kept: the current one of each table a process works with, and a few older
/// ones (a metadata file holds the table's whole history, so it can be large).
const CAPACITY: usize = 32;

/// The least recently used entry goes when a new one would exceed [`CAPACITY`].
#[derive(Default)]
pub struct MetadataCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_location: HashMap<String, (Arc<TableMetadata>, u64)>,
    /// Advances on every use; an entry's number is its last use.
    clock: u64,
}

impl Entries {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

impl MetadataCache {
    /// The metadata at `location`, read (and kept) only when this cache does not hold it;
    /// `what` names the read in an error.
    pub async fn read(
        &self,
        io: &FileIO,
        location: &str,
        what: impl FnOnce() -> String,
    ) -> Result<Arc<TableMetadata>> {
        if let Some(metadata) = self.get(location) {
            return Ok(metadata);
        }
        let metadata = Arc::new(read_metadata(io, location, what).await?);
        self.insert(location, metadata.clone());
        Ok(metadata)
    }

    /// Keeps `metadata` as the content of `location` (a file just written or read).
    pub fn insert(&self, location: &str, metadata: Arc<TableMetadata>) {
        let mut entries = self.lock();
        let used = entries.tick();
        entries
            .by_location
            .insert(location.to_string(), (metadata, used));
        if entries.by_location.len() > CAPACITY {
            let oldest = entries
                .by_location
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(location, _)| location.clone());
            if let Some(oldest) = oldest {
                entries.by_location.remove(&oldest);
            }
        }
    }

    fn get(&self, location: &str) -> Option<Arc<TableMetadata>> {
        let mut entries = self.lock();
        let used = entries.tick();
        let (metadata, last_used) = entries.by_location.get_mut(location)?;
        *last_used = used;
        Some(metadata.clone())
    }

    /// The entries stay consistent whatever a panicking holder did (each change is one map
    /// operation), so a poisoned lock is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reads and parses metadata file `location`; `what` names the read in an error. A file that
/// does not parse because of a column type phlo cannot read is a `SchemaError` naming it.
pub async fn read_metadata(
    io: &FileIO,
    location: &str,
    what: impl FnOnce() -> String,
) -> Result<TableMetadata> {
    match TableMetadata::read_from(io, location).await {
        Ok(metadata) => Ok(metadata),
        Err(source) => {
            // A ref's copy of a file another engine's cleanup deleted (`catalog::ref_copies`).
            let copy = crate::catalog::ref_copies::copy_of(location);
            if let Ok(metadata) = TableMetadata::read_from(io, &copy).await {
                return Ok(metadata);
            }
            let context = what();
            let failure = Error::iceberg(context.clone(), source);
            Err(match super::read_bytes(io, location).await {
                Ok(text) => unsupported_types::explain(&text, &context, failure),
                Err(_) => failure,
            })
        }
    }
}

/// A table's metadata for unit tests that need one but not its contents.
#[cfg(test)]
pub(crate) mod test_metadata {
    use std::sync::Arc;

    use iceberg::TableCreation;
    use iceberg::spec::{
        NestedField, PrimitiveType, Schema, TableMetadata, TableMetadataBuilder, Type,
    };

    /// A new table at `file:///tmp/t` with one required long column, `id` (field id 1).
    pub(crate) fn one_long_column() -> TableMetadata {
        let id = NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long));
        let schema = Schema::builder()
            .with_fields(vec![Arc::new(id)])
            .build()
            .unwrap();
        let creation = TableCreation::builder()
            .name("t".into())
            .location("file:///tmp/t".into())
            .schema(schema)
            .build();
        TableMetadataBuilder::from_table_creation(creation)
            .unwrap()
            .build()
            .unwrap()
            .metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Arc<TableMetadata> {
        Arc::new(test_metadata::one_long_column())
    }

    #[test]
    fn the_least_recently_used_location_goes_first() {
        let cache = MetadataCache::default();
        let first = metadata();
        cache.insert("m0", first.clone());
        for i in 1..CAPACITY {
            cache.insert(&format!("m{i}"), metadata());
        }
        // Using m0 makes m1 the oldest: the next entry evicts m1, not m0.
        assert!(Arc::ptr_eq(&cache.get("m0").unwrap(), &first));
        cache.insert("new", metadata());
        assert!(cache.get("m1").is_none());
        assert!(cache.get("m0").is_some() && cache.get("new").is_some());
        assert_eq!(cache.lock().by_location.len(), CAPACITY);
    }
}
