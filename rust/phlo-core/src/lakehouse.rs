//! A lakehouse: a catalog (the embedded SQLite file) + a warehouse (data and metadata files, in a
//! local folder or on S3, see [`crate::storage`]). `open(root)` is the embedded shorthand:
//! `<root>/catalog.db` + `<root>/warehouse/`. Every operation here is what the Python
//! `Lakehouse` and `Table` call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema as ArrowSchema};
use arrow_select::concat::concat_batches;
use iceberg::io::FileIO;
use iceberg::spec::TableMetadataBuilder;

use crate::catalog::{Catalog, CommitMeta, MAIN, RefKind, RefMerge, TableIdent};
use crate::changes::changes;
use crate::compact::{CompactOptions, CompactResult, compact};
use crate::delete::{DeleteResult, commit_delete, plan_delete};
use crate::diff::{RowDiff, diff_rows};
use crate::error::{Context, Error, Location, Result};
use crate::maintenance::{self, ExpireResult, OrphanResult};
use crate::merge::{MergeOptions, MergeResult, WriteMode, merge};
use crate::schema::{
    arrow_schema_of, cast_to_schema, check_column_names, check_convertible, evolve,
    iceberg_schema_from_arrow, partition_spec,
};
use crate::storage::Storage;
use crate::tables::column_defaults::{DefaultsUse, refuse_defaults, write_defaults};
use crate::tables::commit::{SnapshotChange, commit_append, commit_metadata};
use crate::tables::discard::Uncommitted;
use crate::tables::manifests::{RewrittenManifests, rewrite_manifests};
use crate::tables::scan::snapshot_at;
use crate::tables::write::DataFileSink;
use crate::tables::{Filter, LoadedTable, ScanOptions, ScanPlan};

/// Attempts at a schema change while other writers keep committing.
const MAX_SCHEMA_ATTEMPTS: u32 = 8;

pub struct Lakehouse {
    /// The embedded lakehouse's folder; `None` when connected by URIs.
    root: Option<PathBuf>,
    storage: Storage,
    catalog: Catalog,
    io: FileIO,
}

/// A point in a table's past: a time (ms since epoch) or a commit of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsOf {
    Time(i64),
    Commit(String),
}

/// What an append committed.
#[derive(Debug, Clone)]
pub struct AppendResult {
    pub snapshot_id: i64,
    pub rows: u64,
    pub files_added: usize,
    pub bytes_written: u64,
    pub commit_retries: u32,
}

impl Lakehouse {
    /// Opens the embedded lakehouse at `root`, creating the folder, catalog and warehouse if
    /// needed: `connect("sqlite:///<root>/catalog.db", "file:///<root>/warehouse")`.
    pub fn open(root: &Path) -> Result<Self> {
        let storage_error = |source| Error::Storage {
            path: root.display().to_string(),
            source,
        };
        crate::storage::durable::create_dirs(root).map_err(storage_error)?;
        let root = root.canonicalize().map_err(storage_error)?;
        let storage = Storage::local(&root.join("warehouse"))?;
        let catalog = Catalog::open_sqlite(&root.join("catalog.db"))?;
        Ok(Self {
            root: Some(root),
            io: storage.file_io().clone(),
            storage,
            catalog,
        })
    }

    /// Connects to the catalog at `catalog_uri` and the warehouse at `warehouse_uri`
    /// (`file:///abs/dir` or `s3://bucket/prefix`); `properties` are Iceberg-style storage
    /// settings (`s3.endpoint`, `s3.access-key-id`, …). The catalog URI's scheme picks the
    /// catalog: `sqlite:///abs/path.db` (the embedded catalog file, created when missing),
    /// `postgresql://…`, or an Iceberg REST catalog `http(s)://…` (whose `/v1/config` may add
    /// storage properties; `token`/`credential` log in).
    pub async fn connect(
        catalog_uri: &str,
        warehouse_uri: &str,
        properties: &HashMap<String, String>,
    ) -> Result<Self> {
        let mut catalog_properties = properties.clone();
        catalog_properties
            .entry("warehouse".into())
            .or_insert_with(|| warehouse_uri.into());
        let catalog = Catalog::connect_with(catalog_uri, &catalog_properties)?;
        let storage = match catalog.rest() {
            // The catalog may hand out each table's storage credentials (see `io_for`).
            Some(rest) => {
                Storage::open_awaiting_credentials(warehouse_uri, rest.properties()).await?
            }
            None => Storage::open(warehouse_uri, properties).await?,
        };
        Ok(Self {
            root: None,
            io: storage.file_io().clone(),
            storage,
            catalog,
        })
    }

    /// The embedded lakehouse's folder (`open`); `None` when connected by URIs.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The warehouse URI (`file:///…/warehouse`, `s3://…`), as PyIceberg's `warehouse=`
    /// expects it.
    pub fn warehouse(&self) -> &str {
        self.storage.warehouse()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn file_io(&self) -> &FileIO {
        &self.io
    }

    /// The warehouse's storage properties (S3 credentials among them: never log them).
    pub fn storage_properties(&self) -> &HashMap<String, String> {
        self.storage.properties()
    }

    /// The file IO for `table`'s files: the warehouse's, or with the storage properties a
    /// REST catalog handed out for the table (credentials among them) laid over it.
    pub fn io_for(&self, table: &LoadedTable) -> Result<FileIO> {
        let vended = self
            .catalog
            .rest()
            .and_then(|r| r.table_storage(&table.ident));
        match vended {
            Some(properties) => Ok(self.storage.file_io_with(&properties)),
            None if self.storage.credentials_missing() => Err(Error::config(
                format!(
                    "no S3 credentials for table {} in {}: the catalog handed out none for it, \
                     and neither s3.access-key-id and s3.secret-access-key nor \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set",
                    table.ident,
                    self.warehouse()
                ),
                "pass s3.access-key-id and s3.secret-access-key in the properties (or the AWS \
                 variables), or have the catalog vend them (`phlo catalog serve \
                 --vend-credentials`)",
            )),
            None => Ok(self.io.clone()),
        }
    }

    pub async fn create_table(
        &self,
        name: &str,
        schema: &ArrowSchema,
        partition_by: &[(String, String)],
        properties: HashMap<String, String>,
        ref_name: &str,
    ) -> Result<LoadedTable> {
        let ident = TableIdent::parse(name)?;
        let schema = iceberg_schema_from_arrow(schema).map_err(|e| e.in_table(name))?;
        let spec = partition_spec(&schema, partition_by).map_err(|e| e.in_table(name))?;
        LoadedTable::create(
            &self.catalog,
            &self.io,
            self.storage.warehouse(),
            (&ident, ref_name),
            schema,
            spec,
            properties,
        )
        .await
    }

    /// Loads table `name` as the catalog ref `ref_name` (branch or tag) points at it.
    pub async fn load_table(&self, name: &str, ref_name: &str) -> Result<LoadedTable> {
        LoadedTable::load(&self.catalog, &self.io, &TableIdent::parse(name)?, ref_name).await
    }

    /// Loads table `name` to write to `ref_name`: on a REST catalog, one of the table's own
    /// tags is refused here, before any file is written.
    async fn load_to_write(&self, name: &str, ref_name: &str) -> Result<LoadedTable> {
        let table = self.load_table(name, ref_name).await?;
        if let Some(rest) = self.catalog.rest() {
            rest.require_branch(&table)?;
        }
        // Before any data file is written.
        refuse_defaults(table.metadata.current_schema(), DefaultsUse::Write)
            .map_err(|e| e.in_table(name))?;
        Ok(table)
    }

    /// Removes the table from branch `ref_name`; with `purge`, also deletes its files, which is
    /// refused while another ref still has the table.
    pub async fn drop_table(&self, name: &str, purge: bool, ref_name: &str) -> Result<()> {
        let table = self.load_table(name, ref_name).await?;
        // A REST table's refs are inside it: dropping it drops them all.
        if purge && self.catalog.rest().is_none() {
            let others: Vec<String> = self
                .catalog
                .all_pointers()?
                .into_iter()
                .filter(|p| p.ident == table.ident && p.ref_name != ref_name)
                .map(|p| p.ref_name)
                .collect();
            if !others.is_empty() {
                return Err(Error::invalid(
                    format!("{name} is still on {}", others.join(", ")),
                    "drop it on those refs (or delete them) before purging its files, or drop \
                     without purge",
                ));
            }
        }
        let io = self.io_for(&table)?;
        self.catalog.drop_table_on(ref_name, &table.ident)?;
        if purge {
            let location = table.metadata.location().to_string();
            io.delete_prefix(&location)
                .await
                .context(|| format!("deleting the files of {name} under {location}"))?;
        }
        Ok(())
    }

    /// Appends batches as one snapshot on branch `ref_name`. Batches are cast to the table schema; any
    /// error (schema, empty input, commit) leaves the table unchanged and removes the files
    /// written so far.
    pub async fn append(
        &self,
        name: &str,
        batches: impl IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
        ref_name: &str,
        properties: HashMap<String, String>,
    ) -> Result<AppendResult> {
        let table = self.load_to_write(name, ref_name).await?;
        let io = self.io_for(&table)?;
        let target = arrow_schema_of(table.metadata.current_schema())?;
        let defaults = write_defaults(table.metadata.current_schema(), &target)?;
        let prefix = format!("{}", uuid::Uuid::now_v7());
        let written = Uncommitted::new(&io);
        let mut sink = DataFileSink::new(&io, &table.metadata, &prefix, written.files())?;
        let mut failure = None;
        for batch in batches {
            let step = match batch {
                Ok(batch) => match cast_to_schema(&batch, &target, &defaults) {
                    Ok(cast) => sink.write(cast).await,
                    Err(e) => Err(e.in_table(name)),
                },
                Err(source) => Err(Error::Arrow {
                    context: "reading the input stream".into(),
                    source,
                }),
            };
            if let Err(e) = step {
                failure = Some(e);
                break;
            }
        }
        let rows = sink.rows();
        let files = sink.finish().await;
        drop(sink);
        let failure = failure.or_else(|| match &files {
            Err(_) => None,
            Ok(_) if rows == 0 => Some(Error::EmptyInput {
                at: Location {
                    table: Some(name.into()),
                    column: None,
                },
            }),
            Ok(_) => None,
        });
        let files = match (files, failure) {
            (Ok(_), Some(e)) | (Err(e), _) => {
                written.discard_after(&e).await;
                return Err(e);
            }
            (Ok(files), None) => files,
        };
        let change = SnapshotChange {
            branch: MAIN.to_string(),
            added_files: files,
            properties,
            written_by: Some(written.guard()),
            ..Default::default()
        };
        written.committing();
        match commit_append(&self.catalog, &io, table, &change).await {
            Ok(outcome) => Ok(AppendResult {
                snapshot_id: outcome.snapshot_id,
                rows,
                files_added: change.added_files.len(),
                bytes_written: change
                    .added_files
                    .iter()
                    .map(|f| f.file_size_in_bytes())
                    .sum(),
                commit_retries: outcome.retries,
            }),
            Err(e) => {
                written.discard_after(&e).await;
                Err(e)
            }
        }
    }

    /// Evolves table `name` on branch `ref_name` so batches of `incoming` fit under
    /// [`SchemaEvolution::Evolve`]: new columns are added (nullable) and safe promotions
    /// applied, in one metadata-only commit (retried when another writer commits first).
    /// Columns that still would not convert are a `SchemaError` and nothing changes. Returns
    /// whether the schema changed.
    pub async fn evolve_schema(
        &self,
        name: &str,
        ref_name: &str,
        incoming: &ArrowSchema,
    ) -> Result<bool> {
        check_column_names(incoming).map_err(|e| e.in_table(name))?;
        for _ in 0..MAX_SCHEMA_ATTEMPTS {
            let table = self.load_to_write(name, ref_name).await?;
            let current = table.metadata.current_schema();
            let Some(schema) = evolve(&table.metadata, incoming).map_err(|e| e.in_table(name))?
            else {
                return Ok(false);
            };
            check_convertible(incoming, arrow_schema_of(&schema)?.as_ref())
                .map_err(|e| e.in_table(name))?;
            let added: Vec<String> = schema
                .as_struct()
                .fields()
                .iter()
                .filter(|f| current.field_by_id(f.id).is_none())
                .map(|f| f.name.clone())
                .collect();
            let next = TableMetadataBuilder::new_from_metadata(
                (*table.metadata).clone(),
                Some(table.metadata_location.clone()),
            )
            .add_current_schema(schema)
            .and_then(|b| b.build())
            .context(|| format!("evolving the schema of {name}"))?
            .metadata;
            let message = format!("evolve schema of {name}: +[{}]", added.join(", "));
            let io = self.io_for(&table)?;
            if commit_metadata(&self.catalog, &io, &table, &next, &message).await? {
                return Ok(true);
            }
        }
        Err(Error::conflict(
            name,
            "the table kept changing while its schema was evolving",
        ))
    }

    /// Merges (upserts) or appends a batch with deduplication, as one snapshot; see
    /// [`crate::merge`]. On error the table is unchanged and the files written are removed.
    pub async fn merge(
        &self,
        name: &str,
        batches: impl IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
        options: &MergeOptions,
    ) -> Result<MergeResult> {
        let started = std::time::Instant::now();
        let table = self.load_to_write(name, &options.ref_name).await?;
        let target = arrow_schema_of(table.metadata.current_schema())?;
        let defaults = write_defaults(table.metadata.current_schema(), &target)?;
        let mut cast = Vec::new();
        for batch in batches {
            let batch = batch.map_err(|source| Error::Arrow {
                context: "reading the input stream".into(),
                source,
            })?;
            cast.push(cast_to_schema(&batch, &target, &defaults).map_err(|e| e.in_table(name))?);
        }
        let batch = concat_batches(&target, &cast).context(|| "collecting the batch".into())?;
        drop(cast);
        if batch.num_rows() == 0 {
            return Err(Error::EmptyInput {
                at: Location {
                    table: Some(name.into()),
                    column: None,
                },
            });
        }
        let read_input = started.elapsed().as_secs_f64();
        let io = self.io_for(&table)?;
        // Dropped by a cancellation before the commit, it aborts the write and removes its files.
        let written = Uncommitted::new(&io);
        match merge(&self.catalog, &io, table, batch, options, &written).await {
            Ok(mut result) => {
                result.timings.insert(0, ("read_input", read_input));
                Ok(result)
            }
            Err(e) => {
                written.discard_after(&e).await;
                Err(e)
            }
        }
    }

    /// Deletes the rows of table `name` on branch `ref_name` that match every filter, as one
    /// snapshot (none when nothing matched), as the table's `write.delete.mode` says; see
    /// [`crate::delete`].
    pub async fn delete(
        &self,
        name: &str,
        filters: &[Filter],
        ref_name: &str,
        properties: HashMap<String, String>,
    ) -> Result<DeleteResult> {
        self.delete_with_mode(name, filters, ref_name, properties, None)
            .await
    }

    /// [`Self::delete`], with `write_mode` (when given) overriding the table's property.
    pub async fn delete_with_mode(
        &self,
        name: &str,
        filters: &[Filter],
        ref_name: &str,
        properties: HashMap<String, String>,
        write_mode: Option<WriteMode>,
    ) -> Result<DeleteResult> {
        let table = self.load_to_write(name, ref_name).await?;
        let io = self.io_for(&table)?;
        let plan = plan_delete(&self.catalog, &io, table, filters, properties, write_mode).await?;
        commit_delete(&self.catalog, &io, plan).await
    }

    /// The rows appended to table `name` on `ref_name` after snapshot `from` up to `to` (the
    /// ref's head when `None`); see [`crate::changes`].
    pub async fn changes(
        &self,
        name: &str,
        ref_name: &str,
        from: Option<i64>,
        to: Option<i64>,
        batch_size: Option<usize>,
    ) -> Result<ScanPlan> {
        let table = self.load_table(name, ref_name).await?;
        changes(&self.io_for(&table)?, &table, from, to, batch_size).await
    }

    /// Merges branch `source` into `into`, all tables at once; see [`crate::branch_merge`]
    /// (on a REST catalog, commits the transaction `source`).
    pub async fn merge_branch(
        &self,
        source: &str,
        into: &str,
        meta: &CommitMeta,
    ) -> Result<RefMerge> {
        if let Some(rest) = self.catalog.rest().filter(|r| r.in_transaction(source)) {
            return rest
                .commit_transaction(&|t| self.io_for(t), source, into)
                .await;
        }
        crate::branch_merge::merge_branch(&self.catalog, &self.io, source, into, meta).await
    }

    /// Ends transaction `name` without committing it (its block raised): deletes its private
    /// branch (on a REST catalog, its staged changes) and every file its writes left.
    pub async fn discard_transaction(&self, name: &str) -> Result<()> {
        if let Some(rest) = self.catalog.rest().filter(|r| r.in_transaction(name)) {
            return rest.discard_transaction(&|t| self.io_for(t), name).await;
        }
        crate::tables::discard::discard_branch(&self.catalog, &self.io, name).await
    }

    /// Rows of table `name` added, removed and changed (by `key`) from ref `from` to ref `to`.
    pub async fn diff_rows(
        &self,
        name: &str,
        from: &str,
        to: &str,
        key: &[String],
        sample: usize,
    ) -> Result<RowDiff> {
        let (a, b) = (
            self.load_table(name, from).await?,
            self.load_table(name, to).await?,
        );
        diff_rows(&self.io_for(&a)?, &a, &b, key, sample)
            .await
            .map_err(|e| e.in_table(name))
    }

    /// The snapshot table `name` had at a point in time on a ref: at `AsOf::Time` on `ref_name`
    /// (`main` when `None`), or right after a logged commit (on the commit's ref). Returns the
    /// ref and the snapshot (`None`: the table had no data yet).
    pub async fn snapshot_as_of(
        &self,
        name: &str,
        ref_name: Option<&str>,
        as_of: &AsOf,
    ) -> Result<(String, Option<i64>)> {
        let ident = TableIdent::parse(name)?;
        let (ref_name, as_of_ms, exact) = match as_of {
            AsOf::Time(ms) => (ref_name.unwrap_or(MAIN).to_string(), *ms, None),
            AsOf::Commit(id) => {
                let point = self.catalog.commit_point(id, &ident)?;
                if ref_name.is_some_and(|r| r != point.ref_name) {
                    return Err(Error::invalid(
                        format!(
                            "commit {id} was made on {}, not on {}",
                            point.ref_name,
                            ref_name.unwrap_or_default()
                        ),
                        format!("read it with ref={:?} (or leave ref out)", point.ref_name),
                    ));
                }
                (point.ref_name, point.created_at_ms, point.metadata_location)
            }
        };
        let table = self.load_table(name, &ref_name).await?;
        // The commit changed this table: its own metadata file names the exact snapshot.
        if let Some(location) = exact
            && let Ok(metadata) = (self.catalog.metadata_cache())
                .read(&self.io, &location, String::new)
                .await
        {
            let id = metadata.current_snapshot_id();
            if let Some(id) = id
                && table.metadata.snapshot_by_id(id).is_none()
            {
                return Err(Error::invalid(
                    format!("snapshot {id} of {name} (commit {as_of:?}) was expired"),
                    "time travel reaches back only to retained snapshots",
                )
                .in_table(name));
            }
            return Ok((ref_name, id));
        }
        let snapshot = snapshot_at(&table, as_of_ms).map_err(|e| e.in_table(name))?;
        Ok((ref_name, snapshot.map(|s| s.snapshot_id())))
    }

    /// Rewrites the small data files of table `name` on branch `ref_name` into target-size
    /// ones, as one `replace` snapshot; see [`crate::compact`]. Refused on a tag. On error the
    /// table is unchanged and the files written are removed (kept when the commit may have
    /// landed).
    pub async fn compact(
        &self,
        name: &str,
        ref_name: &str,
        options: &CompactOptions,
    ) -> Result<CompactResult> {
        let table = self.table_to_rewrite(name, ref_name, "compact").await?;
        let io = self.io_for(&table)?;
        let written = Uncommitted::new(&io);
        let result = compact(&self.catalog, &io, table, options, &written).await;
        if let Err(e) = &result {
            written.discard_after(e).await;
        }
        result.map_err(|e| e.in_table(name))
    }

    /// Sets (or, with `None`, removes) properties of table `name` on branch `ref_name` in one
    /// metadata-only commit; see [`crate::tables::properties`]. Refused on a tag.
    pub async fn set_properties(
        &self,
        name: &str,
        ref_name: &str,
        updates: &[(String, Option<String>)],
    ) -> Result<bool> {
        let table = self
            .table_to_rewrite(name, ref_name, "set properties of")
            .await?;
        let io = self.io_for(&table)?;
        crate::tables::properties::set_properties(&self.catalog, &io, table, updates).await
    }

    /// Regroups the manifests of table `name` on branch `ref_name`; see
    /// [`crate::tables::manifests::rewrite_manifests`]. Refused on a tag.
    pub async fn rewrite_manifests(
        &self,
        name: &str,
        ref_name: &str,
        properties: HashMap<String, String>,
    ) -> Result<RewrittenManifests> {
        let table = self
            .table_to_rewrite(name, ref_name, "rewrite the manifests of")
            .await?;
        let io = self.io_for(&table)?;
        rewrite_manifests(&self.catalog, &io, table, properties).await
    }

    /// Loads a table for a rewrite, refusing tags (immutable) before anything is written.
    async fn table_to_rewrite(
        &self,
        name: &str,
        ref_name: &str,
        what: &str,
    ) -> Result<LoadedTable> {
        if self.catalog.ref_kind(ref_name)? == Some(RefKind::Tag) {
            return Err(Error::InvalidInput {
                message: format!("cannot {what} {name} on {ref_name}: {ref_name} is a tag"),
                at: Location {
                    table: Some(name.to_string()),
                    column: None,
                },
                hint: "tags are immutable; run it on the branch the tag was taken from".into(),
            });
        }
        self.load_to_write(name, ref_name).await
    }

    /// See [`crate::maintenance::expire_snapshots`]. Internal branches whose process is gone
    /// (a killed transaction's) are removed first, so they pin nothing.
    pub async fn expire_snapshots(
        &self,
        older_than_ms: i64,
        keep_last: usize,
    ) -> Result<ExpireResult> {
        self.catalog.remove_abandoned_branches()?;
        maintenance::expire_snapshots(&self.catalog, &self.io, older_than_ms, keep_last).await
    }

    /// See [`crate::maintenance::remove_orphan_files`]; abandoned internal branches are removed
    /// first (not with `dry_run`).
    pub async fn remove_orphan_files(
        &self,
        older_than_ms: i64,
        dry_run: bool,
    ) -> Result<OrphanResult> {
        if !dry_run {
            self.catalog.remove_abandoned_branches()?;
        }
        maintenance::remove_orphan_files(&self.catalog, &self.storage, older_than_ms, dry_run).await
    }

    pub async fn scan(&self, name: &str, options: &ScanOptions) -> Result<ScanPlan> {
        let table = self
            .load_table(name, options.ref_name.as_deref().unwrap_or(MAIN))
            .await?;
        ScanPlan::plan(&self.io_for(&table)?, &table, options).await
    }
}
