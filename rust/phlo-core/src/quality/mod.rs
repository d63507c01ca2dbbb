//! Quality checks (`@phlo_quality`, docs/quality.md) evaluated over a stream of batches: every
//! check of one plan is updated by each batch in turn, so a whole table or partition is
//! checked in one pass while memory holds one batch, the uniqueness indexes and the samples.
//! The engine counts failing rows and keeps sample rows; thresholds, severities and the
//! metadata contract are Python's (`python/phlo/quality/`).

mod dictionaries;
mod kernels;
mod metadata;
mod pass;
mod plan;
mod unique;

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{Field, Schema};
use arrow_select::concat::concat_batches;
use arrow_select::take::take_record_batch;
use iceberg::spec::DataFile;

pub use plan::{CheckSpec, QualityPlan};

use crate::error::{Context, Error, Result};
use crate::validate::CheckOp;
use kernels::Failing;
use metadata::{Files, Settled};
use unique::UniqueIndex;

/// Batches with at least this many rows have their checks evaluated in parallel.
const PARALLEL_ROWS: usize = 16 * 1024;

/// What one check found over every row it was fed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Failing rows (failing cells for a null check).
    pub failed: u64,
    /// Rows checked.
    pub total: u64,
    /// Columns the check names that the table lacks (the check did not run).
    pub missing_columns: Vec<String>,
    /// Why the check could not be evaluated (e.g. a pattern on a numeric column).
    pub error: Option<String>,
    /// Up to `sample_limit` failing rows: the plan's id columns and the check's columns.
    pub sample: Option<RecordBatch>,
    /// Per-column failing cells, for a null check.
    pub per_column: Vec<(String, u64)>,
    /// The newest value (µs since the epoch), for a freshness check.
    pub newest_us: Option<i64>,
    /// Answered from the data files' metadata: the check's columns were not read.
    pub from_metadata: bool,
    /// Answered from the dictionary pages of the check's column ([`dictionaries`]): its rows
    /// were not read.
    pub from_dictionaries: bool,
}

/// The running state of every check of a plan.
pub struct Evaluator {
    checks: Vec<Running>,
    limit: usize,
    rows: u64,
    /// Whether any batch was fed (else the rows are the metadata's count).
    fed: bool,
    /// The checked rows by the files' metadata, when it describes them exactly.
    metadata_rows: Option<u64>,
    /// The first column of the scan: read to count the rows when no check reads a column.
    first_column: Option<String>,
    /// The plan's id columns the schema has: read with every check's columns, for samples.
    ids: Vec<String>,
}

struct Running {
    kernel: Option<Kernel>,
    /// The columns the check reads (those the table has), in the spec's order.
    fields: Vec<Field>,
    /// Columns a sample row carries (id columns, then the check's own).
    sample_columns: Vec<String>,
    /// The outcome, when the files' metadata settled it (the kernel is then gone).
    settled: Option<Settled>,
    /// Whether `settled` came from the files' dictionary pages.
    from_dictionaries: bool,
    /// Fed only by a later read of its columns ([`Evaluator::check_scan`]), not by the rows
    /// the other checks read.
    deferred: bool,
    failed: u64,
    per_column: Vec<u64>,
    sample: Vec<RecordBatch>,
    sampled: usize,
    missing: Vec<String>,
    error: Option<String>,
    spec: CheckSpec,
}

enum Kernel {
    NotNull,
    Rule(kernels::Rule),
    Unique(Box<UniqueIndex>),
    Freshness {
        cutoff: i64,
        newest: Option<i64>,
        older: u64,
    },
    Count,
    Pattern(Box<kernels::Pattern>),
}

impl Evaluator {
    /// Checks `plan` against batches of `schema`. A check naming a column the schema lacks,
    /// or one that cannot run on its column's type, becomes a failed outcome; it never stops
    /// the other checks.
    pub fn new(plan: &QualityPlan, schema: &Schema) -> Self {
        // String columns may be read as dictionaries; the checks see their values' type.
        let schema = &kernels::plain_schema(schema);
        let ids: Vec<&str> = plan
            .id_columns
            .iter()
            .filter(|c| schema.index_of(c).is_ok())
            .map(String::as_str)
            .collect();
        let checks = plan
            .checks
            .iter()
            .map(|spec| Running::new(spec, schema, &ids))
            .collect();
        Self {
            checks,
            limit: plan.sample_limit,
            rows: 0,
            fed: false,
            metadata_rows: None,
            first_column: schema.fields().first().map(|f| f.name().clone()),
            ids: ids.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Settles the checks the metadata of the data files to read proves (see
    /// [`metadata`]): `files` has each file, how many delete files apply to it and whether the
    /// scan's filter keeps all its rows. Returns the columns the other checks still read.
    pub fn settle<'a>(
        &mut self,
        files: impl IntoIterator<Item = (&'a DataFile, usize, bool)>,
    ) -> Vec<String> {
        let files: Vec<_> = files.into_iter().collect();
        let rows: u64 = files.iter().map(|(f, _, _)| f.record_count()).sum();
        for check in &mut self.checks {
            if let (Some(Kernel::Unique(index)), [key]) = (&mut check.kernel, &check.fields[..])
                && index.boundable()
                && let Some((low, high)) =
                    metadata::integer_range(files.iter().map(|(f, _, _)| *f), key)
            {
                index.bound(low, high, rows);
            }
        }
        if let Some(files) = Files::exact(files) {
            self.metadata_rows = Some(files.rows());
            for check in self.checks.iter_mut().filter(|c| c.kernel.is_some()) {
                let fields: Vec<&Field> = check.fields.iter().collect();
                check.settled = files.settle(&check.spec, &fields);
                if check.settled.is_some() {
                    check.kernel = None;
                }
            }
        }
        let mut columns: Vec<String> = Vec::new();
        for check in self.checks.iter().filter(|c| c.kernel.is_some()) {
            for field in &check.fields {
                if !columns.contains(field.name()) {
                    columns.push(field.name().clone());
                }
            }
        }
        self.counted(columns)
    }

    /// `columns` to read, or when none is left but the metadata does not count the checked
    /// rows (a filter keeping part of a file, delete files), the scan's first column: every
    /// check's total is the rows a scan counts.
    fn counted(&self, columns: Vec<String>) -> Vec<String> {
        match (columns.is_empty(), self.metadata_rows, &self.first_column) {
            (true, None, Some(first)) => vec![first.clone()],
            _ => columns,
        }
    }

    /// Updates every check with one batch (of the schema given to `new`). The running checks
    /// of a large batch run on threads of their own: they are independent, and the slowest
    /// (a uniqueness index) then overlaps the others. Checks the metadata settled get none.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.fed = true;
        self.feed(batch, false)
    }

    /// Updates the running checks that are (`deferred`) or are not deferred with one batch.
    fn feed(&mut self, batch: &RecordBatch, deferred: bool) -> Result<()> {
        let limit = self.limit;
        let mut running: Vec<&mut Running> = self
            .checks
            .iter_mut()
            .filter(|c| c.kernel.is_some() && c.deferred == deferred)
            .collect();
        if batch.num_rows() < PARALLEL_ROWS || running.len() < 2 {
            return running.iter_mut().try_for_each(|c| c.update(batch, limit));
        }
        std::thread::scope(|scope| {
            let running: Vec<_> = running
                .into_iter()
                .map(|check| scope.spawn(move || check.update(batch, limit)))
                .collect();
            running.into_iter().try_for_each(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| Err(Error::from_panic("evaluating a check", &*panic)))
            })
        })
    }

    pub fn finish(self) -> Result<Vec<Outcome>> {
        let rows = match (self.fed, self.metadata_rows) {
            (false, Some(rows)) => rows,
            _ => self.rows,
        };
        self.checks.into_iter().map(|c| c.finish(rows)).collect()
    }
}

impl Running {
    fn new(spec: &CheckSpec, schema: &Schema, ids: &[&str]) -> Self {
        let names = spec.columns();
        let missing: Vec<String> = names
            .iter()
            .filter(|n| schema.index_of(n).is_err())
            .map(|n| n.to_string())
            .collect();
        let fields: Vec<Field> = names
            .iter()
            .filter_map(|n| schema.field_with_name(n).ok().cloned())
            .collect();
        let mut sample_columns: Vec<String> = ids.iter().map(|c| c.to_string()).collect();
        sample_columns.extend(
            names
                .iter()
                .filter(|n| !ids.contains(n))
                .map(|n| n.to_string()),
        );
        let mut running = Self {
            kernel: None,
            per_column: vec![0; fields.len()],
            fields,
            sample_columns,
            settled: None,
            from_dictionaries: false,
            deferred: false,
            failed: 0,
            sample: Vec::new(),
            sampled: 0,
            error: None,
            spec: spec.clone(),
            missing,
        };
        if running.missing.is_empty() {
            match kernel(spec, &running.fields) {
                Ok(kernel) => running.kernel = Some(kernel),
                Err(why) => running.error = Some(why),
            }
        }
        running
    }

    fn update(&mut self, batch: &RecordBatch, limit: usize) -> Result<()> {
        let Some(kernel) = &mut self.kernel else {
            return Ok(());
        };
        let wanted = limit - self.sampled;
        let arrays: Vec<ArrayRef> = self
            .fields
            .iter()
            .map(|f| column(batch, f.name()))
            .collect::<Result<_>>()?;
        let found: std::result::Result<Failing, String> = match kernel {
            Kernel::NotNull => {
                let (per_column, rows) = kernels::missing_cells(&arrays, wanted);
                for (total, n) in self.per_column.iter_mut().zip(per_column) {
                    *total += n;
                }
                Ok(rows)
            }
            Kernel::Rule(rule) => rule.failures(&arrays[0], wanted),
            Kernel::Pattern(pattern) => kernels::pattern_failures(&arrays[0], pattern, wanted),
            Kernel::Unique(index) => index.add(&arrays, wanted).map(|first| Failing {
                // Counted when the pass ends: an earlier row becomes a duplicate only later.
                count: 0,
                first,
            }),
            Kernel::Freshness {
                cutoff,
                newest,
                older,
            } => kernels::micros(&arrays[0]).map(|values| {
                let mut first = Vec::new();
                for (row, value) in values.into_iter().enumerate() {
                    let Some(value) = value else { continue };
                    *newest = Some(newest.map_or(value, |n: i64| n.max(value)));
                    if value < *cutoff {
                        *older += 1;
                        if first.len() < wanted {
                            first.push(row);
                        }
                    }
                }
                Failing { count: 0, first }
            }),
            Kernel::Count => Ok(Failing {
                count: 0,
                first: vec![],
            }),
        };
        match found {
            Ok(found) => {
                self.failed += found.count;
                self.keep_sample(batch, &found.first)?;
            }
            Err(why) => {
                // The column's type does not suit the check: report it, stop evaluating it.
                self.error = Some(why);
                self.kernel = None;
            }
        }
        Ok(())
    }

    fn keep_sample(&mut self, batch: &RecordBatch, rows: &[usize]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns = self
            .sample_columns
            .iter()
            .map(|n| batch.schema().index_of(n))
            .collect::<std::result::Result<Vec<_>, _>>()
            .context(|| "finding sample columns".into())?;
        let projected = batch
            .project(&columns)
            .context(|| "projecting sample columns".into())?;
        let indices = UInt32Array::from_iter_values(rows.iter().map(|&r| r as u32));
        let taken =
            take_record_batch(&projected, &indices).context(|| "taking sample rows".into())?;
        let taken = kernels::plain_batch(&taken).map_err(|e| {
            Error::invalid(
                format!("decoding sample rows: {e}"),
                "this is a bug; please report it",
            )
        })?;
        self.sampled += taken.num_rows();
        self.sample.push(taken);
        Ok(())
    }

    fn finish(mut self, rows: u64) -> Result<Outcome> {
        let mut failed = self.failed;
        let mut newest_us = None;
        let mut keep_sample = true;
        let from_metadata = self.settled.is_some() && !self.from_dictionaries;
        if let Some(settled) = self.settled.take() {
            // Only passing answers are settled: nothing failed, no sample.
            if !settled.per_column.is_empty() {
                self.per_column = settled.per_column;
            }
            newest_us = settled.newest_us;
        }
        match &self.kernel {
            Some(Kernel::Unique(index)) => failed = index.duplicated_rows(),
            Some(Kernel::Freshness {
                cutoff,
                newest,
                older,
            }) => {
                newest_us = *newest;
                // Old rows fail only when nothing is recent enough.
                let stale = newest.is_some_and(|n| n < *cutoff);
                failed = if stale { *older } else { 0 };
                keep_sample = stale;
            }
            _ => {}
        }
        let sample = match (self.sample.first(), keep_sample) {
            (Some(first), true) => Some(
                concat_batches(&first.schema(), &self.sample)
                    .context(|| "collecting sample rows".into())?,
            ),
            _ => None,
        };
        let names = self.spec.columns();
        Ok(Outcome {
            failed,
            total: rows,
            missing_columns: self.missing,
            error: self.error,
            sample,
            per_column: names
                .iter()
                .zip(&self.per_column)
                .filter(|_| matches!(self.spec, CheckSpec::NotNull { .. }))
                .map(|(n, c)| (n.to_string(), *c))
                .collect(),
            newest_us,
            from_metadata,
            from_dictionaries: self.from_dictionaries,
        })
    }
}

/// The column `name` of `batch` (the scan reads every column a running check names).
fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch.column_by_name(name).cloned().ok_or_else(|| {
        Error::invalid(
            format!("the scanned batches lack column {name}, which a quality check reads"),
            "scan the columns Evaluator::settle returns",
        )
    })
}

/// The kernel of `spec` over `columns` (all present); `Err` says why it cannot run.
fn kernel(spec: &CheckSpec, fields: &[Field]) -> std::result::Result<Kernel, String> {
    if fields.is_empty() && !matches!(spec, CheckSpec::Count) {
        return Err("the check names no columns".into());
    }
    let types: Vec<_> = fields.iter().map(|f| f.data_type().clone()).collect();
    Ok(match spec {
        CheckSpec::NotNull { .. } => Kernel::NotNull,
        CheckSpec::Count => Kernel::Count,
        CheckSpec::Range { min, max, .. } => match (min, max) {
            (Some(min), Some(max)) => Kernel::Rule(kernels::rule(
                CheckOp::InRange,
                "range",
                vec![min.clone(), max.clone()],
            )),
            (Some(min), None) => Kernel::Rule(kernels::rule(CheckOp::Ge, "min", vec![min.clone()])),
            (None, Some(max)) => Kernel::Rule(kernels::rule(CheckOp::Le, "max", vec![max.clone()])),
            (None, None) => Kernel::Count,
        },
        CheckSpec::AcceptedValues { values, .. } => Kernel::Rule(kernels::rule(
            CheckOp::Isin,
            "accepted_values",
            values.clone(),
        )),
        CheckSpec::Unique { .. } => Kernel::Unique(Box::new(UniqueIndex::new(&types)?)),
        CheckSpec::Freshness { cutoff_us, .. } => {
            // Fails early on a column of the wrong type (an empty batch has the types).
            kernels::micros(&arrow_array::new_empty_array(&types[0]))?;
            Kernel::Freshness {
                cutoff: *cutoff_us,
                newest: None,
                older: 0,
            }
        }
        CheckSpec::Pattern {
            pattern,
            case_sensitive,
            ..
        } => Kernel::Pattern(Box::new(kernels::Pattern::new(pattern, *case_sensitive)?)),
    })
}
