//! The embedded lakehouse: `<root>/catalog.db` (SQLite catalog) + `<root>/warehouse/` (data and
//! metadata files). Every operation here is what the Python `Lakehouse` and `Table` call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema as ArrowSchema};
use arrow_select::concat::concat_batches;
use iceberg::io::FileIO;

use crate::catalog::{MAIN, SqliteCatalog, TableIdent};
use crate::error::{Context, Error, Location, Result};
use crate::iceberg::commit::{SnapshotChange, commit_append};
use crate::iceberg::write::DataFileSink;
use crate::iceberg::{LoadedTable, ScanOptions, ScanPlan};
use crate::merge::{MergeOptions, MergeResult, merge};
use crate::schema::{arrow_schema_of, cast_to_schema, iceberg_schema_from_arrow, partition_spec};

pub struct Lakehouse {
    root: PathBuf,
    warehouse: String,
    catalog: SqliteCatalog,
    io: FileIO,
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
    /// Opens the lakehouse at `root`, creating the folder, catalog and warehouse if needed.
    pub fn open(root: &Path) -> Result<Self> {
        let warehouse_dir = root.join("warehouse");
        std::fs::create_dir_all(&warehouse_dir).map_err(|source| Error::Storage {
            path: warehouse_dir.display().to_string(),
            source,
        })?;
        let root = root.canonicalize().map_err(|source| Error::Storage {
            path: root.display().to_string(),
            source,
        })?;
        let catalog = SqliteCatalog::open(&root.join("catalog.db"))?;
        Ok(Self {
            warehouse: format!("file://{}", root.join("warehouse").display()),
            root,
            catalog,
            io: FileIO::new_with_fs(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The warehouse URI (`file:///…/warehouse`), as PyIceberg's `warehouse=` expects it.
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    pub fn catalog(&self) -> &SqliteCatalog {
        &self.catalog
    }

    pub fn file_io(&self) -> &FileIO {
        &self.io
    }

    pub async fn create_table(
        &self,
        name: &str,
        schema: &ArrowSchema,
        partition_by: &[(String, String)],
        properties: HashMap<String, String>,
    ) -> Result<LoadedTable> {
        let ident = TableIdent::parse(name)?;
        let schema = iceberg_schema_from_arrow(schema).map_err(|e| e.in_table(name))?;
        let spec = partition_spec(&schema, partition_by).map_err(|e| e.in_table(name))?;
        LoadedTable::create(
            &self.catalog,
            &self.io,
            &self.warehouse,
            &ident,
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

    /// Removes the table from the catalog; with `purge`, also deletes its files.
    pub async fn drop_table(&self, name: &str, purge: bool) -> Result<()> {
        let table = self.load_table(name, MAIN).await?;
        self.catalog.drop_table(&table.ident)?;
        if purge {
            let location = table.metadata.location().to_string();
            self.io
                .delete_prefix(&location)
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
        let table = self.load_table(name, ref_name).await?;
        let target = arrow_schema_of(table.metadata.current_schema())?;
        let prefix = format!("{}", uuid::Uuid::now_v7());
        let mut sink = DataFileSink::new(&self.io, &table.metadata, &prefix)?;
        let mut failure = None;
        for batch in batches {
            let step = match batch {
                Ok(batch) => match cast_to_schema(&batch, &target) {
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
            (Ok(files), Some(e)) => {
                self.delete_files(files.iter().map(|f| f.file_path())).await;
                return Err(e);
            }
            (Err(e), _) => return Err(e),
            (Ok(files), None) => files,
        };
        let change = SnapshotChange {
            branch: MAIN.to_string(),
            added_files: files,
            properties,
            ..Default::default()
        };
        match commit_append(&self.catalog, &self.io, table, &change).await {
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
                self.delete_files(change.added_files.iter().map(|f| f.file_path()))
                    .await;
                Err(e)
            }
        }
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
        let table = self.load_table(name, &options.ref_name).await?;
        let target = arrow_schema_of(table.metadata.current_schema())?;
        let mut cast = Vec::new();
        for batch in batches {
            let batch = batch.map_err(|source| Error::Arrow {
                context: "reading the input stream".into(),
                source,
            })?;
            cast.push(cast_to_schema(&batch, &target).map_err(|e| e.in_table(name))?);
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
        let mut written = Vec::new();
        match merge(&self.catalog, &self.io, table, batch, options, &mut written).await {
            Ok(mut result) => {
                result.timings.insert(0, ("read_input", read_input));
                Ok(result)
            }
            Err(e) => {
                self.delete_files(written.iter().map(String::as_str)).await;
                Err(e)
            }
        }
    }

    pub async fn scan(&self, name: &str, options: &ScanOptions) -> Result<ScanPlan> {
        let table = self
            .load_table(name, options.ref_name.as_deref().unwrap_or(MAIN))
            .await?;
        ScanPlan::plan(&self.io, &table, options).await
    }

    /// Best effort: files of a failed write are unreferenced, so a leftover is only an orphan.
    async fn delete_files(&self, paths: impl Iterator<Item = &str>) {
        for path in paths {
            let _ = self.io.delete(path).await;
        }
    }
}
