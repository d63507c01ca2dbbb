//! `NativeLakehouse`: the embedded lakehouse's operations, one method each.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use phlo_core::Lakehouse;
use phlo_core::catalog::{CommitMeta, RefKind, ref_copies};
use phlo_core::compact::CompactOptions;
use phlo_core::dedupe::DedupeMethod;
use phlo_core::lakehouse::AsOf;
use phlo_core::merge::{MergeOptions, MergeStrategy, WriteMode};
use phlo_core::schema::{SchemaEvolution, arrow_schema_of};
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::{PyRecordBatch, PySchema};

use crate::errors::IntoPyResult;
use crate::guard::detached;
use crate::runtime::wait_for;
use crate::scan::NativeScan;

#[pyclass(module = "phlo._native", frozen)]
pub struct NativeLakehouse {
    inner: Arc<Lakehouse>,
}

/// A call's `write_mode=` (None: the table's property decides).
fn parse_write_mode(write_mode: Option<&str>) -> PyResult<Option<WriteMode>> {
    write_mode
        .map(|m| WriteMode::parse(m, "write_mode"))
        .transpose()
        .py_err()
}

/// A filter value from Python; datetimes and dates arrive tagged by `phlo._filters`.
#[derive(FromPyObject)]
enum PyLiteral {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tagged((String, i64)),
}

impl PyLiteral {
    fn into_literal(self) -> PyResult<Literal> {
        Ok(match self {
            PyLiteral::Bool(b) => Literal::Bool(b),
            PyLiteral::Int(i) => Literal::Int(i),
            PyLiteral::Float(f) => Literal::Float(f),
            PyLiteral::Str(s) => Literal::String(s),
            PyLiteral::Tagged((tag, v)) => match tag.as_str() {
                "timestamp_us" => Literal::Timestamp(v),
                "date_days" => Literal::Date(
                    i32::try_from(v).map_err(|_| PyValueError::new_err("date out of range"))?,
                ),
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown literal tag {other}"
                    )));
                }
            },
        })
    }
}

/// A filter as `phlo._filters.normalize_filters` hands it over: `(column, op, values)`.
type PyFilter = (String, String, Vec<PyLiteral>);

fn into_filters(filters: Vec<PyFilter>) -> PyResult<Vec<Filter>> {
    filters
        .into_iter()
        .map(|(column, op, values)| {
            Ok(Filter {
                column,
                op: FilterOp::parse(&op).py_err()?,
                values: values
                    .into_iter()
                    .map(PyLiteral::into_literal)
                    .collect::<PyResult<_>>()?,
            })
        })
        .collect()
}

impl NativeLakehouse {
    /// The engine behind this handle, for other native classes that serve it.
    pub(crate) fn shared(&self) -> Arc<Lakehouse> {
        self.inner.clone()
    }
}

#[pymethods]
impl NativeLakehouse {
    #[new]
    fn open(py: Python<'_>, root: PathBuf) -> PyResult<Self> {
        let lakehouse = detached(py, "opening the lakehouse", || Lakehouse::open(&root))?;
        Ok(Self {
            inner: Arc::new(lakehouse),
        })
    }

    /// `Lakehouse.connect`: a catalog URI, a warehouse URI and storage properties.
    #[staticmethod]
    fn connect(
        py: Python<'_>,
        catalog: String,
        warehouse: String,
        properties: HashMap<String, String>,
    ) -> PyResult<Self> {
        let lakehouse = wait_for(py, "connecting to the lakehouse", async {
            Lakehouse::connect(&catalog, &warehouse, &properties)
                .await
                .py_err()
        })?;
        Ok(Self {
            inner: Arc::new(lakehouse),
        })
    }

    /// The embedded lakehouse's folder; `None` when connected by URIs.
    #[getter]
    fn root(&self) -> Option<PathBuf> {
        self.inner.root().map(PathBuf::from)
    }

    #[getter]
    fn warehouse(&self) -> String {
        self.inner.warehouse().to_string()
    }

    fn create_namespace(&self, py: Python<'_>, namespace: &str) -> PyResult<()> {
        detached(py, "creating a namespace", || {
            self.inner.catalog().create_namespace(namespace)
        })
    }

    fn namespace_exists(&self, py: Python<'_>, namespace: &str) -> PyResult<bool> {
        detached(py, "looking up a namespace", || {
            self.inner.catalog().namespace_exists(namespace)
        })
    }

    fn list_namespaces(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        detached(py, "listing namespaces", || {
            self.inner.catalog().list_namespaces()
        })
    }

    fn drop_namespace(&self, py: Python<'_>, namespace: &str) -> PyResult<()> {
        detached(py, "dropping a namespace", || {
            self.inner.catalog().drop_namespace(namespace)
        })
    }

    fn list_tables(&self, py: Python<'_>, namespace: &str) -> PyResult<Vec<String>> {
        let tables = detached(py, "listing tables", || {
            self.inner.catalog().list_tables(namespace)
        })?;
        Ok(tables.into_iter().map(|t| t.to_string()).collect())
    }

    #[pyo3(signature = (name, schema, partition_by, properties, ref_name))]
    fn create_table(
        &self,
        py: Python<'_>,
        name: String,
        schema: PySchema,
        partition_by: Vec<(String, String)>,
        properties: HashMap<String, String>,
        ref_name: String,
    ) -> PyResult<()> {
        let lh = self.inner.clone();
        let schema = schema.into_inner();
        wait_for(py, "creating a table", async move {
            lh.create_table(&name, &schema, &partition_by, properties, &ref_name)
                .await
                .py_err()
                .map(|_| ())
        })
    }

    fn drop_table(
        &self,
        py: Python<'_>,
        name: String,
        purge: bool,
        ref_name: String,
    ) -> PyResult<()> {
        let lh = self.inner.clone();
        wait_for(py, "dropping a table", async move {
            lh.drop_table(&name, purge, &ref_name).await.py_err()
        })
    }

    /// `(ref, snapshot_id)` of table `name` at `as_of_ms` or right after commit `commit_id`.
    #[pyo3(signature = (name, ref_name, as_of_ms, commit_id))]
    fn snapshot_as_of(
        &self,
        py: Python<'_>,
        name: String,
        ref_name: Option<String>,
        as_of_ms: Option<i64>,
        commit_id: Option<String>,
    ) -> PyResult<(String, Option<i64>)> {
        let as_of = match (as_of_ms, commit_id) {
            (Some(ms), None) => AsOf::Time(ms),
            (None, Some(id)) => AsOf::Commit(id),
            _ => return Err(PyValueError::new_err("give as_of_ms or commit_id")),
        };
        let lh = self.inner.clone();
        wait_for(py, "finding a snapshot in the past", async move {
            lh.snapshot_as_of(&name, ref_name.as_deref(), &as_of)
                .await
                .py_err()
        })
    }

    /// `(snapshots_expired, files_deleted, refs_rewritten, refs_expired)`.
    fn expire_snapshots(
        &self,
        py: Python<'_>,
        older_than_ms: i64,
        keep_last: usize,
    ) -> PyResult<(usize, usize, Vec<String>, Vec<String>)> {
        let lh = self.inner.clone();
        let r = wait_for(py, "expiring snapshots", async move {
            lh.expire_snapshots(older_than_ms, keep_last).await.py_err()
        })?;
        Ok((
            r.snapshots_expired,
            r.files_deleted,
            r.refs_rewritten,
            r.refs_expired,
        ))
    }

    /// `(files, bytes)` of the orphan files found (and deleted unless `dry_run`).
    fn remove_orphan_files(
        &self,
        py: Python<'_>,
        older_than_ms: i64,
        dry_run: bool,
    ) -> PyResult<(Vec<String>, u64)> {
        let lh = self.inner.clone();
        let r = wait_for(py, "removing orphan files", async move {
            lh.remove_orphan_files(older_than_ms, dry_run)
                .await
                .py_err()
        })?;
        Ok((r.files, r.bytes))
    }

    /// `(metadata_location, metadata_json, arrow_schema)` of the table's current version.
    fn table_metadata(
        &self,
        py: Python<'_>,
        name: String,
        ref_name: String,
    ) -> PyResult<(String, String, PySchema)> {
        let lh = self.inner.clone();
        let table = wait_for(py, "loading a table", async move {
            lh.load_table(&name, &ref_name).await.py_err()
        })?;
        let json = serde_json_string(&table.metadata)?;
        let schema = arrow_schema_of(table.metadata.current_schema()).py_err()?;
        Ok((table.metadata_location, json, PySchema::new(schema)))
    }

    #[pyo3(signature = (name, data, branch, properties, schema_evolution))]
    fn append<'py>(
        &self,
        py: Python<'py>,
        name: String,
        data: AnyRecordBatch,
        branch: String,
        properties: HashMap<String, String>,
        schema_evolution: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let evolution = SchemaEvolution::parse(schema_evolution).py_err()?;
        let reader = data.into_reader()?;
        let lh = self.inner.clone();
        let result = wait_for(py, "appending", async move {
            if evolution == SchemaEvolution::Evolve {
                let schema = reader.schema();
                lh.evolve_schema(&name, &branch, &schema).await.py_err()?;
            }
            lh.append(&name, reader, &branch, properties).await.py_err()
        })?;
        let out = PyDict::new(py);
        out.set_item("snapshot_id", result.snapshot_id)?;
        out.set_item("rows", result.rows)?;
        out.set_item("files_added", result.files_added)?;
        out.set_item("bytes_written", result.bytes_written)?;
        out.set_item("commit_retries", result.commit_retries)?;
        Ok(out)
    }

    // `branch` is the catalog branch to write to.
    #[pyo3(signature = (name, data, unique_key, strategy, deduplication_method, order_by, branch, properties, schema_evolution, write_mode=None))]
    #[allow(clippy::too_many_arguments)]
    fn merge<'py>(
        &self,
        py: Python<'py>,
        name: String,
        data: AnyRecordBatch,
        unique_key: Vec<String>,
        strategy: &str,
        deduplication_method: Option<&str>,
        order_by: Option<String>,
        branch: String,
        properties: HashMap<String, String>,
        schema_evolution: &str,
        write_mode: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let evolution = SchemaEvolution::parse(schema_evolution).py_err()?;
        let write_mode = parse_write_mode(write_mode)?;
        let options = MergeOptions {
            unique_key,
            strategy: MergeStrategy::parse(strategy).py_err()?,
            dedupe: deduplication_method
                .map(DedupeMethod::parse)
                .transpose()
                .py_err()?,
            order_by,
            ref_name: branch,
            properties,
            write_mode,
        };
        let reader = data.into_reader()?;
        let lh = self.inner.clone();
        let r = wait_for(py, "merging", async move {
            if evolution == SchemaEvolution::Evolve {
                let schema = reader.schema();
                lh.evolve_schema(&name, &options.ref_name, &schema)
                    .await
                    .py_err()?;
            }
            lh.merge(&name, reader, &options).await.py_err()
        })?;
        let out = PyDict::new(py);
        out.set_item("snapshot_id", r.snapshot_id)?;
        out.set_item("rows_inserted", r.rows_inserted)?;
        out.set_item("rows_updated", r.rows_updated)?;
        out.set_item("rows_deleted", r.rows_deleted)?;
        out.set_item("duplicates_dropped", r.duplicates_dropped)?;
        out.set_item("files_scanned", r.files_scanned)?;
        out.set_item("files_added", r.files_added)?;
        out.set_item("files_removed", r.files_removed)?;
        out.set_item("delete_files_added", r.delete_files_added)?;
        out.set_item("bytes_written", r.bytes_written)?;
        out.set_item("commit_retries", r.commit_retries)?;
        let timings = PyDict::new(py);
        for (phase, seconds) in r.timings {
            timings.set_item(phase, seconds)?;
        }
        out.set_item("timings", timings)?;
        Ok(out)
    }

    /// Deletes the rows matching every filter on `branch`; `snapshot_id` is `None` when
    /// nothing matched (nothing was committed).
    #[pyo3(signature = (name, filters, branch, properties, write_mode=None))]
    fn delete<'py>(
        &self,
        py: Python<'py>,
        name: String,
        filters: Vec<PyFilter>,
        branch: String,
        properties: HashMap<String, String>,
        write_mode: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let filters = into_filters(filters)?;
        let write_mode = parse_write_mode(write_mode)?;
        let lh = self.inner.clone();
        let r = wait_for(py, "deleting rows", async move {
            lh.delete_with_mode(&name, &filters, &branch, properties, write_mode)
                .await
                .py_err()
        })?;
        let out = PyDict::new(py);
        out.set_item("snapshot_id", r.snapshot_id)?;
        out.set_item("rows_deleted", r.rows_deleted)?;
        out.set_item("files_scanned", r.files_scanned)?;
        out.set_item("files_removed", r.files_removed)?;
        out.set_item("files_added", r.files_added)?;
        out.set_item("delete_files_added", r.delete_files_added)?;
        out.set_item("bytes_written", r.bytes_written)?;
        out.set_item("commit_retries", r.commit_retries)?;
        Ok(out)
    }

    /// Sets (a value) or removes (`None`) table properties in one metadata-only commit;
    /// whether anything changed.
    fn set_properties(
        &self,
        py: Python<'_>,
        name: String,
        ref_name: String,
        updates: Vec<(String, Option<String>)>,
    ) -> PyResult<bool> {
        let lh = self.inner.clone();
        wait_for(py, "setting table properties", async move {
            lh.set_properties(&name, &ref_name, &updates).await.py_err()
        })
    }

    /// Compaction of table `name` on branch `ref_name` (`target_file_size` `None`: the
    /// table's `write.target-file-size-bytes`, else the writers' default); a dict of `CompactResult`'s fields.
    #[pyo3(signature = (name, ref_name, target_file_size, filters, properties))]
    fn compact<'py>(
        &self,
        py: Python<'py>,
        name: String,
        ref_name: String,
        target_file_size: Option<u64>,
        filters: Vec<PyFilter>,
        properties: HashMap<String, String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let options = CompactOptions {
            target_file_size,
            filters: into_filters(filters)?,
            properties,
        };
        let lh = self.inner.clone();
        let r = wait_for(py, "compacting", async move {
            lh.compact(&name, &ref_name, &options).await.py_err()
        })?;
        let out = PyDict::new(py);
        out.set_item("files_rewritten", r.files_rewritten)?;
        out.set_item("files_added", r.files_added)?;
        out.set_item("bytes_before", r.bytes_before)?;
        out.set_item("bytes_after", r.bytes_after)?;
        out.set_item("rows", r.rows)?;
        out.set_item("snapshot_id", r.snapshot_id)?;
        out.set_item("commit_retries", r.commit_retries)?;
        Ok(out)
    }

    /// The rows appended after snapshot `from_snapshot` up to `to_snapshot` (the ref's head
    /// when `None`), as a scan.
    #[pyo3(signature = (name, ref_name, from_snapshot, to_snapshot, batch_size))]
    fn changes(
        &self,
        py: Python<'_>,
        name: String,
        ref_name: String,
        from_snapshot: Option<i64>,
        to_snapshot: Option<i64>,
        batch_size: Option<usize>,
    ) -> PyResult<NativeScan> {
        let lh = self.inner.clone();
        let plan = wait_for(py, "reading changes", async move {
            lh.changes(&name, &ref_name, from_snapshot, to_snapshot, batch_size)
                .await
                .py_err()
        })?;
        Ok(NativeScan::new(plan))
    }

    /// `(snapshot_id, manifests_before, manifests_after)`.
    fn rewrite_manifests(
        &self,
        py: Python<'_>,
        name: String,
        ref_name: String,
        properties: HashMap<String, String>,
    ) -> PyResult<(Option<i64>, usize, usize)> {
        let lh = self.inner.clone();
        let r = wait_for(py, "rewriting manifests", async move {
            lh.rewrite_manifests(&name, &ref_name, properties)
                .await
                .py_err()
        })?;
        Ok((r.snapshot_id, r.manifests_before, r.manifests_after))
    }

    fn create_ref(&self, py: Python<'_>, name: &str, kind: &str, from_ref: &str) -> PyResult<()> {
        let kind = match kind {
            "tag" => RefKind::Tag,
            _ => RefKind::Branch,
        };
        let lh = self.inner.clone();
        wait_for(py, "creating a ref", async move {
            ref_copies::create_ref(lh.catalog(), lh.file_io(), name, kind, from_ref)
                .await
                .py_err()
        })
    }

    /// Creates a branch private to this process (`{prefix}<uuid>`) and returns its name.
    fn create_internal_branch(
        &self,
        py: Python<'_>,
        prefix: &str,
        from_ref: &str,
    ) -> PyResult<String> {
        detached(py, "creating a transaction branch", || {
            self.inner
                .catalog()
                .create_internal_branch(prefix, from_ref)
        })
    }

    /// Ends a transaction that will not commit: deletes its branch and the files it wrote.
    fn discard_transaction(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let lh = self.inner.clone();
        wait_for(py, "discarding a transaction", async move {
            lh.discard_transaction(&name).await.py_err()
        })
    }

    /// `[(name, source, created_at_ms)]` of the branches (`kind="branch"`) or tags.
    fn list_refs(&self, py: Python<'_>, kind: &str) -> PyResult<Vec<(String, String, i64)>> {
        let kind = if kind == "tag" {
            RefKind::Tag
        } else {
            RefKind::Branch
        };
        let refs = detached(py, "listing refs", || self.inner.catalog().list_refs(kind))?;
        Ok(refs
            .into_iter()
            .map(|r| (r.name, r.source, r.created_at_ms))
            .collect())
    }

    fn delete_branch(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        detached(py, "deleting a branch", || {
            self.inner.catalog().delete_branch(name)
        })
    }

    /// Log entries as dicts (commit_id, ref, tables, message, author, created_at_ms, run_id,
    /// properties), newest first.
    #[pyo3(signature = (ref_name, limit))]
    fn log<'py>(
        &self,
        py: Python<'py>,
        ref_name: Option<&str>,
        limit: usize,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let entries = detached(py, "reading the log", || {
            self.inner.catalog().log(ref_name, limit)
        })?;
        entries
            .into_iter()
            .map(|e| {
                let d = PyDict::new(py);
                d.set_item("commit_id", e.commit_id)?;
                d.set_item("ref", e.ref_name)?;
                d.set_item("tables", e.tables)?;
                d.set_item("message", e.message)?;
                d.set_item("author", e.author)?;
                d.set_item("created_at_ms", e.created_at_ms)?;
                d.set_item("run_id", e.run_id)?;
                d.set_item("properties", e.properties)?;
                Ok(d)
            })
            .collect()
    }

    /// `(changed, added, removed)` table names between two refs.
    fn diff(
        &self,
        py: Python<'_>,
        from_ref: &str,
        to_ref: &str,
    ) -> PyResult<(Vec<String>, Vec<String>, Vec<String>)> {
        let diff = detached(py, "comparing refs", || {
            self.inner.catalog().diff_refs(from_ref, to_ref)
        })?;
        Ok((diff.changed, diff.added, diff.removed))
    }

    /// `{added, removed, changed, added_sample, removed_sample, changed_sample}`.
    #[pyo3(signature = (name, from_ref, to_ref, key, sample))]
    fn diff_rows<'py>(
        &self,
        py: Python<'py>,
        name: String,
        from_ref: String,
        to_ref: String,
        key: Vec<String>,
        sample: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let lh = self.inner.clone();
        let diff = wait_for(py, "comparing rows", async move {
            lh.diff_rows(&name, &from_ref, &to_ref, &key, sample)
                .await
                .py_err()
        })?;
        let out = PyDict::new(py);
        out.set_item("added", diff.added)?;
        out.set_item("removed", diff.removed)?;
        out.set_item("changed", diff.changed)?;
        out.set_item("added_sample", PyRecordBatch::new(diff.added_sample))?;
        out.set_item("removed_sample", PyRecordBatch::new(diff.removed_sample))?;
        out.set_item("changed_sample", PyRecordBatch::new(diff.changed_sample))?;
        Ok(out)
    }

    /// `(fast_forwarded, added, rebased)` table names. `properties` may carry `phlo.message`,
    /// `phlo.author` and `phlo.run-id` for the log.
    fn merge_ref(
        &self,
        py: Python<'_>,
        source: String,
        into: String,
        properties: HashMap<String, String>,
    ) -> PyResult<(Vec<String>, Vec<String>, Vec<String>)> {
        let lh = self.inner.clone();
        let meta = CommitMeta::from_properties(&properties);
        let merged = wait_for(py, "merging a branch", async move {
            lh.merge_branch(&source, &into, &meta).await.py_err()
        })?;
        Ok((merged.fast_forwarded, merged.added, merged.rebased))
    }

    #[pyo3(signature = (
        name, columns, filters, snapshot_id, as_of_ms, ref_name, batch_size,
        string_dictionaries=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        py: Python<'_>,
        name: String,
        columns: Option<Vec<String>>,
        filters: Vec<PyFilter>,
        snapshot_id: Option<i64>,
        as_of_ms: Option<i64>,
        ref_name: Option<String>,
        batch_size: Option<usize>,
        string_dictionaries: bool,
    ) -> PyResult<NativeScan> {
        let filters = into_filters(filters)?;
        let options = ScanOptions {
            columns,
            filters,
            snapshot_id,
            as_of_ms,
            ref_name,
            batch_size,
        };
        let lh = self.inner.clone();
        let plan = wait_for(py, "planning a scan", async move {
            let plan = lh.scan(&name, &options).await.py_err()?;
            match string_dictionaries {
                true => plan.with_string_dictionaries().py_err(),
                false => Ok(plan),
            }
        })?;
        Ok(NativeScan::new(plan))
    }
}

fn serde_json_string(metadata: &iceberg::spec::TableMetadata) -> PyResult<String> {
    serde_json::to_string(metadata).map_err(|e| PyValueError::new_err(e.to_string()))
}
