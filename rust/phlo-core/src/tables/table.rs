//! A table as the catalog currently points at it: identifier, metadata and metadata location.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use iceberg::io::FileIO;
use iceberg::spec::{
    Schema, SnapshotRef, TableMetadata, TableMetadataBuilder, UnboundPartitionSpec,
};
use iceberg::{MetadataLocation, TableCreation};

use crate::catalog::{Catalog, CommitMeta, TableIdent};
use crate::error::{Context, Error, Result};

/// Reads of a table's metadata file, each after its pointer moved on (see [`LoadedTable::load`]).
const LOAD_ATTEMPTS: u32 = 3;

/// One loaded version of a table's metadata.
#[derive(Debug, Clone)]
pub struct LoadedTable {
    pub ident: TableIdent,
    /// The catalog ref (branch or tag) this version was loaded from.
    pub ref_name: String,
    pub metadata: Arc<TableMetadata>,
    pub metadata_location: String,
    /// When this version was read from the catalog (ms since the epoch): files written for a
    /// commit on top of it are younger (see `CommitMeta::files_written_since_ms`).
    pub loaded_ms: i64,
}

impl LoadedTable {
    /// `metadata`, read from `metadata_location` (where ref `ref_name` points) just now.
    pub(crate) fn read_now(
        ident: &TableIdent,
        ref_name: &str,
        metadata: Arc<TableMetadata>,
        metadata_location: String,
    ) -> Self {
        Self {
            ident: ident.clone(),
            ref_name: ref_name.to_string(),
            metadata,
            metadata_location,
            loaded_ms: now_ms(),
        }
    }

    /// Loads the table as the catalog ref `ref_name` points at it.
    pub async fn load(
        catalog: &Catalog,
        io: &FileIO,
        ident: &TableIdent,
        ref_name: &str,
    ) -> Result<Self> {
        if let Some(rest) = catalog.rest() {
            return rest.load(ident, ref_name);
        }
        let mut metadata_location = catalog.metadata_location_on(ref_name, ident)?;
        let mut attempt = 1;
        loop {
            crate::failpoint::hit("load.after-pointer")?;
            let read = catalog
                .metadata_cache()
                .read(io, &metadata_location, || {
                    format!("reading metadata of {ident} at {metadata_location}")
                })
                .await;
            let failure = match read {
                Ok(metadata) => {
                    return Ok(Self::read_now(ident, ref_name, metadata, metadata_location));
                }
                Err(e) => e,
            };
            // Commits that landed since the pointer was read may have deleted the file
            // (`write.metadata.delete-after-commit.enabled`): the pointer has moved on then.
            let now = catalog.metadata_location_on(ref_name, ident)?;
            if now == metadata_location || attempt == LOAD_ATTEMPTS {
                return Err(crate::catalog::swept::on_ref(failure, ref_name));
            }
            (metadata_location, attempt) = (now, attempt + 1);
        }
    }

    /// Writes the first metadata file of a new table under `{warehouse}/{namespace}.db/{name}`
    /// (PyIceberg's layout) and registers it on branch `ref_name` of the catalog.
    pub async fn create(
        catalog: &Catalog,
        io: &FileIO,
        warehouse: &str,
        (ident, ref_name): (&TableIdent, &str),
        schema: Schema,
        partition_spec: UnboundPartitionSpec,
        properties: HashMap<String, String>,
    ) -> Result<Self> {
        let creation = TableCreation::builder()
            .name(ident.name.clone())
            .location(default_location(warehouse, ident))
            .schema(schema)
            .partition_spec(partition_spec)
            .properties(properties)
            .build();
        Self::create_from(
            catalog,
            io,
            (ident, ref_name),
            creation,
            &CommitMeta::default(),
        )
        .await
    }

    /// Writes the first metadata file of a new table as `creation` describes it (its location
    /// must be set) and registers it on branch `ref_name`.
    pub async fn create_from(
        catalog: &Catalog,
        io: &FileIO,
        (ident, ref_name): (&TableIdent, &str),
        creation: TableCreation,
        meta: &CommitMeta,
    ) -> Result<Self> {
        if let Some(rest) = catalog.rest() {
            return rest.create(ident, ref_name, &creation);
        }
        // Checked before writing anything, and again (atomically) when registering.
        if catalog.metadata_location_on(ref_name, ident).is_ok() {
            return Err(Error::TableAlreadyExists(ident.to_string()));
        }
        if !catalog.namespace_exists(&ident.namespace)? {
            return Err(Error::NoSuchNamespace(ident.namespace.clone()));
        }
        let location = creation.location.clone().unwrap_or_default();
        let metadata = TableMetadataBuilder::from_table_creation(creation)
            .and_then(|b| b.build())
            .context(|| format!("building metadata of {ident}"))?
            .metadata;
        let metadata_location = MetadataLocation::new_with_metadata(&location, &metadata);
        metadata
            .write_to(io, &metadata_location)
            .await
            .context(|| format!("writing metadata of {ident}"))?;
        let metadata_location = metadata_location.to_string();
        if let Err(e) = catalog.create_table_on(ref_name, ident, &metadata_location, meta) {
            // Another creator won the race: our metadata file is an orphan, remove it now.
            let _ = io.delete(&metadata_location).await;
            return Err(e);
        }
        let metadata = Arc::new(metadata);
        catalog
            .metadata_cache()
            .insert(&metadata_location, metadata.clone());
        Ok(Self::read_now(ident, ref_name, metadata, metadata_location))
    }

    /// The snapshot a ref points at (`None` for a ref without snapshots, e.g. a new table).
    pub fn snapshot_for_ref(&self, ref_name: &str) -> Option<&SnapshotRef> {
        self.metadata.snapshot_for_ref(ref_name)
    }

    /// The location the next metadata file of this table is written to.
    pub fn next_metadata_location(&self, next: &TableMetadata) -> Result<MetadataLocation> {
        let current = MetadataLocation::from_str(&self.metadata_location)
            .context(|| format!("parsing metadata location {}", self.metadata_location))?;
        Ok(current.with_next_version().with_new_metadata(next))
    }
}

/// Where a new table's files go: `{warehouse}/{namespace}.db/{name}`, PyIceberg's layout.
pub fn default_location(warehouse: &str, ident: &TableIdent) -> String {
    format!(
        "{}/{}.db/{}",
        warehouse.trim_end_matches('/'),
        ident.namespace,
        ident.name
    )
}

/// The wall clock in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
